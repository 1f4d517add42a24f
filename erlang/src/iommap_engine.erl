%% @private
%% @doc The process that owns the engine port.
%%
%% It starts the Go engine, checks that it speaks our protocol version, and
%% publishes what callers need (see iommap_client:engine/0) in a named table
%% it owns. From then on it routes each reply frame to the alias registered
%% under its request id, keeps the handle table, and closes the handles of
%% owners that die, as a port or socket is closed when its owner dies.
%%
%% init/1 returns at once and the engine is started after it (the restart
%% back-off is a timer), so this process never keeps its supervisor, or an
%% application stop, waiting. Until the engine is up, data calls find no
%% engine and answer {error, closed}, and opens wait here for it.
%%
%% If the engine exits, this server stops with it: every caller waiting on a
%% reply holds a monitor on this server and gets {error, closed} at once, the
%% handle table goes away (so old handles give {error, closed}), and the
%% supervisor starts a new server with a new engine.
-module(iommap_engine).
-behaviour(gen_server).

-include("iommap_int.hrl").

-export([start_link/0, await_up/0, os_pid/0, info/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, handle_continue/2, terminate/2]).

-define(HELLO_TIMEOUT, 10000).
%% How often lanes whose caller died are replaced (iommap_lanes:sweep/1).
-define(LANES_SWEEP_MS, 100).
%% How often entries of dead callers are swept from the pending table.
-define(SWEEP_MS, 5000).
%% Replies this big are let go of at once after routing (see let_go/2).
-define(LET_GO_BYTES, 262144).
%% Restart back-off (see backoff/0): an engine that lived less than
%% ?STABLE_MS counts as flapping; each flap in a row doubles the wait before
%% the next start, from ?BACKOFF_MS up to ?BACKOFF_MAX_MS.
-define(STABLE_MS, 5000).
-define(BACKOFF_MS, 10).
-define(BACKOFF_MAX_MS, 1000).

%% What an owner holds: its handles, and its stage: the engine's stage id,
%% or none when it has a row in ?STAGES but no stage of this engine (it
%% was refused one, or its stage is of an engine that died). Its monitor
%% lets the handles be closed and the row deleted when it exits.
-type owned() :: #{reference() => true, stage => pos_integer() | none}.

-record(st, {
    phase = backoff :: backoff | hello | up,
    port :: port() | undefined,
    engine :: #engine{} | undefined,   %% once up
    waiting = [] :: [{term(), gen_server:from()}], %% calls that wait for the engine, last first
    owners = #{} :: #{pid() => {reference(), owned()}},
    stages = 0 :: non_neg_integer(), %% open or being opened, at most stage_max
    stage_max :: non_neg_integer(),
    %% the paths of open delete_on_close handles: the engine unlinks each
    %% when it closes the handle; if the engine dies, this server does
    unlink = #{} :: #{reference() => binary()}
}).

%% @doc Starts the engine server, registered as iommap_engine.
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Waits until the engine is up; if it cannot start, the reason.
-spec await_up() -> ok | {error, term()}.
await_up() ->
    try
        gen_server:call(?MODULE, await_up, infinity)
    catch
        exit:{Reason, _} -> {error, Reason}
    end.

%% @doc The OS process id of the running engine.
-spec os_pid() -> {ok, non_neg_integer()} | {error, closed}.
os_pid() ->
    case iommap_client:engine() of
        #engine{port = Port} ->
            case erlang:port_info(Port, os_pid) of
                {os_pid, Pid} -> {ok, Pid};
                undefined -> {error, closed}
            end;
        undefined -> {error, closed}
    end.

%% @doc What an operator wants to know about the running engine.
-spec info() -> {ok, map()} | {error, closed}.
info() ->
    case {os_pid(), iommap_client:engine()} of
        {{ok, OsPid}, #engine{server = S, pending = P, handles = H, version = Vsn}} ->
            %% The server first sweeps requests of callers that have died,
            %% so the count is of requests someone still waits for.
            try gen_server:call(S, stage_count) of
                Stages when is_integer(Stages) ->
                    {ok, #{os_pid => OsPid, handles => ets:info(H, size),
                           stages => Stages,
                           requests_in_flight => ets:info(P, size),
                           engine_version => Vsn, protocol => ?PROTOCOL_VERSION}};
                {error, closed} ->
                    {error, closed}
            catch
                exit:_ -> {error, closed} % the engine died meanwhile
            end;
        _ ->
            {error, closed}
    end.

