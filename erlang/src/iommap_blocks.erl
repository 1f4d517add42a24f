%% @doc A store of fixed-size blocks in one file, which Erlang processes,
%% nodes and OS processes share.
%%
%% `store' puts a block in a free place and answers its address, 0 to
%% Capacity − 1; `read' gives it back; `free' makes its place free again.
%% The engine runs each operation under the kernel's lock on the file
%% (`flock'), so writers in different nodes and OS processes never get the
%% same address; the kernel drops the lock of a process that dies.
%%
%% ```
%% {ok, B} = iommap_blocks:create("/tmp/pages.blk", 4096, 1000),
%% {ok, A} = iommap_blocks:store(B, binary:copy(<<0>>, 4096)),
%% {ok, _} = iommap_blocks:read(B, A),
%% ok = iommap_blocks:free(B, A),
%% {error, einval} = iommap_blocks:read(B, A),
%% {error, out_of_bounds} = iommap_blocks:read(B, 1000),
%% ok = iommap_blocks:close(B).
%% '''
%%
%% <b>Commit points and crashes.</b> A store writes the block and its CRC32C
%% into a free place, then sets the block's bit in the allocation bitmap
%% with one atomic OR; a free clears it with one atomic AND. After a kill of
%% the engine or of the VM at any point, every block is either free or
%% live with all the bytes that were stored: never torn, and there is
%% nothing to repair. A store whose reply was lost may or may not have
%% taken a block (which nobody knows the address of, then: `fold' finds
%% it); a free whose reply was lost may or may not have happened.
%%
%% <b>Durability.</b> As for {@link iommap_queue}: page cache by default;
%% {@link sync/1} flushes the file; the open option `durable' flushes each
%% block before its bit is set and the bit before `store' or `free'
%% returns.
%%
%% <b>Errors.</b> `read' or `free' of an address past the last gives
%% `{error, out_of_bounds}', of a free block `{error, einval}'. A negative
%% address gives `{error, badarg}', as does `store' of a binary that is not
%% BlockSize bytes. A block whose bytes do not match its CRC (changed on the
%% disk, or torn by a power loss before it was flushed) gives `{error,
%% ebadmsg}' from `read' and `fold'; it can still be freed. A file that is
%% not a block store of this version, or not of the size its header
%% gives, is refused with `{error, einval}' and is not changed.
%%
%% The file format is in docs/API.md, "Blocks". A block store value belongs
%% to the process that created or opened it: it is closed when that process
%% dies.
-module(iommap_blocks).

-export([create/3, create/4, open/1, open/2, store/2, read/2, free/2, fold/3,
         sync/1, close/1]).

-record(blocks, {handle :: iommap:handle(), block_size :: pos_integer(),
                 capacity :: pos_integer(), durability :: durable | cached}).
-opaque blocks() :: #blocks{}.
-type addr() :: non_neg_integer().
-type option() :: durable.
-export_type([blocks/0, addr/0, option/0]).

-define(HEADER, 128).
-define(MAX_BLOCK, (1 bsl 30)).
%% Bytes of blocks a fold reads a request.
-define(FOLD_BYTES, (4 bsl 20)).
-define(MAX_VECTOR, 65536).

%% @equiv create(Path, BlockSize, Capacity, [])
-spec create(file:filename_all(), pos_integer(), pos_integer()) -> {ok, blocks()} | {error, iommap:reason()}.
create(Path, BlockSize, Capacity) ->
    create(Path, BlockSize, Capacity, []).

%% @doc Creates a store of `Capacity' blocks of `BlockSize' bytes (at most
%% 2^30), all free, and opens it. The file is made whole under a temporary
%% name and then linked into place. If `Path' exists already and is a
%% block store of that shape, it is opened as it is; if it is anything
%% else, the answer is `{error, einval}' and the file is not changed.
%% Options: `durable'.
-spec create(file:filename_all(), pos_integer(), pos_integer(), [option()]) ->
          {ok, blocks()} | {error, iommap:reason()}.
create(_, BlockSize, Capacity, Options) when is_integer(BlockSize), BlockSize > ?MAX_BLOCK,
                                              is_integer(Capacity), Capacity > 0, is_list(Options) ->
    {error, einval};
create(Path, BlockSize, Capacity, Options) when is_integer(BlockSize), BlockSize > 0,
                                                 is_integer(Capacity), Capacity > 0, is_list(Options) ->
    iommap_file:create_whole(Path, iommap_file:engine_format(file_size(BlockSize, Capacity),
                                                             {blocks_format, BlockSize, Capacity}),
                             fun() -> open(Path, {BlockSize, Capacity}, Options) end);
create(_, _, _, _) ->
    erlang:error(badarg).

%% The file's size: the header, the bitmap (a bit a block, in 64-bit words)
%% up to a 4096 boundary, then a slot a block: 8 bytes of CRC and the block
%% rounded up to 8.
file_size(BlockSize, Capacity) ->
    Slot = 8 + ((BlockSize + 7) band (bnot 7)),
    Data = (?HEADER + 8 * ((Capacity + 63) div 64) + 4095) band (bnot 4095),
    Data + Capacity * Slot.

%% @equiv open(Path, [])
-spec open(file:filename_all()) -> {ok, blocks()} | {error, iommap:reason()}.
open(Path) ->
    open(Path, []).

%% @doc Opens an existing block store. Options: `durable'.
-spec open(file:filename_all(), [option()]) -> {ok, blocks()} | {error, iommap:reason()}.
open(Path, Options) when is_list(Options) ->
    open(Path, any, Options);
open(_, _) ->
    erlang:error(badarg).

open(Path, Want, Options) ->
    Durability = case lists:member(durable, Options) of
                     true -> durable;
                     false -> cached
                 end,
    case iommap:open(Path, read_write, []) of
        {ok, H} ->
            case call(H, {blocks_open}) of
                {ok, {Size, N} = Shape} when Want =:= any; Want =:= Shape ->
                    {ok, #blocks{handle = H, block_size = Size, capacity = N, durability = Durability}};
                Other ->
                    _ = iommap:close(H),
                    case Other of
                        {ok, _} -> {error, einval}; % a store of another shape
                        {error, _} = E -> E
                    end
            end;
        {error, _} = E ->
            E
    end.

%% @doc Stores `Bin' (exactly BlockSize bytes, else `{error, badarg}') in a
%% free block and gives its address, or `{error, full}'.
-spec store(blocks(), binary()) -> {ok, addr()} | {error, full | iommap:reason()}.
store(#blocks{block_size = Size}, Bin) when is_binary(Bin), byte_size(Bin) =/= Size ->
    {error, badarg};
store(#blocks{handle = H, durability = D}, Bin) when is_binary(Bin) ->
    call(H, {blocks_store, D, Bin});
store(_, _) ->
    erlang:error(badarg).

%% @doc The block at `Addr'.
-spec read(blocks(), addr()) -> {ok, binary()} | {error, iommap:reason()}.
read(#blocks{}, Addr) when is_integer(Addr), Addr < 0 ->
    {error, badarg};
read(#blocks{handle = H}, Addr) when is_integer(Addr) ->
    call(H, {blocks_read, Addr});
read(_, _) ->
    erlang:error(badarg).

%% @doc Frees the block at `Addr'.
-spec free(blocks(), addr()) -> ok | {error, iommap:reason()}.
free(#blocks{}, Addr) when is_integer(Addr), Addr < 0 ->
    {error, badarg};
free(#blocks{handle = H, durability = D}, Addr) when is_integer(Addr) ->
    call(H, {blocks_free, D, Addr});
free(_, _) ->
    erlang:error(badarg).

%% @doc Calls `Fun(Addr, Bin, Acc)' on the live blocks in address order and
%% gives the last `Acc'. The blocks are read a few MiB at a time, each
%% batch at one instant: blocks stored or freed meanwhile by others may or
%% may not be seen, and none is given twice.
-spec fold(fun((addr(), binary(), Acc) -> Acc), Acc, blocks()) -> {ok, Acc} | {error, iommap:reason()}.
fold(Fun, Acc, #blocks{handle = H, block_size = Size}) when is_function(Fun, 3) ->
    fold(Fun, Acc, H, 0, max(1, min(?MAX_VECTOR, ?FOLD_BYTES div Size)));
fold(_, _, _) ->
    erlang:error(badarg).

fold(Fun, Acc, H, From, Chunk) ->
    case call(H, {blocks_scan, From, Chunk}) of
        {ok, {[], _}} ->
            {ok, Acc};
        {ok, {Blocks, Next}} ->
            Acc1 = lists:foldl(fun({Addr, Bin}, A) -> Fun(Addr, Bin, A) end, Acc, Blocks),
            fold(Fun, Acc1, H, Next, Chunk);
        {error, _} = E ->
            E
    end.

%% @doc Flushes the whole file to the disk (msync).
-spec sync(blocks()) -> ok | {error, iommap:reason()}.
sync(#blocks{handle = H}) ->
    iommap:sync(H);
sync(_) ->
    erlang:error(badarg).

%% @doc Closes the block store.
-spec close(blocks()) -> ok | {error, iommap:reason()}.
close(#blocks{handle = H}) ->
    iommap:close(H);
close(_) ->
    erlang:error(badarg).

%% The engine runs these requests off its main loop, under a file lock.
call(H, Req) ->
    iommap_client:call(H, Req).
