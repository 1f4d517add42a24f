%% @private
%% @doc A pool of lanes: Unix sockets to the engine that a calling process
%% reads and writes itself (port/PROTOCOL.md, "Lanes").
%%
%% A small call through the port passes the port machinery on the way in
%% and the engine server (the router) on the way out. On a lane the caller
%% sends with socket:send/2 and polls for its reply with socket:recv/3 and
%% a zero timeout, yielding between tries: socket calls run on the caller's
%% own scheduler, and a reply that is polled for needs no wake-up of the
%% VM's poll thread and no router hop.
%%
%% The pool is a fixed number of slots. A slot's state is an atomic: 0 free,
%% a positive ticket while a caller holds it, -1 broken. A caller checks a
%% slot out with compare_exchange (no message to anyone), writes its ticket
%% and pid in the slot's row, sends a request whose id is the ticket, reads
%% the reply whose id is that ticket, and puts 0 back. A caller that finds
%% no free slot uses the port; so does one that cannot have a lane at all.
%%
%% The owner (the engine server) opens the sockets and owns them and the
%% table, so they all go when it goes. It calls sweep/1 now and then: a slot
%% whose holder has died (its stream may be mid-frame, or hold a reply
%% nobody will read) or that is broken is never handed out again; its socket
%% is closed and a new one connected in its place.
%%
%% Polling costs a scheduler: on 2 cores, two callers polling and the
%% engine spinning are three busy threads. So at most poll_max callers poll
%% at once; the others, and any caller above normal priority (a yield lets
%% only its own priority run, so it would starve the others), wait blocked
%% in recv.
-module(iommap_lanes).

-export([open/3, call/2, sweep/1, close/1, info/1]).
-export_type([pool/0]).

-record(pool, {
    n      :: pos_integer(),
    state  :: atomics:atomics_ref(), %% per slot: 0 free, ticket held, -1 broken
    extra  :: atomics:atomics_ref(), %% 1: tickets
    polling :: atomics:atomics_ref(), %% per slot: 1 while its holder polls
    tab    :: ets:tid(),             %% Slot -> {Slot, Socket, Ticket, Pid}
    path   :: binary(),
    poll_max :: non_neg_integer(),
    polls  :: non_neg_integer()      %% tries before a blocking wait
}).
-opaque pool() :: #pool{}.

-define(BROKEN, -1).
-define(TICKETS, 1).
%% A caller that has polled this many times for its reply blocks in recv;
%% a small call's reply comes in well under that (about 10 µs).
-define(POLLS, 200).

%% @doc Opens a pool of N lanes to the engine listening at Path. The calling
%% process owns the sockets and the table: it must be the engine server.
%% PollMax bounds how many callers poll at once.
-spec open(binary(), pos_integer(), non_neg_integer()) -> {ok, pool()} | {error, term()}.
open(Path, N, PollMax) ->
    Tab = ets:new(iommap_lanes, [public, set, {read_concurrency, true}, {write_concurrency, true}]),
    Pool = #pool{n = N, state = atomics:new(N, [{signed, true}]),
                 extra = atomics:new(1, [{signed, true}]),
                 polling = atomics:new(N, [{signed, false}]), tab = Tab, path = Path,
                 poll_max = PollMax, polls = ?POLLS},
    case connect_all(Pool, 1) of
        ok ->
            {ok, Pool};
        {error, _} = Error ->
            close(Pool),
            Error
    end.

