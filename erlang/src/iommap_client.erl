%% @private
%% @doc The calling side of the engine protocol (see port/PROTOCOL.md).
%%
%% Data calls (pread, pwrite, sync, ...) do not pass through any server: the
%% calling process encodes its request, registers a reply alias under a fresh
%% request id in the engine's pending table, and writes to the port itself.
%% The engine server only routes each reply to the alias its id names. The
%% alias comes from a monitor on the engine server, so if the engine dies the
%% caller gets a 'DOWN' at once instead of waiting forever, with no timeout
%% that would break a long sync.
%%
%% Handle-table changes (open, close, controlling_process) go through the
%% engine server, which owns the table and the owner monitors.
-module(iommap_client).

-include("iommap_int.hrl").

-export([open/6, close/1, controlling_process/3, call/2, engine/0]).
-export([stage_get/1, stage_put/2]).

%% A process's stage (PROTOCOL.md, "Stages"): the engine's stage id and this
%% process's raw file on it, or none until RetryAt (monotonic milliseconds).
-type stage() :: {stage, StageId :: pos_integer(), file:fd()} | {none, RetryAt :: integer()}.
-export_type([stage/0]).

%% Largest frame the engine accepts (port.MaxFrame), less room for the header.
-define(MAX_DATA, (16#7FFFFFFF - 64)).
%% Longest list one request may carry (port.MaxVector).
-define(MAX_VECTOR, 65536).

%% @doc The running engine, or undefined if none is up.
%%
%% It is read from a named table of the engine server rather than from
%% persistent_term: replacing a persistent term, as every restart would,
%% makes the runtime scan every process of the node for the old term; the
%% table needs no such clean-up and goes with its server, so no stale engine
%% is ever found. The lookup copies a dozen words, little next to a call.
-spec engine() -> #engine{} | undefined.
engine() ->
    try
        ets:lookup_element(?ENGINE_TAB, engine, 2)
    catch
        error:badarg -> undefined % no server, or its engine is not up
    end.

%% @doc Runs a request on handle H and returns the engine's answer.
-spec call(reference(), iommap_codec:request()) -> term().
call(H, {pread, Off, Len} = Req) ->
    %% a handle this process has read directly before needs no lookup
    case iommap_direct:cached_read(H, Off, Len) of
        engine -> call_engine(H, Req);
        Answer -> Answer
    end;
call(H, Req) ->
    call_engine(H, Req).

call_engine(H, Req) ->
    case engine() of
        undefined -> {error, closed};
        E -> call(E, H, Req)
    end.

call(#engine{handles = Handles} = E, H, Req) ->
    try ets:lookup(Handles, H) of
        %% reads of shared mappings may be served here (iommap_direct)
        [{_, HId, Owner}] -> with_owner(Req, Owner, iommap_direct:run(E, H, HId, Req, fun fit/3));
        [] -> {error, closed}
    catch
        error:badarg -> {error, closed} % the table died with its engine
    end.

%% info: the engine knows the mapping, this side knows the owner.
with_owner({info}, Owner, {ok, Info}) -> {ok, Info#{owner => Owner}};
with_owner(_, _, Result) -> Result.

%% A request is sent if it fits what one request may carry: a frame of at
%% most 2 GiB and lists of at most ?MAX_VECTOR elements. One past that
%% still answers in the documented order, a closed handle, then the mode,
%% then the bounds, and only then its size: the engine checks the first
%% three for the bytes the request would touch (its check request).
fit(E, HId, Req) ->
    case too_large(Req) of
        false ->
            run(E, HId, Req);
        {Reason, Access, End} ->
            case send(E, HId, {check, Access, End}) of
                ok -> {error, Reason};
                Error -> Error
            end
    end.

too_large({pwrite, Off, _, Size}) when Size > ?MAX_DATA ->
    {enomem, write, Off + Size};
too_large({pread_many, Rs}) when length(Rs) > ?MAX_VECTOR ->
    {e2big, read, lists:foldl(fun({Off, Len}, M) -> max(M, Off + Len) end, 0, Rs)};
too_large({pwrite_many, Pieces}) when length(Pieces) > ?MAX_VECTOR ->
    {e2big, write, pieces_end(Pieces)};
too_large({pwrite_many, Pieces}) ->
    case iommap_codec:pieces_size(Pieces) > ?MAX_DATA of
        true -> {enomem, write, pieces_end(Pieces)};
        false -> false
    end;
too_large(_) ->
    false.

pieces_end(Pieces) ->
    lists:foldl(fun({Off, _, Size}, M) -> max(M, Off + Size) end, 0, Pieces).

%% Bulk reads and writes go through the caller's stage when it has one.
run(E, HId, {pread, Off, Len} = Req) ->
    transfer(E, HId, Req, read, Off, Len);
run(E, HId, {pwrite, Off, Data, Size} = Req) ->
    transfer(E, HId, Req, {write, Data}, Off, Size);
run(E, HId, Req) ->
    send(E, HId, Req).

transfer(#engine{stage_min = Min} = E, HId, Req, Dir, Off, Len) when Len >= Min, Len =< ?MAX_DATA ->
    case stage(E) of
        {SId, Fd} -> staged(E, HId, Req, Dir, Off, Len, {SId, Fd});
        none -> send(E, HId, Req)
    end;
transfer(E, HId, Req, _, _, _) ->
    send(E, HId, Req).

%% Staged transfers (PROTOCOL.md, "Stages"). A pipe moves about 1.5 GB/s;
%% a stage is memory this process and the engine both have open, so bulk
%% bytes cross with one copy on each side. The engine does its copy under
%% the handle's lock and the fault guard, so the answers are those of a
%% plain pread or pwrite. If the stage fails on this side, the call goes
%% through the pipe instead (a read can be repeated; a write has not been
%% sent yet).
staged(E, HId, Req, read, Off, Len, {SId, Fd}) ->
    Result = case send(E, HId, {pread_staged, Off, Len, SId}) of
                 ok ->
                     case file:pread(Fd, 0, Len) of
                         {ok, Bin} when byte_size(Bin) =:= Len ->
                             {ok, Bin};
                         _ ->
                             drop_stage(E),
                             send(E, HId, Req)
                     end;
                 Error ->
                     Error
             end,
    %% after an error too: an engine killed after it grew the stage for
    %% this read answers nothing, and an idle process would hold it all
    trim(Fd, Len),
    Result;
staged(E, HId, Req, {write, Data}, Off, Size, {SId, Fd}) ->
    case file:pwrite(Fd, 0, Data) of
        ok ->
            Result = send(E, HId, {pwrite_staged, Off, Size, SId}),
            trim(Fd, Size),
            Result;
        {error, _} ->
            drop_stage(E),
            send(E, HId, Req)
    end.

%% A stage keeps the memory of its largest transfer; past this much it is
%% given back at once, so an idle process holds at most this.
-define(STAGE_KEEP, (8 bsl 20)).

trim(Fd, Size) when Size > ?STAGE_KEEP ->
    _ = file:truncate(Fd), % the position is always 0; failing, it only keeps memory
    ok;
trim(_, _) -> ok.

%% The stage of the calling process, opened on first use and kept in
%% ?STAGES, where the process cannot lose it: the VM closes a raw file only
%% when its owner closes it or exits, never by garbage collection, so a
%% stage kept in the process dictionary and lost to erase() stayed open
%% for good. The row names the engine's port: a stage of an engine that
%% has died is closed before a new one is opened. If no stage can be had
%% (stage_max processes hold one already, no /proc, no file descriptor
%% left), the process uses the pipe and asks again after ?STAGE_RETRY_MS.
-define(STAGE_RETRY_MS, 1000).

stage(#engine{port = Port} = E) ->
    case stage_get(self()) of
        {Port, {stage, SId, Fd}} ->
            {SId, Fd};
        {Port, {none, RetryAt}} ->
            case erlang:monotonic_time(millisecond) >= RetryAt of
                true -> open_stage(E);
                false -> none
            end;
        {_, Old} ->
            close_stage(Old),
            open_stage(E);
        undefined ->
            open_stage(E)
    end.

open_stage(#engine{server = S, port = Port}) ->
    try gen_server:call(S, {stage_open, self()}, infinity) of
        {ok, SId, Path} ->
            case file:open(Path, [raw, read, write, binary]) of
                {ok, Fd} ->
                    keep(Port, {stage, SId, Fd});
                {error, _} ->
                    gen_server:cast(S, {stage_close, self(), SId}),
                    no_stage(Port)
            end;
        {error, _} ->
            no_stage(Port)
    catch
        exit:_ -> no_stage(Port)
    end.

no_stage(Port) ->
    keep(Port, {none, erlang:monotonic_time(millisecond) + ?STAGE_RETRY_MS}).

%% Writes the caller's row. The engine server deletes the rows of processes
%% that exit: a new server watches those it finds at its start, so a row
%% written as the engine died may come too late to be watched. A stage of
%% a dead engine is of no use anyway: such a row is dropped here at once.
keep(Port, Stage) ->
    try stage_put(Port, Stage) of
        ok ->
            case engine() of
                #engine{port = Port} -> used(Stage);
                _ -> forget_stage(Stage)
            end
    catch
        error:badarg -> forget_stage(Stage) % no table: the application has stopped
    end.

used({stage, SId, Fd}) -> {SId, Fd};
used({none, _}) -> none.

forget_stage(Stage) ->
    close_stage(Stage),
    _ = try ets:delete(?STAGES, self()) catch error:badarg -> true end,
    none.

drop_stage(#engine{server = S, port = Port}) ->
    case stage_get(self()) of
        {Port, {stage, SId, _} = Stage} ->
            gen_server:cast(S, {stage_close, self(), SId}),
            close_stage(Stage),
            _ = no_stage(Port),
            ok;
        _ ->
            ok
    end.

close_stage({stage, _, Fd}) -> _ = file:close(Fd), ok;
close_stage({none, _}) -> ok.

%% @doc The stage row of process Pid: the port of the engine its stage
%% belongs to, and the stage.
-spec stage_get(pid()) -> {port(), stage()} | undefined.
stage_get(Pid) ->
    try ets:lookup(?STAGES, Pid) of
        [{_, Port, Stage}] -> {Port, Stage};
        [] -> undefined
    catch
        error:badarg -> undefined % the application is not running
    end.

%% @doc Sets the calling process's stage row. Raises badarg if the
%% application is not running.
-spec stage_put(port(), stage()) -> ok.
stage_put(Port, Stage) ->
    true = ets:insert(?STAGES, {self(), Port, Stage}),
    ok.

%% Lanes (iommap_lanes): a small request goes on a lane when one is free,
%% and through the port when none is (or lanes are off).
send(#engine{lanes = Pool} = E, HId, Req) when Pool =/= undefined ->
    case on_lane(Req) andalso iommap_lanes:call(Pool, fun(Id) -> iommap_codec:encode(Id, HId, Req) end) of
        {ok, Frame} -> iommap_codec:decode(Frame);
        {error, closed} = Closed -> Closed;
        _ -> send_port(E, HId, Req) % not small, or no lane free
    end;
send(E, HId, Req) ->
    send_port(E, HId, Req).

%% A lane carries the small calls only: a read or write of less than
%% ?LANE_BYTES, position and the atomics, which the engine answers in a few
%% microseconds on its main loop. Everything else (vectors, staged
%% transfers, open, close, sync, truncate, the queue's and block store's
%% requests, which may wait for another OS process's lock on the file)
%% keeps the engine longer than a lane's caller polls, and takes the port.
-define(LANE_BYTES, 65536).

on_lane({pread, _, Len}) -> Len < ?LANE_BYTES;
on_lane({pwrite, _, _, Size}) -> Size < ?LANE_BYTES;
on_lane(Req) ->
    lists:member(element(1, Req), [position, load, store, add, sub, bit_and, bit_or, bit_xor,
                                   exchange, compare_exchange]).

%% The caller waits for its reply blocked: a caller that yielded for a
%% while first (the former wait_spin) lost more with 2 to 8 callers than it
%% won with one (docs/PERFORMANCE.md).
send_port(#engine{server = S, port = Port, pending = Pending, ids = Ids}, HId, Req) ->
    Alias = erlang:monitor(process, S, [{alias, demonitor}]),
    try
        %% The pid lets the engine server sweep the entry if this process
        %% is killed before the reply comes (or before the request is sent).
        Id = iommap_codec:new_id(Pending, Ids, {Alias, self()}),
        true = erlang:port_command(Port, iommap_codec:encode(Id, HId, Req)),
        Id
    of
        _ -> await(Alias)
    catch
        error:badarg ->
            erlang:demonitor(Alias, [flush]),
            {error, closed}
    end.

await(Alias) ->
    receive
        {Alias, _} = Msg -> answer(Alias, Msg);
        {'DOWN', Alias, process, _, _} = Msg -> answer(Alias, Msg)
    end.

answer(Alias, {Alias, Reply}) ->
    erlang:demonitor(Alias, [flush]),
    iommap_codec:decode(Reply);
answer(_, {'DOWN', _, process, _, _}) ->
    {error, closed}.

%% @doc Opens through the engine server, which records the handle and
%% monitors its owner. Starts the application on first use.
-spec open(binary(), atom(), shared | private, non_neg_integer() | undefined,
           0..8#7777 | undefined, [atom()]) ->
          {ok, reference()} | {error, term()}.
open(Path, Mode, Share, Size, Perm, Flags) ->
    server_call({open, Path, Mode, Share, Size, Perm, Flags, self()}, 50).

-spec close(reference()) -> ok | {error, term()}.
close(H) ->
    case whereis(iommap_engine) of
        undefined ->
            {error, closed};
        _ ->
            Result = server_call({close, H}, 0),
            %% no reader holds the file once close returns
            ok = iommap_direct_files:closed(H),
            Result
    end.

-spec controlling_process(reference(), pid(), pid()) -> ok | {error, term()}.
controlling_process(H, Pid, Caller) ->
    case whereis(iommap_engine) of
        undefined -> {error, closed};
        _ -> server_call({controlling_process, H, Pid, Caller}, 0)
    end.

%% The engine server may be between incarnations (the supervisor restarts
%% it after a crash, at once) or not started yet: start the application and
%% retry for a while. A server that is up but waits to start its engine
%% (the restart back-off) holds an open until the engine is up. A server
%% that dies under the call means the request was lost with its engine.
server_call(Msg, Retries) ->
    try
        gen_server:call(iommap_engine, Msg, infinity)
    catch
        exit:{noproc, _} when Retries > 0 ->
            ensure_started(),
            server_call(Msg, Retries - 1);
        exit:_ ->
            {error, closed}
    end.

ensure_started() ->
    case application:ensure_all_started(iommap) of
        {ok, []} -> timer:sleep(10); % running: the server is being restarted
        {ok, _} -> ok;
        {error, Reason} -> erlang:error({iommap_not_started, Reason})
    end.
