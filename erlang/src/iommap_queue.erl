%% @doc A persistent FIFO queue of binaries in one file, which Erlang
%% processes, nodes and OS processes share.
%%
%% The file is a ring: the space of popped records is used again, and a
%% push that does not fit in the free space gives `{error, full}' and
%% writes nothing. Each record is framed with its length (64 bits) and a
%% CRC32C. The engine runs each operation under the kernel's lock on the
%% file (`flock'), so producers and consumers in different nodes and OS
%% processes may use one queue at once, and each record is popped by
%% exactly one consumer; the kernel drops the lock of a process that dies.
%%
%% ```
%% {ok, Q} = iommap_queue:create("/tmp/jobs.q", 1 bsl 20),
%% ok = iommap_queue:push(Q, <<"job 1">>),
%% ok = iommap_queue:push_many(Q, [<<"job 2">>, <<"job 3">>]),
%% {ok, 3} = iommap_queue:len(Q),
%% {ok, <<"job 1">>} = iommap_queue:pop(Q),
%% {ok, [<<"job 2">>, <<"job 3">>]} = iommap_queue:pop_many(Q, 10),
%% empty = iommap_queue:pop(Q),
%% ok = iommap_queue:close(Q).
%% '''
%%
%% <b>Commit points and crashes.</b> A push writes its records into the
%% free space, then publishes the new tail with one aligned 8-byte store:
%% the records exist from that store on, all of them (a `push_many' is all
%% or nothing). A pop copies its records out, then publishes the new head.
%% After a kill of the engine or of the VM at any point, the queue opens
%% with every committed record, in order, and no partial one. Across such a
%% crash a pop is at most once: a pop that committed but whose reply was
%% lost has lost its records. A push whose reply was lost may or may not be
%% in the queue. For at-least-once consumption, take the front with
%% {@link peek_ref/1} and remove it with {@link ack/2} once it is handled:
%% a crash in between leaves it in the queue, so it may be handled twice.
%%
%% <b>Durability.</b> A push or pop returns once its bytes are in the page
%% cache: they survive a crash of the engine, of the VM or of any process,
%% not a power loss or a crash of the OS. {@link sync/1} flushes the whole
%% file to the disk; with the open option `durable', every push flushes
%% its records before it publishes the tail and the tail after, and every
%% pop flushes the head, before it returns, so each survives a power loss
%% once it has returned. A power loss can leave records pushed since the
%% last flush torn; they fail their CRC (see below).
%%
%% <b>Corruption.</b> A record whose bytes do not match its CRC (a byte
%% changed on the disk, or torn by a power loss before it was flushed) is
%% found when it is read: `pop', `pop_many', `peek', `peek_ref', `fold' and
%% `ack' give `{error, ebadmsg}' when it is the first record they would
%% give (a `pop_many' gives the good records before it), and it stays in
%% the queue, as do the records after it. A file that is not a queue of
%% this version, or not of the size its header gives, is refused with
%% `{error, einval}' by `open' and by every call, and is not changed.
%%
%% The file format (little-endian), so that a C or Go program can share
%% it, is in docs/API.md, "Queue". A queue value belongs to the process
%% that created or opened it, as an iommap handle does: it is closed when
%% that process dies.
-module(iommap_queue).

-export([create/2, create/3, open/1, open/2, push/2, push_many/2, pop/1, pop_many/2,
         peek/1, peek_ref/1, ack/2, len/1, fold/3, sync/1, close/1]).

-record(queue, {handle :: iommap:handle(), durability :: durable | cached}).
-opaque queue() :: #queue{}.
-opaque ack_ref() :: non_neg_integer().
-type option() :: durable.
-export_type([queue/0, ack_ref/0, option/0]).

%% The header before the ring (port/PROTOCOL.md, mmap/queue.go).
-define(HEADER, 4096).
-define(MIN_CAPACITY, 16).
%% The most records one request carries (port.MaxVector).
-define(MAX_VECTOR, 65536).
%% Records a fold reads a request.
-define(FOLD_CHUNK, 1024).

%% @equiv create(Path, Capacity, [])
-spec create(file:filename_all(), pos_integer()) -> {ok, queue()} | {error, iommap:reason()}.
create(Path, Capacity) ->
    create(Path, Capacity, []).

%% @doc Creates a queue whose ring holds `Capacity' bytes of frames (rounded
%% up to a multiple of 8, at least 16), and opens it. A record of N bytes
%% takes 16 + N rounded up to 8. The file is made whole under a temporary
%% name and then linked into place, so no process ever sees a half-made
%% one. If `Path' exists already and is a queue of that capacity, it is
%% opened as it is (two processes may both create it); if it is anything
%% else, the answer is `{error, einval}' and the file is not changed.
%% Options: `durable' (see the module's doc).
-spec create(file:filename_all(), pos_integer(), [option()]) -> {ok, queue()} | {error, iommap:reason()}.
create(Path, Capacity, Options) when is_integer(Capacity), Capacity > 0, is_list(Options) ->
    Ring = max(?MIN_CAPACITY, (Capacity + 7) band (bnot 7)),
    iommap_file:create_whole(Path, iommap_file:engine_format(?HEADER + Ring, {queue_format, Ring}),
                             fun() -> open(Path, Ring, Options) end);
