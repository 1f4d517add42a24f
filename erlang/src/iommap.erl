%% @doc Memory-mapped file I/O, served by a Go port program.
%%
%% The API is that of the hex package iommap 1.1.x (a C NIF): code written
%% for it runs unchanged, with no start call. The difference is where the
%% mapping lives: in a separate OS process, so a fault on mapped memory (the
%% file truncated under the mapping) comes back as `{error, sigbus}' and can
%% never take the VM down.
%%
%% ```
%% {ok, H} = iommap:open("/tmp/demo.dat", read_write, [create, {size, 4096}]),
%% ok = iommap:pwrite(H, 0, <<"hello">>),
%% {ok, <<"hello">>} = iommap:pread(H, 0, 5),
%% ok = iommap:sync(H),
%% ok = iommap:close(H).
%% '''
%%
%% Every call on a handle checks, in this order: argument types (raising
%% `error:badarg'), negative offsets, lengths and sizes (`{error, badarg}'),
%% a closed handle (`{error, closed}'), the mode (`{error, eacces}'), then
%% bounds (`{error, out_of_bounds}'). A range is valid iff `Off =< Size' and
%% `Len =< Size - Off'.
%%
%% Handles are references. Any process may use or close one; it belongs to
%% the process that opened it and is closed when that process dies, unless
%% handed over with {@link controlling_process/2}.
%%
%% This module holds no state and runs in no long-lived process, so it can be
%% reloaded and purged while handles are open.
-module(iommap).

-export([open/2, open/3, close/1, pread/3, pwrite/3, region_binary/3,
         sync/1, sync/2, truncate/2, advise/4, position/1,
         controlling_process/2, info/1, engine_info/0]).
%% Beyond the NIF package
-export([pread_many/2, pwrite_many/2, sync/4, resident/3,
         add/3, sub/3, bit_and/3, bit_or/3, bit_xor/3, exchange/3,
         compare_exchange/4, load/2, store/3]).

-type handle() :: reference().
-type mode() :: read | write | read_write.
-type sync_mode() :: sync | async.
-type advise_hint() :: normal | random | sequential | willneed | dontneed
                     | populate_read | populate_write.
-type open_option() :: read | write | read_write | {size, non_neg_integer()}
                     | shared | private | lock | populate | nocache | create | truncate
                     | {chmod, 0..8#7777} | delete_on_close.
-type reason() :: badarg | enomem | enoent | eacces | closed | out_of_bounds
                | sigbus | einval | atom().

-export_type([handle/0, mode/0, sync_mode/0, advise_hint/0, open_option/0, reason/0]).

-define(IS_OFFSET(X), is_integer(X)).

%% @equiv open(Path, read_write, Options)
-spec open(file:filename_all(), [open_option()]) -> {ok, handle()} | {error, reason()}.
open(Path, Options) ->
    open(Path, read_write, Options).

%% @doc Opens the file at `Path' and maps all of it.
%%
%% `Path' is a binary (raw bytes, used as is) or chardata (encoded with
%% `file:native_name_encoding()'); a NUL byte in it raises `badarg', and a
%% path that is neither gives `{error, badarg}'.
%%
%% `read' maps PROT_READ from an O_RDONLY descriptor; `write' maps PROT_WRITE
%% only (pread then gives `{error, eacces}'); `read_write' maps both.
%%
%% Options: `{size, N}' grows a smaller file to N bytes (blocks allocated
%% with fallocate, so a full disk fails here, not later) and never shrinks
%% one; `create' creates a missing file (mode 0644); `truncate' cuts the file
%% to 0 first; `shared' (default) or `private' (copy-on-write), the last one
%% given wins, as does the last `{size, N}'; `lock' mlocks (failure
%% ignored); `populate' prefaults (MAP_POPULATE); `nocache' does nothing on
%% Linux. Unknown options are ignored.
%%
%% Beyond the NIF: `{chmod, Mode}' (an integer 0..8#7777, else `badarg' is
%% raised) gives a file that `create' makes exactly those permission bits,
%% whatever the umask; an existing file keeps its own. `delete_on_close'
%% removes the file's path when the handle is closed: by {@link close/1},
%% when its owner dies, when the application stops, and when the engine dies
%% (then the engine server removes it). A VM killed outright removes
%% nothing.
%%
%% A mapping cannot be empty: an empty file, `create' of a missing file or
%% `truncate' without `{size, N}', or `{size, 0}' give `{error, einval}', and
%% so do `create' or `truncate' in `read' mode. All of these are checked
%% before anything is created or truncated, so a failed open leaves the disk
%% as it was. A missing file without `create' gives `{error, enoent}'.
%%
%% ```
%% {ok, H} = iommap:open(<<"/tmp/data.bin">>, read_write, [create, {size, 1 bsl 20}]),
%% {error, einval} = iommap:open("/tmp/empty", read, [create]),
%% {error, enoent} = iommap:open("/no/such/file", read, []).
%% '''
-spec open(file:filename_all(), mode(), [open_option()]) -> {ok, handle()} | {error, reason()}.
open(Path, Mode, Options) when (Mode =:= read orelse Mode =:= write orelse Mode =:= read_write),
                               is_list(Options) ->
    {Share, Size, Perm, Flags} = options(Options, {shared, undefined, undefined}, []),
    case path(Path) of
        {ok, Bin} -> iommap_client:open(Bin, Mode, Share, Size, Perm, Flags);
        Error -> Error
    end;
