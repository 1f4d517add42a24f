%% @private
%% @doc Direct reads: pread and region_binary of a `shared' mapping on
%% Linux served in the calling process, with no round trip to the engine.
%%
%% The caller reads the mapping itself, in the engine's memory, through
%% /proc/<engine os pid>/mem at the mapping's address plus the offset: the
%% same bytes the engine would copy, and the same answers (the partial last
%% page of a file shrunk under the mapping reads as zeros; a page past the
%% end makes the read stop short or fail, and the call then goes to the
%% engine, whose answer is sigbus). A process holds one such descriptor for
%% all handles, and it holds nothing of any file. Reads of ?FILE_MIN bytes
%% or more, and all reads of a handle by a process that read it more than
%% ?FILE_AFTER times, are of the file instead, through a descriptor of
%% /proc/<engine>/fd/<N> that iommap_direct_files owns and lends (it closes
%% them when the handle closes); a read past the file's end comes back
%% short and goes to the engine likewise.
%%
%% A mapping moves on truncate and goes on close, and its address may be
%% reused by another mapping at once, so a stale address must never give
%% bytes. Each region row holds an atomics array [State, Addr, Size]. State
%% is Epoch * 2^32 + Busy: whoever may move or unmap the mapping (a
%% truncate, a close) first adds 2^32 + 1, so State changes and Busy is not
%% 0 until the new address is stored. A read takes State before it reads
%% Addr and Size, and trusts the bytes only if State was not busy and is
%% the same after the read. Anything else (busy, changed, a short read, an
%% error) sends the call to the engine, which has the authoritative answer.
%% A caller killed in the middle of a truncate leaves Busy above 0 for good:
%% that handle is read through the engine from then on.
%%
%% The descriptor lives in ?READERS, a table of the supervisor keyed by pid
%% (a raw file is closed only by its owner or at its exit, so one lost to
%% erase() would stay open). The engine server monitors each process that
%% has a row and deletes the row when it exits; the descriptor closes with
%% the process.
%%
%% The process dictionary holds only a cache, under ?CACHE: the engine's
%% port, the descriptor, and the regions of the handles the process read
%% (at most ?CACHE_MAX), each with the file's lent descriptor or the count
%% of the process's reads of it. A read of a cached handle then costs no table
%% lookup: it was measured to cost more than the lookups themselves between
%% two dirty-scheduler calls (their data is cold by then). The cache owns
%% nothing: erase() loses nothing that the next read does not find again in
%% the tables. A cached region is trusted only as the table's would be (its
%% State, then the port still open after the read); a handle found closed
%% (busy for good) leaves the cache, and a port of an engine that has gone
%% empties it.
-module(iommap_direct).

-include_lib("kernel/include/file.hrl").
-include("iommap_int.hrl").

-export([cached_read/3, run/5, applies/1, new_regions/0, add_region/3, closing/1, closing_all/0,
         watch/2, forget/1, sweep/0, reader/1]).

%% Busy is the low 32 bits of State; each mover adds ?MOVE.
-define(BUSY, 16#FFFFFFFF).
-define(MOVE, (1 bsl 32 + 1)).
%% A process that could not open /proc/<engine>/mem reads through the
%% engine, and tries again after this long.
-define(RETRY_MS, 1000).
%% The process-dictionary key of a reading process's cache (see above), and
%% how many handles it keeps: a process that reads more starts again empty.
-define(CACHE, '$iommap_direct').
-define(CACHE_MAX, 64).
%% From this many bytes on, a read is of the file itself (see
%% iommap_direct_files): /proc/<engine>/mem was measured at 0.93x of a
%% pread of the file at 16 KiB, 0.78x at 64 KiB and 0.51x at 1 MiB.
-define(FILE_MIN, 16384).
%% A process that keeps reading a handle asks for the file's descriptor
%% after ?FILE_AFTER smaller reads: the asking costs about three reads, and
%% each read of the file saves about 5% of one over /proc/<engine>/mem.
-define(FILE_AFTER, 64).
%% A pread_many of at most ?MANY_MAX ranges of ?MANY_MIN bytes or more is
%% read directly, a range a read: there a dirty call a range costs less
%% than the bytes' trip through the engine (docs/PERFORMANCE.md).
-define(MANY_MAX, 16).
-define(MANY_MIN, 65536).
%% Larger reads go to the engine, which answers them in the documented way
%% (enomem after the checks).
-define(MAX_DATA, (16#7FFFFFFF - 64)).

%% @doc A pread of handle H served from the caller's cache, or engine when
%% the handle is not in it or the read cannot be trusted (the caller then
%% takes the usual way, through run/5). Off and Len are non-negative.
-spec cached_read(reference(), non_neg_integer(), non_neg_integer()) ->
          {ok, binary()} | {error, eacces | out_of_bounds} | engine.
cached_read(H, Off, Len) ->
    try
        cached_read(get(?CACHE), H, Off, Len)
    catch
        %% not what this module put there
        error:_ -> erase(?CACHE), engine
    end.

cached_read({Port, #file_descriptor{data = #{owner := Owner}} = Fd, #{} = Regions}, H, Off, Len)
  when Owner =:= self(), is_map_key(H, Regions) ->
    {Mode, Ref, EFd, File} = maps:get(H, Regions),
    case check(Mode, Ref, Off, Len) of
        {read, State, Addr} ->
            case source(H, File, Len) of
                ask ->
                    engine; % the table's way asks for the file's descriptor
                Source ->
                    case read(Port, Fd, Source, Ref, State, Addr, Off, Len) of
                        engine ->
                            forget_port(Port, Fd, Regions),
                            engine;
                        lost ->
                            put(?CACHE, {Port, Fd, Regions#{H := {Mode, Ref, EFd, 0}}}),
                            engine;
                        Answer when is_integer(File) ->
                            put(?CACHE, {Port, Fd, Regions#{H := {Mode, Ref, EFd, File + 1}}}),
                            Answer;
                        Answer ->
                            Answer
                    end
            end;
        busy ->
            put(?CACHE, {Port, Fd, maps:remove(H, Regions)}),
            engine;
        Answer ->
            %% an answer from the size alone: the engine's port still open
            %% means no stop began (a killed engine server bumps no State)
            case erlang:port_info(Port, id) of
                undefined -> erase(?CACHE), engine;
                _ -> Answer
            end
    end;
cached_read(_, _, _, _) ->
    engine.

%% A cache whose port has closed is of no more use.
forget_port(Port, Fd, Regions) ->
    case erlang:port_info(Port, id) of
        undefined -> erase(?CACHE);
        _ -> put(?CACHE, {Port, Fd, Regions})
    end.

%% What the caller's cache holds of H's file (see file/7), 0 if nothing.
cached(Port, Fd, H) ->
    case get(?CACHE) of
        {Port, Fd, #{H := {_, _, _, File}}} -> File;
        _ -> 0
    end.

remember(Port, Fd, H, Region) ->
    Regions = case get(?CACHE) of
                  {Port, Fd, #{} = R} when map_size(R) < ?CACHE_MAX; is_map_key(H, R) -> R;
                  _ -> #{}
              end,
    put(?CACHE, {Port, Fd, Regions#{H => Region}}).

%% @doc Runs Req on handle H (engine handle HId), a handle of engine E that
%% the caller found open: a pread directly if it can, a truncate with the
%% region kept up to date; Fit(E, HId, Req) is the engine's way, for
%% everything else and whenever the direct way cannot answer.
-spec run(#engine{}, reference(), non_neg_integer(), iommap_codec:request(),
          fun((#engine{}, non_neg_integer(), iommap_codec:request()) -> term())) -> term().
run(E, H, HId, {pread, Off, Len} = Req, Fit) ->
    case read(E, H, Off, Len) of
        engine -> Fit(E, HId, Req);
        Answer -> Answer
    end;
run(E, H, HId, {truncate, _} = Req, Fit) ->
    case region(H) of
        {_, Ref, _} ->
            _ = atomics:add(Ref, 1, ?MOVE),
            try Fit(E, HId, Req)
            after settle(E, HId, Fit, Ref)
            end;
        none ->
            Fit(E, HId, Req)
    end;
run(E, H, HId, {pread_many, Rs} = Req, Fit) when length(Rs) =< ?MANY_MAX ->
    %% a reply the engine would refuse (enomem) is its to answer
    Fits = lists:sum([Len + 5 || {_, Len} <- Rs]) =< ?MAX_DATA,
    case Fits andalso lists:all(fun({_, Len}) -> Len >= ?MANY_MIN end, Rs) andalso read_many(E, H, Rs) of
        {ok, _} = Answer -> Answer;
        _ -> Fit(E, HId, Req)
    end;
run(E, _, HId, Req, Fit) ->
    Fit(E, HId, Req).

%% Every range read directly at one State (no truncate or close between
%% the first check and the last read), or engine: the engine then checks
%% and answers the whole list, errors included.
read_many(E, H, Rs) ->
    case region(H) of
        {_, Ref, _} ->
            State = atomics:get(Ref, 1),
            Bins = [case read(E, H, Off, Len) of
                        {ok, Bin} -> Bin;
                        _ -> engine
                    end || {Off, Len} <- Rs],
            %% State only grows: the same after the last read, no truncate
            %% or close began since before the first
            case State band ?BUSY =:= 0 andalso atomics:get(Ref, 1) =:= State
                andalso not lists:member(engine, Bins) of
                true -> {ok, Bins};
                false -> engine
            end;
        none ->
            engine
    end.

%% The checks in the API's order (the handle was found open: closed comes
%% first), then the bytes, validated after the read.
read(#engine{port = Port} = E, H, Off, Len) ->
    case region(H) of
        {Mode, Ref, EFd} ->
            case check(Mode, Ref, Off, Len) of
                {read, State, Addr} ->
                    case fd(E) of
                        none ->
                            engine;
                        Fd ->
                            {File, Source} = file(E, Fd, H, Ref, State, EFd, Len),
                            case read(Port, Fd, Source, Ref, State, Addr, Off, Len) of
                                lost ->
                                    remember(Port, Fd, H, {Mode, Ref, EFd, 0}),
                                    engine;
                                Answer ->
                                    remember(Port, Fd, H, {Mode, Ref, EFd, File}),
                                    Answer
                            end
                    end;
                busy ->
                    engine;
                Answer ->
                    Answer
            end;
        none ->
            engine
    end.

%% Where a read of Len bytes goes, by what the caller holds of the file:
%% its descriptor; or, while it has read less than ?FILE_AFTER times (an
%% integer, the count) or was refused one ({none, RetryAt}), the mapping,
%% for a read of less than ?FILE_MIN bytes; else ask.
source(H, #file_descriptor{data = #{owner := Owner, iommap_direct_files := {H, _}}} = File, _)
  when Owner =:= self() ->
    File;
source(_, #file_descriptor{}, _) -> error(badarg); % not lent to this process for H
source(_, N, Len) when is_integer(N), N < ?FILE_AFTER, Len < ?FILE_MIN -> mem;
source(_, {none, _}, Len) when Len < ?FILE_MIN -> mem;
source(_, _, _) -> ask.

%% What the caller holds of H's file after it asked, if it must
%% (iommap_direct_files), and where this read goes.
file(#engine{port = Port} = E, Fd, H, Ref, State, EFd, Len) ->
    File = try
               F = cached(Port, Fd, H),
               _ = source(H, F, Len), % raises on a descriptor not lent for H
               F
           catch
               error:_ -> 0 % not what this module put there
           end,
    Ask = source(H, File, Len) =:= ask andalso
        case File of
            {none, RetryAt} -> erlang:monotonic_time(millisecond) >= RetryAt;
            _ -> true
        end,
    case Ask andalso iommap_direct_files:open(H, Ref, State, E, EFd) of
        false when is_record(File, file_descriptor) -> {File, File};
        false when is_integer(File) -> {File + 1, mem};
        false -> {File, mem};
        none -> {{none, erlang:monotonic_time(millisecond) + ?RETRY_MS}, mem};
        Mine -> {Mine, Mine}
    end.

%% The checks of a read of Len bytes at Off, after closed (busy: the
%% handle is being closed or truncated, or was): the answer, or the
%% mapping's address with the State to check after the read.
check(Mode, Ref, Off, Len) ->
    State = atomics:get(Ref, 1),
    if
        State band ?BUSY =/= 0 -> busy;
        Mode =:= write -> {error, eacces};
        true ->
            Addr = atomics:get(Ref, 2),
            Size = atomics:get(Ref, 3),
            if
                Off > Size; Len > Size - Off -> valid(Ref, State, {error, out_of_bounds});
                Len =:= 0 -> valid(Ref, State, {ok, <<>>});
                Len > ?MAX_DATA -> busy;
                true -> {read, State, Addr}
            end
    end.

%% Len bytes at Off: from the file's descriptor if the caller has one,
%% else from the mapping in the engine's memory. lost: that descriptor is
%% of no more use (the keeper closed it).
read(Port, _, #file_descriptor{data = #{iommap_direct_files := {_, Busy}}} = File, Ref, State, _, Off, Len) ->
    %% counted, so that the keeper tells this read from a closed descriptor
    counters:add(Busy, 1, 1),
    try file:pread(File, Off, Len) of
        {error, einval} -> lost;
        Result -> trust(Port, Ref, State, Len, Result)
    catch
        error:_ -> lost
    after
        counters:sub(Busy, 1, 1)
    end;
read(Port, Fd, mem, Ref, State, Addr, Off, Len) ->
    trust(Port, Ref, State, Len, file:pread(Fd, Addr + Off, Len)).

%% The bytes of a read if they are the mapping's: all of them, the engine's
%% port still open after the read (the engine had not been told to stop,
%% it unmaps everything then), and State unchanged (no truncate or close
%% began meanwhile). A short read is a file shrunk under the mapping: the
%% engine answers what the mapping would.
trust(Port, Ref, State, Len, {ok, Bin}) when byte_size(Bin) =:= Len ->
    case atomics:get(Ref, 1) =:= State andalso erlang:port_info(Port, id) =/= undefined of
        true -> {ok, Bin};
        false -> engine
    end;
trust(_, _, _, _, _) ->
    engine.

%% An answer from the size, if no truncate or close began meanwhile.
valid(Ref, State, Answer) ->
    case atomics:get(Ref, 1) of
        State -> Answer;
        _ -> busy
    end.

region(H) ->
    try ets:lookup(?REGIONS, H) of
        [{_, Mode, Ref, EFd}] -> {Mode, Ref, EFd};
        [] -> none
    catch
        error:badarg -> none % no engine server
    end.

%% After a truncate (done or failed: the mapping may have moved either
%% way). Several truncates of one handle may be in flight; the region is
%% stored only by one that is alone (Busy = 1, its own), with an address
%% asked after its truncate ended, and it makes Busy 0 only if nobody began
%% another truncate meanwhile (State, with its epoch, unchanged); else it
%% tries again. One that is not alone leaves the storing to the others. If
%% the region cannot be had (the handle was closed, the engine died), Busy
%% stays: the handle is read through the engine.
settle(E, HId, Fit, Ref) ->
    State = atomics:get(Ref, 1),
    case State band ?BUSY of
        1 ->
            case Fit(E, HId, {region}) of
                {ok, {Addr, Size, _}} when is_integer(Addr), is_integer(Size) ->
                    atomics:put(Ref, 2, Addr),
                    atomics:put(Ref, 3, Size),
                    case atomics:compare_exchange(Ref, 1, State, State - 1) of
                        ok -> ok;
                        _ -> settle(E, HId, Fit, Ref)
                    end;
                _ ->
                    ok
            end;
        _ ->
            case atomics:compare_exchange(Ref, 1, State, State - 1) of
                ok -> ok;
                _ -> settle(E, HId, Fit, Ref)
            end
    end.

%% The calling process's descriptor on /proc/<engine>/mem, opened on its
%% first direct read. One of an engine that has died is closed and a new one
%% opened; with direct_readers_max rows on the node already, none (the
%% engine path).
fd(#engine{port = Port} = E) ->
    try ets:lookup(?READERS, self()) of
        [{_, Port, {fd, Fd}}] ->
            Fd;
        [{_, Port, {none, RetryAt}}] ->
            case erlang:monotonic_time(millisecond) >= RetryAt of
                true -> open_fd(E);
                false -> none
            end;
        [{_, _, Old}] ->
            close_fd(Old),
            open_fd(E);
        [] ->
            case reserve(iommap_env:get(direct_readers_max)) of
                true -> open_fd(E);
                false -> none
            end
    catch
        error:badarg -> none % the application is not running
    end.

%% A row for the caller, if the node has fewer than Max: it is written
%% first and counted after, so that processes racing for the last rows can
%% never pass the bound (the last of them to write counts all the others),
%% at worst they all refuse. A process killed between the two leaves its
%% row: the engine server's sweep takes away rows of dead processes.
reserve(Max) ->
    ets:info(?READERS, size) < Max andalso
        begin
            true = ets:insert(?READERS, {self(), reserved, {none, 0}}),
            ets:info(?READERS, size) =< Max orelse not ets:delete(?READERS, self())
        end.

open_fd(#engine{os_pid = OsPid} = E) ->
    case file:open("/proc/" ++ integer_to_list(OsPid) ++ "/mem", [raw, read, binary]) of
        {ok, Fd} -> keep(E, {fd, Fd});
        {error, _} -> keep(E, {none, erlang:monotonic_time(millisecond) + ?RETRY_MS})
    end.

%% Writes the caller's row and has the engine server watch it. A new server
%% watches the rows it finds at its start; one written as the engine died
%% may come too late for that, and is of no use anyway: dropped at once.
keep(#engine{server = S, port = Port}, Reader) ->
    true = ets:insert(?READERS, {self(), Port, Reader}),
    gen_server:cast(S, {direct_reader, self()}),
    case iommap_client:engine() of
        #engine{port = Port} ->
            case Reader of
                {fd, Fd} -> Fd;
                {none, _} -> none
            end;
        _ ->
            close_fd(Reader),
            ets:delete(?READERS, self()),
            none
    end.

close_fd({fd, Fd}) -> _ = file:close(Fd), ok;
close_fd({none, _}) -> ok.

%% @doc The reader row of process Pid: the engine port its descriptor is
%% for, and the descriptor (or none until RetryAt).
-spec reader(pid()) -> {port(), {fd, file:fd()} | {none, integer()}} | undefined.
reader(Pid) ->
    try ets:lookup(?READERS, Pid) of
        [{_, Port, Reader}] -> {Port, Reader};
        [] -> undefined
    catch
        error:badarg -> undefined
    end.

%% The engine server's side.

%% @doc Whether handles opened with this sharing get a region: shared ones,
%% on Linux, with direct_reads on.
-spec applies(shared | private) -> boolean().
applies(Share) ->
    Share =:= shared andalso os:type() =:= {unix, linux} andalso iommap_env:get(direct_reads) =:= true.

%% @doc Creates ?REGIONS, in the engine server.
-spec new_regions() -> ok.
new_regions() ->
    ?REGIONS = ets:new(?REGIONS, [named_table, protected, set, {read_concurrency, true}]),
    ok.

%% @doc Records where handle H's mapping lies (the engine's region answer).
-spec add_region(reference(), iommap:mode(), term()) -> ok.
add_region(H, Mode, {Addr, Size, EFd})
  when is_integer(Addr), Addr > 0, is_integer(Size), Size >= 0, is_integer(EFd), EFd >= 0 ->
    Ref = atomics:new(3, [{signed, false}]),
    atomics:put(Ref, 2, Addr),
    atomics:put(Ref, 3, Size),
    true = ets:insert(?REGIONS, {H, Mode, Ref, EFd}),
    ok;
add_region(_, _, _) ->
    ok. % no region: the handle is read through the engine

%% @doc Before the engine is asked to close H: no direct read of it may
%% trust an address from now on.
-spec closing(reference()) -> ok.
closing(H) ->
    case region(H) of
        {_, Ref, _} ->
            _ = atomics:add(Ref, 1, ?MOVE),
            true = ets:delete(?REGIONS, H),
            iommap_direct_files:closing(H);
        none ->
            ok
    end.

%% @doc Before the engine is told to stop (it unmaps everything then).
-spec closing_all() -> ok.
closing_all() ->
    try ets:foldl(fun({_, _, Ref, _}, ok) -> _ = atomics:add(Ref, 1, ?MOVE), ok end, ok, ?REGIONS)
    catch error:badarg -> ok
    end.

%% @doc The reader rows a new engine server finds, of processes that read
%% through an engine that died: Fun(Pid, Acc) for those alive (to watch
%% them), the others deleted.
-spec watch(fun((pid(), Acc) -> Acc), Acc) -> Acc.
watch(Fun, Acc0) ->
    ets:foldl(fun({Pid, _, _}, Acc) ->
                      case is_process_alive(Pid) of
                          true -> Fun(Pid, Acc);
                          false -> ets:delete(?READERS, Pid), Acc
                      end
              end, Acc0, ?READERS).

%% @doc Deletes the rows of processes that are gone (see reserve/1).
-spec sweep() -> ok.
sweep() ->
    Dead = ets:select(?READERS, [{{'$1', '_', '_'}, [], ['$1']}]),
    _ = [ets:delete(?READERS, Pid) || Pid <- Dead, not is_process_alive(Pid)],
    ok.

%% @doc Deletes the row of Pid, which has exited (its descriptor closed
%% with it).
-spec forget(pid()) -> ok.
forget(Pid) ->
    _ = ets:delete(?READERS, Pid),
    ok.