connect_all(#pool{n = N}, I) when I > N -> ok;
connect_all(Pool, I) ->
    case connect(Pool#pool.path) of
        {ok, S} ->
            ets:insert(Pool#pool.tab, {I, S, 0, self()}),
            connect_all(Pool, I + 1);
        Error ->
            Error
    end.

%% A lane is handed out only once the engine has answered on it: connect
%% says ok for a connection still in the listener's backlog, or one the
%% engine then refuses (it keeps at most 256), and a send on it fails.
connect(Path) ->
    case socket:open(local, stream, default) of
        {ok, S} ->
            case socket:connect(S, #{family => local, path => Path}) of
                ok -> answered(S, Path);
                Error -> _ = socket:close(S), Error
            end;
        Error ->
            Error
    end.

%% The engine answers lanes with the same path; no caller has the lane yet,
%% so any id will do.
-define(CONNECT_MS, 1000).
answered(S, Path) ->
    Ping = term_to_binary({1, lanes, list_to_integer(os:getpid())}),
    Answer = case socket:send(S, [<<(byte_size(Ping)):32>>, Ping]) of
                 ok ->
                     case socket:recv(S, 4, ?CONNECT_MS) of
                         {ok, <<Len:32>>} when Len < 4096 -> socket:recv(S, Len, ?CONNECT_MS);
                         Head -> Head
                     end;
                 Error ->
                     Error
             end,
    case Answer of
        {ok, <<131, 104, 2, 98, 1:32, _/binary>> = Frame} ->
            case binary_to_term(Frame, [safe]) of
                {1, {ok, Path}} -> {ok, S};
                Term -> refused(S, Term)
            end;
        _ ->
            refused(S, Answer)
    end.

refused(S, Why) ->
    _ = socket:close(S),
    {error, {lane_refused, Why}}.

%% @doc Closes every lane (the owner, when the engine goes).
-spec close(pool()) -> ok.
close(#pool{tab = Tab}) ->
    try ets:tab2list(Tab) of
        Rows -> _ = [socket:close(S) || {_, S, _, _} <- Rows], ets:delete(Tab), ok
    catch
        error:badarg -> ok
    end.

%% @doc Runs one request on a lane: Encode(Id) is its frame's body (the
%% length goes before it here, as {packet, 4} does on the port). Gives the
%% reply frame; none if no lane is free, or if the send failed (the engine
%% runs no frame it has not had whole, so the caller uses the port); or
%% {error, closed} if the lane broke once the request was sent (the engine
%% has gone: it closes no lane of ours otherwise).
-spec call(pool(), fun((pos_integer()) -> iodata())) -> {ok, binary()} | none | {error, closed}.
call(#pool{n = N, state = State, extra = Extra, tab = Tab} = Pool, Encode) ->
    Ticket = ticket(atomics:add_get(Extra, ?TICKETS, 1) band 16#7FFFFFFF),
    case checkout(State, Ticket, N, erlang:system_info(scheduler_id) rem N, N) of
        none ->
            none;
        Slot ->
            try
                [{_, S, _, _}] = ets:lookup(Tab, Slot),
                true = ets:update_element(Tab, Slot, [{3, Ticket}, {4, self()}]),
                S
            of
                Sock -> run(Pool, Slot, Sock, Ticket, Encode)
            catch
                error:_ -> {error, closed} % the table went with the engine server
            end
    end.

%% Tickets are never 0 (a free slot) and never negative; the slot's state
%% and its row hold the same one, or the sweep takes the slot for a dead
%% holder's.
ticket(0) -> 1;
ticket(T) -> T.

checkout(_, _, _, _, 0) -> none;
checkout(State, Ticket, N, I, Left) ->
    Slot = I + 1,
    case atomics:compare_exchange(State, Slot, 0, Ticket) of
        ok -> Slot;
        _ -> checkout(State, Ticket, N, Slot rem N, Left - 1)
    end.

run(#pool{state = State} = Pool, Slot, Sock, Id, Encode) ->
    Frame = Encode(Id),
    case socket:send(Sock, [<<(iolist_size(Frame)):32>> | Frame]) of
        ok ->
            case await(Pool, Slot, Sock, Id) of
                {ok, _} = Reply ->
                    atomics:put(State, Slot, 0),
                    Reply;
                {error, _} ->
                    atomics:put(State, Slot, ?BROKEN),
                    {error, closed}
            end;
        {error, _} ->
            atomics:put(State, Slot, ?BROKEN),
            none
    end.

%% Polls if at most poll_max callers poll (this one counted) and this one
%% runs at normal priority or below; blocks in recv otherwise, or once the
%% polls are spent. Who polls is a flag of the slot, not a shared count: a
%% caller killed while it polls leaves its flag in a slot that sweep takes
%% back, where a count would stay one too high for good.
await(#pool{n = N, polling = Polling, poll_max = Max, polls = Polls}, Slot, Sock, Id) ->
    case may_poll() of
        true ->
            atomics:put(Polling, Slot, 1),
            Polls1 = case pollers(Polling, N, 0) =< Max of
                         true -> Polls;
                         false -> 0
                     end,
            Result = poll(Sock, Id, <<>>, Polls1),
            atomics:put(Polling, Slot, 0),
            Result;
        false ->
            wait(Sock, Id, <<>>)
    end.

pollers(_, 0, Acc) -> Acc;
pollers(Polling, I, Acc) -> pollers(Polling, I - 1, Acc + atomics:get(Polling, I)).

may_poll() ->
    case process_info(self(), priority) of
        {priority, P} -> P =:= normal orelse P =:= low
    end.

poll(Sock, Id, Buf, 0) ->
    wait(Sock, Id, Buf);
poll(Sock, Id, Buf, Left) ->
    case socket:recv(Sock, 0, 0) of
        {ok, Data} -> more(Sock, Id, <<Buf/binary, Data/binary>>, Left);
        {error, timeout} -> erlang:yield(), poll(Sock, Id, Buf, Left - 1);
        {error, _} = Error -> Error
    end.

wait(Sock, Id, Buf) ->
    case socket:recv(Sock, 0, infinity) of
        {ok, Data} -> more(Sock, Id, <<Buf/binary, Data/binary>>, 0);
        {error, _} = Error -> Error
    end.

%% A whole frame whose id is ours, and nothing after it, is the reply. A
%% frame with another id cannot come (a lane whose caller died is never
%% handed out again), and would be skipped.
more(Sock, Id, <<Len:32, Frame:Len/binary, Rest/binary>>, Left) ->
    case {Frame, Rest} of
        {<<131, 104, 2, 98, Id:32, _/binary>>, <<>>} -> {ok, Frame};
        {<<131, 104, 2, 98, Id:32, _/binary>>, _} -> {error, trailing};
        _ -> more(Sock, Id, Rest, Left)
    end;
more(Sock, Id, Buf, Left) when Left > 0 -> poll(Sock, Id, Buf, Left);
more(Sock, Id, Buf, _) -> wait(Sock, Id, Buf).

%% @doc Replaces the lanes that must not be handed out again: held by a
%% process that has died, or broken. A slot taken but not yet marked with
%% its holder (compare_exchange done, update_element not yet) is left for
%% the next sweep; if it is still so then, its holder died in between.
%% Run by the owner.
-spec sweep(pool()) -> ok.
sweep(#pool{n = N, state = State, tab = Tab} = Pool) ->
    Suspects = case ets:lookup(Tab, suspects) of
                   [{suspects, L}] -> L;
                   [] -> []
               end,
    New = lists:foldl(
            fun(Slot, Acc) ->
                    case {atomics:get(State, Slot), ets:lookup(Tab, Slot)} of
                        {0, _} -> Acc;
                        {?BROKEN, _} -> replace(Pool, Slot), Acc;
                        {T, [{_, _, T, Pid}]} ->
                            case is_process_alive(Pid) of
                                true -> Acc;
                                false -> replace(Pool, Slot, T), Acc
                            end;
                        {T, _} ->
                            case lists:member({Slot, T}, Suspects) of
                                true -> replace(Pool, Slot, T), Acc;
                                false -> [{Slot, T} | Acc]
                            end
                    end
            end, [], lists:seq(1, N)),
    ets:insert(Tab, {suspects, New}),
    ok.

%% Takes the slot from its dead holder (unless it came back meanwhile),
%% then replaces its socket.
replace(#pool{state = State} = Pool, Slot, T) ->
    case atomics:compare_exchange(State, Slot, T, ?BROKEN) of
        ok -> replace(Pool, Slot);
        _ -> ok
    end.

replace(#pool{state = State, polling = Polling, tab = Tab, path = Path}, Slot) ->
    atomics:put(Polling, Slot, 0),
    [{_, Old, _, _}] = ets:lookup(Tab, Slot),
    _ = socket:close(Old),
    case connect(Path) of
        {ok, S} ->
            ets:insert(Tab, {Slot, S, 0, self()}),
            atomics:put(State, Slot, 0);
        {error, _} ->
            ok % stays broken; the next sweep tries again
    end.

%% @doc The pool's size, lanes free now, callers polling now, and the
%% requests sent on the lanes open now (from the sockets' counters).
-spec info(pool()) -> #{size := pos_integer(), free := non_neg_integer(),
                        broken := non_neg_integer(), polling := integer(),
                        sent := non_neg_integer(), path := binary()}.
info(#pool{n = N, state = State, polling = Polling, tab = Tab, path = Path}) ->
    States = [atomics:get(State, I) || I <- lists:seq(1, N)],
    Sent = lists:sum([maps:get(write_pkg, maps:get(counters, socket:info(S)), 0)
                      || {_, S, _, _} <- ets:tab2list(Tab)]),
    #{size => N, free => length([0 || 0 <- States]),
      broken => length([x || ?BROKEN <- States]),
      polling => pollers(Polling, N, 0), sent => Sent, path => Path}.