open(_, _, _) ->
    erlang:error(badarg).

%% @doc Closes the handle: unmaps and closes the file, after the calls in
%% progress on it finish. A second close gives `{error, closed}'.
%%
%% ```
%% ok = iommap:close(H),
%% {error, closed} = iommap:close(H).
%% '''
-spec close(handle()) -> ok | {error, reason()}.
close(H) when is_reference(H) ->
    iommap_client:close(H);
close(_) ->
    erlang:error(badarg).

%% @doc Reads `Len' bytes at `Off'. The binary is a copy: it stays valid
%% after close or truncation.
%%
%% On Linux, a read of a `shared' mapping is served in the calling process:
%% it reads the mapping in the engine's memory through
%% `/proc/<engine>/mem', with no round trip (docs/API.md, "Direct reads").
%% Other reads of `stage_min' bytes or more (default 128 KiB) do not cross
%% the pipe: the engine copies them into a memory file that the calling
%% process opens once and reads with `file:pread/3' (see the README, "Bulk
%% reads and writes"). The answers are the same either way.
%%
%% ```
%% {ok, <<"hello">>} = iommap:pread(H, 0, 5),
%% {ok, <<>>} = iommap:pread(H, Size, 0),
%% {error, out_of_bounds} = iommap:pread(H, Size, 1).
%% '''
-spec pread(handle(), non_neg_integer(), non_neg_integer()) -> {ok, binary()} | {error, reason()}.
pread(H, Off, Len) when is_reference(H), ?IS_OFFSET(Off), is_integer(Len) ->
    read(H, Off, Len);
pread(_, _, _) ->
    erlang:error(badarg).