%% gen_server

%% @private
-spec init([]) -> {ok, #st{}, {continue, start}}.
init([]) ->
    process_flag(trap_exit, true),
    ?ENGINE_TAB = ets:new(?ENGINE_TAB, [named_table, protected, set, {read_concurrency, true}]),
    ok = iommap_direct:new_regions(),
    %% before the engine is published: see iommap_client's keep/2
    St = watch_stage_rows(#st{stage_max = iommap_env:get(stage_max)}),
    {ok, iommap_direct:watch(fun(Pid, Acc) -> own(Pid, reader, true, Acc) end, St), {continue, start}}.

%% @private
-spec handle_call(term(), gen_server:from(), #st{}) ->
          {reply, term(), #st{}} | {noreply, #st{}}.
handle_call(Msg, From, #st{phase = Phase, waiting = Waiting} = St) when Phase =/= up ->
    case waits(Msg) of
        true -> {noreply, St#st{waiting = [{Msg, From} | Waiting]}};
        false -> {reply, {error, closed}, St}
    end;
handle_call(await_up, _From, St) ->
    {reply, ok, St};
handle_call({open, Path, Mode, Share, Size, Perm, Flags, Owner}, From, St) ->
    Unlink = case lists:member(delete_on_close, Flags) of
                 true -> Path;
                 false -> none
             end,
    Direct = iommap_direct:applies(Share) andalso Mode,
    submit({open, Path, Mode, Share, Size, Perm, Flags}, {open, From, Owner, Unlink, Direct}, St),
    {noreply, St};
handle_call({close, H}, From, #st{engine = #engine{handles = T}} = St) ->
    case ets:take(T, H) of
        [{H, HId, Owner}] ->
            ok = iommap_direct:closing(H),
            submit({close, HId}, {reply, From}, St),
            {noreply, forget(Owner, H, St#st{unlink = maps:remove(H, St#st.unlink)})};
        [] ->
            {reply, {error, closed}, St}
    end;
handle_call({controlling_process, H, Pid, Caller}, _From, #st{engine = #engine{handles = T}} = St) ->
    case ets:lookup(T, H) of
        [{H, HId, Caller}] ->
            ets:insert(T, {H, HId, Pid}),
            {reply, ok, own(Pid, H, true, forget(Caller, H, St))};
        [{H, _, _}] ->
            {reply, {error, not_owner}, St};
        [] ->
            {reply, {error, closed}, St}
    end;
handle_call({stage_open, Pid}, From, St0) ->
    %% A process has one stage. If it asks again, it has given up the one
    %% it had: close that one, so stages cannot leak while their process
    %% lives.
    case release_stage(Pid, St0) of
        #st{stages = N, stage_max = Max} = St when N >= Max ->
            {reply, {error, busy}, own(Pid, stage, none, St)};
        #st{stages = N} = St ->
            submit({stage_open}, {stage, From, Pid}, St),
            {noreply, St#st{stages = N + 1}}
    end;
handle_call(stage_count, _From, #st{stages = N} = St) ->
    sweep(St), % info/0 asks this just before it counts the pending requests
    {reply, N, St};
handle_call(_Msg, _From, St) ->
    {reply, {error, badarg}, St}.

%% Until the engine is up, an open (and await_up) waits for it; anything
%% else concerns handles or stages of an engine that is gone.
waits(await_up) -> true;
waits(Msg) -> is_tuple(Msg) andalso element(1, Msg) =:= open.

%% @private
-spec handle_cast(term(), #st{}) -> {noreply, #st{}}.
handle_cast({stage_close, Pid, SId}, #st{owners = Owners} = St) ->
    case Owners of
        #{Pid := {_, #{stage := SId}}} -> {noreply, release_stage(Pid, St)};
        #{} -> {noreply, St}
    end;
handle_cast({direct_reader, Pid}, St) ->
    %% so that its row goes when it exits (see iommap_direct:keep/2)
    {noreply, own(Pid, reader, true, St)};
handle_cast(_Msg, St) ->
    {noreply, St}.

%% @private
-spec handle_info(term(), #st{}) ->
          {noreply, #st{}} | {noreply, #st{}, {continue, let_go}} | {stop, term(), #st{}}.
handle_info({Port, {data, <<131, 104, 2, 98, Id:32/signed, _/binary>> = Frame}},
            #st{engine = #engine{port = Port, pending = P}} = St) ->
    case ets:take(P, Id) of
        [{Id, {Alias, _Caller}}] when is_reference(Alias) ->
            Alias ! {Alias, Frame},
            let_go(Frame, St);
        [{Id, Work}] ->
            {noreply, finish(Work, iommap_codec:decode(Frame), St)};
        [] ->
            %% Its caller died and was swept (see sweep/1): nobody waits.
            {noreply, St}
    end;
handle_info({Port, {data, Frame}}, #st{phase = hello, port = Port} = St) ->
    case hello_reply(Frame) of
        {ok, Vsn} ->
            up(Vsn, St);
        {error, Reason} ->
            not_started(Reason, close_port(St))
    end;
handle_info(start, #st{phase = backoff} = St) ->
    start(St);
handle_info(hello_timeout, #st{phase = hello} = St) ->
    not_started(engine_hello_timeout, close_port(St));
handle_info(hello_timeout, St) ->
    {noreply, St};
handle_info(lanes_sweep, #st{engine = #engine{lanes = Pool}} = St) when Pool =/= undefined ->
    iommap_lanes:sweep(Pool),
    erlang:send_after(?LANES_SWEEP_MS, self(), lanes_sweep),
    {noreply, St};
handle_info(sweep, St) ->
    sweep(St),
    ok = iommap_direct:sweep(),
    erlang:send_after(?SWEEP_MS, self(), sweep),
    {noreply, St};
handle_info({'DOWN', _, process, Pid, _}, #st{owners = Owners} = St) ->
    case maps:take(Pid, Owners) of
        {{_, Owned}, Rest} -> {noreply, release(Pid, Owned, St#st{owners = Rest})};
        error -> {noreply, St}
    end;
handle_info({Port, {exit_status, Status}}, #st{port = Port, phase = hello} = St) ->
    not_started({engine_exited, Status}, St);
handle_info({Port, {exit_status, Status}}, #st{port = Port} = St) ->
    {stop, {engine_exited, Status}, unlink_all(St)};
handle_info({'EXIT', Port, Reason}, #st{port = Port} = St) ->
    {stop, {engine_exited, Reason}, unlink_all(St)};
handle_info(Msg, St) ->
    logger:warning("iommap_engine: unexpected message ~p", [Msg]),
    {noreply, St}.

%% @private
-spec handle_continue(start | let_go, #st{}) -> {noreply, #st{}} | {stop, term(), #st{}}.
handle_continue(start, St) ->
    case backoff() of
        0 ->
            start(St);
        Wait ->
            erlang:send_after(Wait, self(), start),
            {noreply, St}
    end;
handle_continue(let_go, St) ->
    _ = erlang:garbage_collect(self(), [{type, minor}]),
    {noreply, St}.

%% @private
-spec terminate(term(), #st{}) -> ok.
terminate(_Reason, St) ->
    ok = iommap_direct:closing_all(), % the engine unmaps everything at the port's close
    _ = close_port(St),
    ok.

%% internals

%% This process only routes a reply; the caller keeps what it needs of it.
%% A big one would stay referenced here until our next garbage collection,
%% which a process this small may not have for a long time (256 MiB was
%% seen held after a large pread_many), so collect the young heap once
%% handle_info has returned (until then gen_server holds the message).
let_go(Frame, St) when byte_size(Frame) >= ?LET_GO_BYTES ->
    {noreply, St, {continue, let_go}};
let_go(_, St) ->
    {noreply, St}.

%% A caller registers its request before it writes it to the port and
%% takes the entry when the reply comes. Killed in between, it leaves the
%% entry behind: sweep drops the entries of callers that are dead. A reply
%% that still comes for one of them finds nothing and is dropped.
sweep(#st{engine = #engine{pending = P}}) ->
    Dead = ets:foldl(fun({Id, {Alias, Pid}}, Acc) when is_reference(Alias), is_pid(Pid) ->
                             case is_process_alive(Pid) of
                                 true -> Acc;
                                 false -> [Id | Acc]
                             end;
                        (_, Acc) ->
                             Acc
                     end, [], P),
    lists:foreach(fun(Id) -> ets:delete(P, Id) end, Dead).

%% Work the server does itself: register it under a request id like any
%% caller, and finish it when the reply comes.
submit(Req, Work, #st{engine = #engine{port = Port, pending = P, ids = Ids}}) ->
    Id = iommap_codec:new_id(P, Ids, Work),
    erlang:port_command(Port, iommap_codec:encode(Id, Req)).

finish(lanes, Reply, St) ->
    lanes_up(Reply, St);
finish({open, From, Owner, Unlink, false}, {ok, HId}, St) ->
    opened(From, Owner, Unlink, HId, none, St);
finish({open, From, Owner, Unlink, Mode}, {ok, HId}, St) ->
    %% A shared mapping on Linux: the caller gets its handle once its
    %% region is known, so that its reads can go direct at once.
    submit({region, HId}, {region, From, Owner, Unlink, HId, Mode}, St),
    St;
finish({region, From, Owner, Unlink, HId, Mode}, Region, St) ->
    opened(From, Owner, Unlink, HId, {Mode, Region}, St);
finish({stage, From, Pid}, {ok, {SId, Path}}, St) ->
    gen_server:reply(From, {ok, SId, Path}),
    own(Pid, stage, SId, St);
finish({stage, From, Pid}, Error, St) ->
    gen_server:reply(From, Error),
    own(Pid, stage, none, St#st{stages = St#st.stages - 1});
finish({open, From, _, _, _}, Error, St) ->
    gen_server:reply(From, Error),
    St;
finish({reply, From}, Result, St) ->
    gen_server:reply(From, Result),
    St;
finish(discard, _, St) ->
    St.

opened(From, Owner, Unlink, HId, Region, #st{engine = #engine{handles = T}} = St0) ->
    H = make_ref(),
    case Region of
        {Mode, {ok, Where}} -> ok = iommap_direct:add_region(H, Mode, Where);
        _ -> ok % read through the engine
    end,
    ets:insert(T, {H, HId, Owner}),
    gen_server:reply(From, {ok, H}),
    St = case Unlink of
             none -> St0;
             Path -> St0#st{unlink = (St0#st.unlink)#{H => Path}}
         end,
    own(Owner, H, true, St).

%% Stages

%% The rows of ?STAGES outlive an engine (see iommap_client:stage/1). Those
%% a new server finds are of processes that had a stage of an engine that
%% died: delete those of processes that are gone, watch the others, so that
%% their rows go when they exit.
watch_stage_rows(St) ->
    ets:foldl(fun({Pid, _, _}, Acc) ->
                      case is_process_alive(Pid) of
                          true -> own(Pid, stage, none, Acc);
                          false -> ets:delete(?STAGES, Pid), Acc
                      end
              end, St, ?STAGES).

%% Closes the engine's side of the stage Pid holds, if any; Pid is still
%% watched, for its row.
release_stage(Pid, #st{owners = Owners} = St) ->
    case Owners of
        #{Pid := {_, #{stage := SId}}} when is_integer(SId) ->
            submit({stage_close, SId}, discard, St),
            own(Pid, stage, none, St#st{stages = St#st.stages - 1});
        #{} ->
            St
    end.

%% What an owner that exited held: its handles are closed, its stage too,
%% and its stage row is deleted (its descriptor closed with the process).
release(Pid, Owned, #st{engine = E} = St) ->
    ets:delete(?STAGES, Pid),
    ok = iommap_direct:forget(Pid),
    maps:fold(fun(stage, SId, Acc) when is_integer(SId) ->
                      submit({stage_close, SId}, discard, Acc),
                      Acc#st{stages = Acc#st.stages - 1};
                 (H, true, Acc) when is_reference(H) ->
                      [begin
                           ok = iommap_direct:closing(H),
                           submit({close, HId}, discard, Acc)
                       end
                       || [{_, HId, _}] <- [ets:take(E#engine.handles, H)]],
                      Acc#st{unlink = maps:remove(H, Acc#st.unlink)};
                 (_, _, Acc) ->
                      Acc
              end, St, Owned).

%% The engine died with delete_on_close handles open: it cannot unlink
%% their files any more, so this server does, as the close that the death
%% of the engine amounts to.
unlink_all(#st{unlink = Paths} = St) ->
    _ = [file:delete(Path, [raw]) || Path <- maps:values(Paths)],
    St#st{unlink = #{}}.

%% own/forget keep one monitor per owner, whatever it holds. A monitor on
%% an owner that is already dead fires at once, so a handle opened for a
%% process that died meanwhile is closed.
own(Pid, Key, Value, #st{owners = Owners} = St) ->
    Entry = case Owners of
                #{Pid := {Mon, Owned}} -> {Mon, Owned#{Key => Value}};
                #{} -> {erlang:monitor(process, Pid), #{Key => Value}}
            end,
    St#st{owners = Owners#{Pid => Entry}}.

forget(Pid, Key, #st{owners = Owners} = St) ->
    case Owners of
        #{Pid := {Mon, Owned}} when map_size(Owned) =:= 1, is_map_key(Key, Owned) ->
            erlang:demonitor(Mon, [flush]),
            St#st{owners = maps:remove(Pid, Owners)};
        #{Pid := {Mon, Owned}} ->
            St#st{owners = Owners#{Pid => {Mon, maps:remove(Key, Owned)}}};
        #{} ->
            St
    end.

%% Starting the engine

%% A supervisor gives up after too many restarts in a short time, and with
%% it the application (and a node that runs it as permanent). An engine
%% that keeps dying must not get there: each start that follows a short
%% life waits twice as long as the one before, up to ?BACKOFF_MAX_MS, which
%% keeps restarts far below the supervisor's intensity whatever the rate of
%% deaths. The wait is a timer, so this server answers meanwhile: calls
%% find no engine ({error, closed} at once) and opens wait for it. The
%% times live in a table of the supervisor, which outlives this process.
backoff() ->
    Now = erlang:monotonic_time(millisecond),
    Flaps = case ets:lookup(?RESTARTS, last_start) of
                [{_, Last, N}] when Now - Last < ?STABLE_MS -> N + 1;
                _ -> 0
            end,
    Wait = case Flaps of
               0 -> 0;
               _ -> min(?BACKOFF_MAX_MS, ?BACKOFF_MS bsl min(Flaps - 1, 16))
           end,
    true = ets:insert(?RESTARTS, {last_start, Now + Wait, Flaps}),
    Wait.

%% The first exchange: the engine answers hello with {ok, {ProtocolVersion,
%% Version}}, as a reply to request 1; nothing else is sent before it.
start(St) ->
    case open_engine() of
        {ok, Port} ->
            try erlang:port_command(Port, iommap_codec:encode(1, {hello})) of
                true ->
                    erlang:send_after(?HELLO_TIMEOUT, self(), hello_timeout),
                    {noreply, St#st{phase = hello, port = Port}}
            catch
                error:badarg -> not_started(engine_closed_at_start, St)
            end;
        {error, Reason} ->
            not_started(Reason, St)
    end.

%% A mismatch means an engine binary from another release: of the protocol,
%% or of iommap itself (the engine is stamped with the application's vsn
%% when it is built; a priv/iommap_port left from another release, say).
hello_reply(Frame) ->
    try binary_to_term(Frame) of
        {1, {ok, {?PROTOCOL_VERSION, Vsn}}} when is_binary(Vsn) ->
            same_version(Vsn, own_version());
        {1, {ok, {Other, Vsn}}} ->
            {error, {engine_protocol_mismatch, [{expected, ?PROTOCOL_VERSION},
                                                {engine, Other}, {engine_version, Vsn}]}};
        Reply ->
            {error, {engine_bad_hello, Reply}}
    catch
        error:badarg -> {error, {engine_bad_hello, Frame}}
    end.

%% An engine built by hand, without the vsn stamped in, says "dev": it is
%% let in, with a warning, for working on the engine (engine_path pointing
%% at a fresh `go build`); the protocol version is checked all the same.
same_version(Vsn, Vsn) ->
    {ok, Vsn};
same_version(<<"dev">> = Dev, Own) ->
    logger:warning("iommap: the engine is a development build (\"dev\"), not of version ~ts", [Own]),
    {ok, Dev};
same_version(Vsn, Own) ->
    {error, {engine_version_mismatch, [{expected, Own}, {engine, Vsn}]}}.

own_version() ->
    _ = application:load(iommap),
    {ok, Vsn} = application:get_key(iommap, vsn),
    list_to_binary(Vsn).

%% The engine answered: publish it, and serve the calls that waited.
up(Vsn, #st{port = Port, waiting = Waiting} = St) ->
    case erlang:port_info(Port, os_pid) of
        {os_pid, OsPid} ->
            E = #engine{server = self(), port = Port, version = Vsn, os_pid = OsPid,
                        stage_min = iommap_env:get(stage_min),
                        pending = ets:new(iommap_pending, [public, set, {write_concurrency, true}]),
                        handles = ets:new(iommap_handles, [protected, set, {read_concurrency, true}]),
                        ids = atomics:new(1, [{signed, false}])},
            true = ets:insert(?ENGINE_TAB, {engine, E}),
            erlang:send_after(?SWEEP_MS, self(), sweep),
            St1 = St#st{phase = up, engine = E, waiting = []},
            open_lanes(St1),
            {noreply, lists:foldr(fun serve/2, St1, Waiting)};
        undefined ->
            not_started(engine_closed_at_start, St)
    end.

%% Lanes (iommap_lanes): once the engine is up, it is asked to listen for
%% lanes from this VM alone (its OS pid); this server connects them and
%% owns them, so they close with it, and publishes the pool. Until then,
%% and when the lanes key is 0 or the engine has none, calls use the port.
open_lanes(St) ->
    case iommap_env:get(lanes) of
        0 -> ok;
        _ -> true = submit({lanes, list_to_integer(os:getpid())}, lanes, St), ok
    end.

lanes_up({ok, Path}, #st{engine = E} = St) ->
    case iommap_lanes:open(Path, iommap_env:get(lanes), lanes_poll_max()) of
        {ok, Pool} ->
            E1 = E#engine{lanes = Pool},
            true = ets:insert(?ENGINE_TAB, {engine, E1}),
            erlang:send_after(?LANES_SWEEP_MS, self(), lanes_sweep),
            St#st{engine = E1};
        {error, Reason} ->
            logger:warning("iommap: lanes not opened, calls use the port: ~p", [Reason]),
            St
    end;
lanes_up(_, St) -> % enosys: this system has none
    St.

%% How many callers may poll a lane at once: one per scheduler, less the
%% one the engine's spinning thread takes.
lanes_poll_max() ->
    max(1, erlang:system_info(schedulers_online) - 1).

serve({Msg, From}, St) ->
    case handle_call(Msg, From, St) of
        {reply, Reply, St1} -> gen_server:reply(From, Reply), St1;
        {noreply, St1} -> St1
    end.

%% The calls that waited for the engine get the reason (await_up/0: the
%% application's start fails with it); the supervisor starts a new server,
%% after the back-off.
not_started(Reason, St) ->
    logger:error("iommap: the engine did not start: ~p", [Reason]),
    {stop, Reason, St}.

close_port(#st{port = undefined} = St) ->
    St;
close_port(#st{port = Port} = St) ->
    try erlang:port_close(Port) catch error:badarg -> ok end, % closed already
    St#st{port = undefined}.

open_engine() ->
    case iommap_env:engine_path() of
        {ok, Path} ->
            try open_port({spawn_executable, Path},
                          [{packet, 4}, binary, exit_status, use_stdio, {cd, "/"},
                           {args, engine_args()}, {env, engine_env()}]) of
                Port -> {ok, Port}
            catch
                error:Reason -> {error, {engine_not_started, Path, Reason}}
            end;
        Error ->
            Error
    end.

engine_args() ->
    ["-spin", integer_to_list(iommap_env:get(spin_us)),
     "-pipe", integer_to_list(iommap_env:get(pipe_size))]
        ++ case iommap_env:get(stage_kind) of
               auto -> []; % the engine's default for its system
               Kind -> ["-stages", atom_to_list(Kind)]
           end.

%% The engine gets nothing of the VM's environment (a port inherits all of
%% it, and GODEBUG, GOGC or GOTRACEBACK there would change how it runs) and
%% runs in "/" (so it holds no directory busy; relative paths are made
%% absolute on the caller's side). It gets one variable: one OS thread is
%% enough for its main loop, and with a single P its spinning reader never
%% fights other goroutines for a core; goroutines running slow requests get
%% the P when the loop yields (see port/input.go).
engine_env() ->
    Names = [Name || Var <- os:getenv(), [Name | _] <- [string:split(Var, "=")], Name =/= ""],
    [{Name, false} || Name <- Names, Name =/= "GOMAXPROCS"]
        ++ [{"GOMAXPROCS", integer_to_list(iommap_env:get(engine_threads))}].