create(_, _, _) ->
    erlang:error(badarg).

%% @equiv open(Path, [])
-spec open(file:filename_all()) -> {ok, queue()} | {error, iommap:reason()}.
open(Path) ->
    open(Path, []).

%% @doc Opens an existing queue. If a process died in the middle of an
%% operation on it, the operation is completed or undone here (see the
%% module's doc). Options: `durable'.
-spec open(file:filename_all(), [option()]) -> {ok, queue()} | {error, iommap:reason()}.
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
            case call(H, {queue_open}) of
                {ok, Ring} when Want =:= any; Want =:= Ring ->
                    {ok, #queue{handle = H, durability = Durability}};
                Other ->
                    _ = iommap:close(H),
                    case Other of
                        {ok, _} -> {error, einval}; % a queue of another capacity
                        {error, _} = E -> E
                    end
            end;
        {error, _} = E ->
            E
    end.

%% @doc Appends `Bin' at the back: `ok', or `{error, full}' (nothing
%% written) if its frame does not fit in the free space.
-spec push(queue(), binary()) -> ok | {error, full | iommap:reason()}.
push(#queue{handle = H, durability = D}, Bin) when is_binary(Bin) ->
    call(H, {queue_push, D, Bin});
push(_, _) ->
    erlang:error(badarg).

%% @doc Appends the binaries at the back, in order, all or none: if they do
%% not all fit, `{error, full}' and nothing is written. At most 65,536
%% binaries at once (more: `{error, e2big}').
-spec push_many(queue(), [binary()]) -> ok | {error, full | iommap:reason()}.
push_many(#queue{handle = H, durability = D}, Bins) when is_list(Bins) ->
    case lists:all(fun is_binary/1, Bins) of
        false -> erlang:error(badarg);
        true when length(Bins) > ?MAX_VECTOR -> {error, e2big};
        true -> call(H, {queue_push_many, D, Bins})
    end;
push_many(_, _) ->
    erlang:error(badarg).

%% @doc Removes the front record and gives it, or `empty'.
-spec pop(queue()) -> {ok, binary()} | empty | {error, iommap:reason()}.
pop(#queue{handle = H, durability = D}) ->
    case call(H, {queue_pop, D, 1}) of
        {ok, [Bin]} -> {ok, Bin};
        {ok, []} -> empty;
        {error, _} = E -> E
    end;
pop(_) ->
    erlang:error(badarg).

%% @doc Removes up to `Max' records from the front and gives them, front
%% first; `{ok, []}' when the queue is empty. One call gives at most 65,536
%% records and 2 GiB of data: the rest stay for the next.
-spec pop_many(queue(), non_neg_integer()) -> {ok, [binary()]} | {error, iommap:reason()}.
pop_many(#queue{}, Max) when is_integer(Max), Max < 0 ->
    {error, badarg};
pop_many(#queue{handle = H, durability = D}, Max) when is_integer(Max) ->
    call(H, {queue_pop, D, Max});
pop_many(_, _) ->
    erlang:error(badarg).

%% @doc The front record, left in the queue, or `empty'.
-spec peek(queue()) -> {ok, binary()} | empty | {error, iommap:reason()}.
peek(Q) ->
    case peek_ref(Q) of
        {ok, _, Bin} -> {ok, Bin};
        Other -> Other
    end.

%% @doc The front record, left in the queue, with the reference that
%% {@link ack/2} takes to remove it: at-least-once consumption.
%%
%% ```
%% case iommap_queue:peek_ref(Q) of
%%     {ok, Ref, Job} -> ok = run(Job), ok = iommap_queue:ack(Q, Ref);
%%     empty -> idle
%% end
%% '''
-spec peek_ref(queue()) -> {ok, ack_ref(), binary()} | empty | {error, iommap:reason()}.
peek_ref(#queue{handle = H}) ->
    case call(H, {queue_peek, 0, 1}) of
        {ok, {[Bin], Ref, _}} -> {ok, Ref, Bin};
        {ok, {[], _, _}} -> empty;
        {error, _} = E -> E
    end;
peek_ref(_) ->
    erlang:error(badarg).

%% @doc Removes the record `Ref' names if it is still the front. `ok' too
%% if it is gone already (another consumer popped or acked it); `{error,
%% einval}' if it is not the front (records before it are still there).
-spec ack(queue(), ack_ref()) -> ok | {error, iommap:reason()}.
ack(#queue{handle = H, durability = D}, Ref) when is_integer(Ref), Ref >= 0 ->
    call(H, {queue_ack, D, Ref});
ack(_, _) ->
    erlang:error(badarg).

%% @doc The number of records in the queue.
-spec len(queue()) -> {ok, non_neg_integer()} | {error, iommap:reason()}.
len(#queue{handle = H}) ->
    call(H, {queue_len});
len(_) ->
    erlang:error(badarg).

%% @doc Calls `Fun(Bin, Acc)' on the records front to back, without
%% removing them, and gives the last `Acc'. The records are read 1,024 at a
%% time, each batch at one instant: records that others pop meanwhile may
%% be skipped, records pushed meanwhile may be included, and none is given
%% twice.
-spec fold(fun((binary(), Acc) -> Acc), Acc, queue()) -> {ok, Acc} | {error, iommap:reason()}.
fold(Fun, Acc, #queue{handle = H}) when is_function(Fun, 2) ->
    fold(Fun, Acc, H, 0);
fold(_, _, _) ->
    erlang:error(badarg).

fold(Fun, Acc, H, Cursor) ->
    case call(H, {queue_peek, Cursor, ?FOLD_CHUNK}) of
        {ok, {[], _, _}} -> {ok, Acc};
        {ok, {Bins, _, Next}} -> fold(Fun, lists:foldl(Fun, Acc, Bins), H, Next);
        {error, _} = E -> E
    end.

%% @doc Flushes the whole queue file to the disk (msync): every push and
%% pop that returned before survives a power loss.
-spec sync(queue()) -> ok | {error, iommap:reason()}.
sync(#queue{handle = H}) ->
    iommap:sync(H);
sync(_) ->
    erlang:error(badarg).

%% @doc Closes the queue.
-spec close(queue()) -> ok | {error, iommap:reason()}.
close(#queue{handle = H}) ->
    iommap:close(H);
close(_) ->
    erlang:error(badarg).

%% The engine runs these requests off its main loop, under a file lock.
call(H, Req) ->
    iommap_client:call(H, Req).