%% @doc Returns the same bytes as {@link pread/3}.
%%
%% In the NIF package this is a binary that points into the mapping. Here
%% the mapping lives in another OS process, and a binary cannot point into
%% it, so it is a copy (made by the engine, or for a direct read by the
%% kernel, from the engine's mapping): a snapshot, not a live view, that
%% stays valid after close and truncation.
%%
%% ```
%% {ok, Snapshot} = iommap:region_binary(H, 0, 4096),
%% ok = iommap:close(H),
%% 4096 = byte_size(Snapshot).
%% '''
-spec region_binary(handle(), non_neg_integer(), non_neg_integer()) ->
          {ok, binary()} | {error, reason()}.
region_binary(H, Off, Len) when is_reference(H), ?IS_OFFSET(Off), is_integer(Len) ->
    read(H, Off, Len);
region_binary(_, _, _) ->
    erlang:error(badarg).

read(_, Off, Len) when Off < 0; Len < 0 -> {error, badarg};
read(H, Off, Len) -> iommap_client:call(H, {pread, c(Off), c(Len)}).

%% @doc Writes `Data' at `Off'. The whole range must lie inside the
%% mapping: nothing is written otherwise, and the file never grows.
%%
%% ```
%% ok = iommap:pwrite(H, 0, [<<"hello">>, $\s, "world"]),
%% {error, out_of_bounds} = iommap:pwrite(H, Size - 1, <<"ab">>).
%% '''
-spec pwrite(handle(), non_neg_integer(), iodata()) -> ok | {error, reason()}.
pwrite(H, Off, Data) when is_reference(H), ?IS_OFFSET(Off), (is_binary(Data) orelse is_list(Data)) ->
    %% iolist_size/1 raises badarg for anything that is not iodata; the
    %% request carries the size, counted here once (see iommap_codec)
    Size = iolist_size(Data),
    if
        Off < 0 -> {error, badarg};
        true -> iommap_client:call(H, {pwrite, c(Off), Data, Size})
    end;
pwrite(_, _, _) ->
    erlang:error(badarg).

%% @equiv sync(H, sync)
-spec sync(handle()) -> ok | {error, reason()}.
sync(H) ->
    sync(H, sync).

%% @doc Flushes the whole mapping to the file: `sync' waits (MS_SYNC),
%% `async' schedules it (MS_ASYNC).
%%
%% ```
%% ok = iommap:pwrite(H, 0, <<"durable">>),
%% ok = iommap:sync(H, sync).
%% '''
-spec sync(handle(), sync_mode()) -> ok | {error, reason()}.
sync(H, Mode) when is_reference(H), (Mode =:= sync orelse Mode =:= async) ->
    iommap_client:call(H, {sync, Mode});
sync(_, _) ->
    erlang:error(badarg).

%% @doc Resizes the file to `NewSize' and maps it again; {@link position/1}
%% then gives `NewSize'. Growing zero-fills, shrinking drops the tail. Needs
%% write permission. `truncate(H, 0)' gives `{error, einval}'. A `private'
%% mapping is re-read from the file, so its unsaved changes are lost.
%%
%% ```
%% ok = iommap:truncate(H, 8192),
%% {ok, 8192} = iommap:position(H),
%% {error, einval} = iommap:truncate(H, 0).
%% '''
-spec truncate(handle(), non_neg_integer()) -> ok | {error, reason()}.
truncate(H, N) when is_reference(H), is_integer(N), N < 0 ->
    {error, badarg};
truncate(H, N) when is_reference(H), is_integer(N) ->
    iommap_client:call(H, {truncate, c(N)});
truncate(_, _) ->
    erlang:error(badarg).

%% @doc Passes an madvise hint for `Len' bytes at `Off'. `Off' must be page
%% aligned (`{error, einval}' from madvise otherwise); `Len' 0 is fine.
%% Beyond the NIF: `populate_read' and `populate_write' prefault the range
%% (MADV_POPULATE_READ/WRITE, Linux 5.14 and later; `{error, einval}' on
%% older kernels).
%%
%% ```
%% ok = iommap:advise(H, 0, 1 bsl 20, willneed),
%% {error, einval} = iommap:advise(H, 1, 100, random).
%% '''
-spec advise(handle(), non_neg_integer(), non_neg_integer(), advise_hint()) -> ok | {error, reason()}.
advise(H, Off, Len, Hint) when is_reference(H), ?IS_OFFSET(Off), is_integer(Len),
                               (Hint =:= normal orelse Hint =:= random orelse
                                Hint =:= sequential orelse Hint =:= willneed orelse
                                Hint =:= dontneed orelse Hint =:= populate_read orelse
                                Hint =:= populate_write) ->
    if
        Off < 0; Len < 0 -> {error, badarg};
        true -> iommap_client:call(H, {advise, c(Off), c(Len), Hint})
    end;
advise(_, _, _, _) ->
    erlang:error(badarg).

%% @doc The size of the mapping in bytes (not a file cursor).
%%
%% ```
%% {ok, H} = iommap:open(Path, read_write, [create, {size, 4096}]),
%% {ok, 4096} = iommap:position(H).
%% '''
-spec position(handle()) -> {ok, non_neg_integer()} | {error, reason()}.
position(H) when is_reference(H) ->
    iommap_client:call(H, {position});
position(_) ->
    erlang:error(badarg).

%% @doc Makes `Pid' the owner of `H', as `gen_tcp:controlling_process/2'
%% does for a socket: the handle is then closed when `Pid' dies rather than
%% the caller. Only the current owner may do this (`{error, not_owner}').
%%
%% ```
%% {ok, H} = iommap:open(Path, read_write, []),
%% Worker = spawn(fun() -> receive {handle, H} -> use(H) end end),
%% ok = iommap:controlling_process(H, Worker),
%% Worker ! {handle, H}.
%% '''
-spec controlling_process(handle(), pid()) -> ok | {error, reason() | not_owner}.
controlling_process(H, Pid) when is_reference(H), is_pid(Pid) ->
    iommap_client:controlling_process(H, Pid, self());
controlling_process(_, _) ->
    erlang:error(badarg).

%% @doc What `H' maps: `#{path, mode, size, options, owner}'. `options' holds
%% `shared' or `private', then any of `lock', `populate', `nocache' given at
%% open.
%%
%% ```
%% {ok, #{path := <<"/tmp/demo.dat">>, mode := read_write, size := 4096,
%%        options := [shared], owner := Pid}} = iommap:info(H).
%% '''
-spec info(handle()) -> {ok, map()} | {error, reason()}.
info(H) when is_reference(H) ->
    iommap_client:call(H, {info});
info(_) ->
    erlang:error(badarg).

%% @doc The running engine: `#{os_pid, handles, stages,
%% requests_in_flight, engine_version, protocol}', or `{error, closed}' if
%% none is running. `stages' counts the processes that hold a stage for
%% bulk reads and writes.
%% `engine_version' is the application's vsn, stamped into the engine when
%% it is built.
%%
%% ```
%% {ok, #{os_pid := OsPid, handles := Open}} = iommap:engine_info().
%% '''
-spec engine_info() -> {ok, map()} | {error, closed}.
engine_info() ->
    iommap_engine:info().

%% Beyond the NIF package

%% @doc Reads several ranges in one round trip. Every range is checked
%% (mode, bounds) before anything is read: one bad range gives its error
%% and no data.
%%
%% ```
%% {ok, [<<"ab">>, <<"yz">>]} = iommap:pread_many(H, [{0, 2}, {24, 2}]).
%% '''
-spec pread_many(handle(), [{non_neg_integer(), non_neg_integer()}]) ->
          {ok, [binary()]} | {error, reason()}.
pread_many(H, Ranges) when is_reference(H), is_list(Ranges) ->
    case pairs(Ranges, fun range/2) of
        {ok, Rs} -> iommap_client:call(H, {pread_many, Rs});
        negative -> {error, badarg}
    end;
pread_many(_, _) ->
    erlang:error(badarg).

%% @doc Writes several pieces, in list order, in one round trip and under
%% one lock. Every range is checked before anything is written: one bad
%% range writes nothing. If the file shrinks under the mapping so that a
%% piece faults, the result is `{error, sigbus}': the pieces before it are
%% written, that piece may be partly written, the ones after are not.
%%
%% ```
%% ok = iommap:pwrite_many(H, [{0, <<"ab">>}, {24, [<<"y">>, $z]}]).
%% '''
-spec pwrite_many(handle(), [{non_neg_integer(), iodata()}]) -> ok | {error, reason()}.
pwrite_many(H, Writes) when is_reference(H), is_list(Writes) ->
    case pairs(Writes, fun piece/2) of
        {ok, Pieces} -> iommap_client:call(H, {pwrite_many, Pieces});
        negative -> {error, badarg}
    end;
pwrite_many(_, _) ->
    erlang:error(badarg).

%% @doc Flushes only the pages that cover `Len' bytes at `Off' (msync of
%% their page-aligned cover), so one record can be made durable without
%% flushing a whole large mapping.
%%
%% ```
%% ok = iommap:pwrite(H, RecOff, Rec),
%% ok = iommap:sync(H, RecOff, byte_size(Rec), sync).
%% '''
-spec sync(handle(), non_neg_integer(), non_neg_integer(), sync_mode()) -> ok | {error, reason()}.
sync(H, Off, Len, Mode) when is_reference(H), is_integer(Off), is_integer(Len),
                             (Mode =:= sync orelse Mode =:= async) ->
    if
        Off < 0; Len < 0 -> {error, badarg};
        true -> iommap_client:call(H, {sync_range, c(Off), c(Len), Mode})
    end;
sync(_, _, _, _) ->
    erlang:error(badarg).

%% @doc How many of the `Len' bytes at `Off' lie in pages resident in memory
%% (mincore).
%%
%% ```
%% ok = iommap:advise(H, 0, 1 bsl 20, populate_read),
%% {ok, 1048576} = iommap:resident(H, 0, 1 bsl 20).
%% '''
-spec resident(handle(), non_neg_integer(), non_neg_integer()) ->
          {ok, non_neg_integer()} | {error, reason()}.
resident(H, Off, Len) when is_reference(H), is_integer(Off), is_integer(Len) ->
    if
        Off < 0; Len < 0 -> {error, badarg};
        true -> iommap_client:call(H, {resident, c(Off), c(Len)})
    end;
resident(_, _, _) ->
    erlang:error(badarg).

%% Atomics work on 8-byte words at 8-aligned offsets, in little-endian order,
%% holding signed 64-bit integers. They are the CPU's atomic instructions on
%% the mapped page, so they are atomic against every OS process that maps
%% the file `shared'. An unaligned offset gives `{error, einval}'; a value
%% outside -2^63..2^63-1 gives `{error, badarg}'. `load' needs read access,
%% `store' write access, the read-modify-writes (`add', `sub', `bit_and',
%% `bit_or', `bit_xor', `exchange', `compare_exchange') both
%% (`{error, eacces}'). Each runs under the handle's lock, so against a
%% concurrent `truncate/2' or `close/1' it gives the value, `{error, closed}'
%% or `{error, sigbus}', never a crash. `compare_exchange' is strong: it
%% never reports a mismatch when the word held `Expected'.

%% @doc Adds `Incr' to the word at `Off' (wrapping) and returns the old value.
%%
%% ```
%% {ok, 0} = iommap:add(H, 0, 1),
%% {ok, 1} = iommap:load(H, 0).
%% '''
-spec add(handle(), non_neg_integer(), integer()) -> {ok, integer()} | {error, reason()}.
add(H, Off, Incr) when is_reference(H), is_integer(Off), is_integer(Incr) ->
    atomic(H, Off, [Incr], {add, c(Off), Incr});
add(_, _, _) ->
    erlang:error(badarg).

%% @doc Subtracts `V' from the word at `Off' (wrapping) and returns the old
%% value.
-spec sub(handle(), non_neg_integer(), integer()) -> {ok, integer()} | {error, reason()}.
sub(H, Off, V) when is_reference(H), is_integer(Off), is_integer(V) ->
    atomic(H, Off, [V], {sub, c(Off), V});
sub(_, _, _) ->
    erlang:error(badarg).

%% @doc The word at `Off' becomes its bitwise and with `V'; returns the old
%% value. (`and' is a reserved word in Erlang.)
-spec bit_and(handle(), non_neg_integer(), integer()) -> {ok, integer()} | {error, reason()}.
bit_and(H, Off, V) when is_reference(H), is_integer(Off), is_integer(V) ->
    atomic(H, Off, [V], {bit_and, c(Off), V});
bit_and(_, _, _) ->
    erlang:error(badarg).

%% @doc The word at `Off' becomes its bitwise or with `V'; returns the old
%% value.
-spec bit_or(handle(), non_neg_integer(), integer()) -> {ok, integer()} | {error, reason()}.
bit_or(H, Off, V) when is_reference(H), is_integer(Off), is_integer(V) ->
    atomic(H, Off, [V], {bit_or, c(Off), V});
bit_or(_, _, _) ->
    erlang:error(badarg).

%% @doc The word at `Off' becomes its bitwise exclusive or with `V';
%% returns the old value.
-spec bit_xor(handle(), non_neg_integer(), integer()) -> {ok, integer()} | {error, reason()}.
bit_xor(H, Off, V) when is_reference(H), is_integer(Off), is_integer(V) ->
    atomic(H, Off, [V], {bit_xor, c(Off), V});
bit_xor(_, _, _) ->
    erlang:error(badarg).

%% @doc Stores `V' at `Off' and returns the old value.
%%
%% ```
%% {ok, 0} = iommap:exchange(H, 0, 7),
%% {ok, 7} = iommap:exchange(H, 0, 8).
%% '''
-spec exchange(handle(), non_neg_integer(), integer()) -> {ok, integer()} | {error, reason()}.
exchange(H, Off, V) when is_reference(H), is_integer(Off), is_integer(V) ->
    atomic(H, Off, [V], {exchange, c(Off), V});
exchange(_, _, _) ->
    erlang:error(badarg).

%% @doc Stores `New' at `Off' if the word holds `Expected'; otherwise leaves
%% it and returns what it holds.
%%
%% ```
%% ok = iommap:compare_exchange(H, 0, 1, 2),
%% {error, {mismatch, 2}} = iommap:compare_exchange(H, 0, 1, 3).
%% '''
-spec compare_exchange(handle(), non_neg_integer(), integer(), integer()) ->
          ok | {error, {mismatch, integer()} | reason()}.
compare_exchange(H, Off, Expected, New) when is_reference(H), is_integer(Off),
                                             is_integer(Expected), is_integer(New) ->
    atomic(H, Off, [Expected, New], {compare_exchange, c(Off), Expected, New});
compare_exchange(_, _, _, _) ->
    erlang:error(badarg).

%% @doc Reads the word at `Off' atomically.
-spec load(handle(), non_neg_integer()) -> {ok, integer()} | {error, reason()}.
load(H, Off) when is_reference(H), is_integer(Off) ->
    atomic(H, Off, [], {load, c(Off)});
load(_, _) ->
    erlang:error(badarg).

%% @doc Writes the word at `Off' atomically.
-spec store(handle(), non_neg_integer(), integer()) -> ok | {error, reason()}.
store(H, Off, V) when is_reference(H), is_integer(Off), is_integer(V) ->
    atomic(H, Off, [V], {store, c(Off), V});
store(_, _, _) ->
    erlang:error(badarg).

-define(INT64(V), (V >= -16#8000000000000000 andalso V =< 16#7FFFFFFFFFFFFFFF)).

atomic(H, Off, Vals, Req) ->
    case Off >= 0 andalso lists:all(fun(V) -> ?INT64(V) end, Vals) of
        true -> iommap_client:call(H, Req);
        false -> {error, badarg}
    end.

%% A proper list of {Off, X}, each made into what the request carries by
%% Carry(Off, X): a wrong shape or type raises badarg, even after a negative
%% offset or length, which makes the answer `negative'.
pairs(L, Carry) -> pairs(L, Carry, [], ok).

pairs([], _, Acc, ok) -> {ok, lists:reverse(Acc)};
pairs([], _, _, negative) -> negative;
pairs([{Off, X} | T], Carry, Acc, Neg) when is_integer(Off) ->
    Item = Carry(Off, X),
    Neg1 = case Off < 0 orelse (is_integer(X) andalso X < 0) of
               true -> negative;
               false -> Neg
           end,
    pairs(T, Carry, [Item | Acc], Neg1);
pairs(_, _, _, _) ->
    erlang:error(badarg).

range(Off, Len) when is_integer(Len) -> {c(Off), c(Len)};
range(_, _) -> erlang:error(badarg).

%% A piece of a pwrite_many carries its size, counted here once (it raises
%% badarg for anything that is not iodata) for the limit and the frame.
piece(Off, D) when is_binary(D); is_list(D) -> {c(Off), D, iolist_size(D)};
piece(_, _) -> erlang:error(badarg).

%% Integers past 2^64 are out of bounds (or too large a file) whatever their
%% size, so they travel as 2^64: the engine then need not decode huge ones.
c(N) when N > 16#10000000000000000 -> 16#10000000000000000;
c(N) -> N.

%% Options: of shared/private and of repeated {size, N} the last wins;
%% unknown options are ignored, as in the NIF package.
options([], {Share, Size, Perm}, Flags) ->
    {Share, Size, Perm, lists:reverse(Flags)};
options([S | T], {_, Size, Perm}, Flags) when S =:= shared; S =:= private ->
    options(T, {S, Size, Perm}, Flags);
options([{size, N} | T], {Share, _, Perm}, Flags) when is_integer(N), N >= 0 ->
    options(T, {Share, c(N), Perm}, Flags);
options([{size, _} | _], _, _) ->
    erlang:error(badarg);
options([{chmod, M} | T], {Share, Size, _}, Flags) when is_integer(M), M >= 0, M =< 8#7777 ->
    options(T, {Share, Size, M}, Flags);
options([{chmod, _} | _], _, _) ->
    erlang:error(badarg);
options([F | T], Set, Flags) when F =:= create; F =:= truncate; F =:= lock;
                                  F =:= populate; F =:= nocache; F =:= delete_on_close ->
    options(T, Set, [F | Flags]);
options([_ | T], Set, Flags) ->
    options(T, Set, Flags);
options(_, _, _) ->
    erlang:error(badarg). % an improper list

path(Path) when is_binary(Path) ->
    absolute(no_nul(Path));
path(Path) when is_list(Path) ->
    try unicode:characters_to_binary(Path, unicode, file:native_name_encoding()) of
        Bin when is_binary(Bin) -> absolute(no_nul(Bin));
        _ -> {error, badarg}
    catch
        error:badarg -> {error, badarg}
    end;
path(_) ->
    {error, badarg}.

no_nul(Bin) ->
    case binary:match(Bin, <<0>>) of
        nomatch -> Bin;
        _ -> erlang:error(badarg)
    end.

%% The engine runs in "/" and is shared by the whole node, so a relative
%% name is made absolute here, against the current directory of the node
%% (file:get_cwd/0, which file:set_cwd/1 changes), as file:open/2 would
%% resolve it. An empty name names no file, as for file:open/2.
absolute(<<>>) -> {error, enoent};
absolute(Bin) -> {ok, filename:absname(Bin)}.
