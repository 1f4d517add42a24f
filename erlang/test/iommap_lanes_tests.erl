%% Lanes (iommap_lanes): small calls on sockets the caller reads
%% itself. The whole API suite also runs with lanes on (make test-erlang
%% runs EUnit a second time with -iommap lanes 4); these are the lanes' own
%% cases: that calls do take them, that the engine dying or callers dying
%% never leaves a caller hanging or a stale reply in a lane, and that the
%% pool stays bounded. They run with direct reads off, so that their reads
%% go to the engine (a direct read takes no lane), but for the one case
%% that checks direct reads come first.
-module(iommap_lanes_tests).

-include_lib("eunit/include/eunit.hrl").
-include_lib("kernel/include/file.hrl").
-include("../src/iommap_int.hrl").

-define(LANES, 4).

lanes_test_() ->
    {timeout, 300,
     iommap_test_lib:in_tmp_dirs(
       [fun small_calls_take_the_lanes/1,
        fun lanes_off_is_the_port_alone/1,
        fun a_caller_above_normal_priority_is_served/1,
        fun the_engine_killed_during_polled_calls/1,
        fun callers_killed_mid_call_never_leave_a_stale_reply/1,
        fun the_pool_stays_bounded_under_1000_callers/1,
        fun a_purge_of_the_module_and_erase_leak_no_lane/1,
        fun direct_reads_come_first/1])}.




%% A file whose every 8-byte word at offset O holds O: a read at any
%% offset has exactly one right answer, so a reply meant for another call
%% shows.
numbered(Dir, Words) ->
    iommap_test_lib:file_in(Dir, "numbered", [<<(I * 8):64>> || I <- lists:seq(0, Words - 1)]).

right(H, Word) ->
    {ok, <<O:64>>} = iommap:pread(H, Word * 8, 8),
    O =:= Word * 8 orelse error({stale_or_wrong, Word, O}).

small_calls_take_the_lanes(Dir) ->
    iommap_test_lib:with_lanes(?LANES, fun() ->
        Pool = iommap_test_lib:lanes_pool_up(),
        #{size := ?LANES, free := ?LANES, sent := Sent0, path := Path} = iommap_lanes:info(Pool),
        {ok, #file_info{mode = Mode}} = file:read_file_info(filename:dirname(Path)),
        ?assertEqual(8#700, Mode band 8#777),
        {ok, H} = iommap:open(numbered(Dir, 1024), read_write, []),
        [true = right(H, W) || W <- lists:seq(0, 1023)],
        ok = iommap:pwrite(H, 0, <<7:64/little>>),
        ?assertEqual({ok, 7}, iommap:add(H, 0, 1)),
        ?assertEqual({ok, <<8:64/little>>}, iommap:pread(H, 0, 8)),
        ?assertEqual({error, out_of_bounds}, iommap:pread(H, 8192, 1)),
        #{sent := Sent1, free := ?LANES} = iommap_lanes:info(Pool),
        ?assert(Sent1 - Sent0 >= 1028),
        %% calls that may keep the engine long take the port
        ok = iommap:sync(H),
        {ok, [_]} = iommap:pread_many(H, [{0, 8}]),
        ?assertMatch(#{sent := Sent1}, iommap_lanes:info(Pool)),
        ok = iommap:close(H),
        ?assertEqual({error, closed}, iommap:pread(H, 0, 1))
    end).

lanes_off_is_the_port_alone(Dir) ->
    iommap_test_lib:with_lanes(0, fun() ->
        timer:sleep(100),
        ?assertEqual(none, iommap_test_lib:lanes_pool()),
        {ok, H} = iommap:open(numbered(Dir, 16), read_write, []),
        true = right(H, 3),
        ok = iommap:close(H)
    end).

%% A yield lets only the caller's priority run: a high-priority caller must
%% wait blocked, not poll, or it would keep normal processes off its
%% scheduler. It is served all the same, and a normal one beside it too.
a_caller_above_normal_priority_is_served(Dir) ->
    iommap_test_lib:with_lanes(?LANES, fun() ->
        {ok, H} = iommap:open(numbered(Dir, 64), read_write, []),
        Self = self(),
        High = spawn_link(fun() ->
                                  process_flag(priority, high),
                                  [true = right(H, W rem 64) || W <- lists:seq(1, 2000)],
                                  Self ! {done, self()}
                          end),
        Normal = spawn_link(fun() ->
                                    [true = right(H, W rem 64) || W <- lists:seq(1, 2000)],
                                    Self ! {done, self()}
                            end),
        [receive {done, P} -> ok after 60000 -> error(starved) end || P <- [High, Normal]],
        ok = iommap:close(H)
    end).

%% The engine is killed while callers poll (and others wait blocked): every
%% one of them gets {error, closed} at once, none hangs, and the next
%% engine serves again.
the_engine_killed_during_polled_calls(Dir) ->
    iommap_test_lib:with_lanes(?LANES, fun() ->
        P = numbered(Dir, 64),
        {ok, H} = iommap:open(P, read_write, []),
        Self = self(),
        Callers = [spawn(fun() -> Self ! {self(), until_error(H, 0)} end) || _ <- lists:seq(1, 8)],
        timer:sleep(200),
        OsPid = iommap_test_lib:engine_os_pid(),
        _ = os:cmd("kill -9 " ++ integer_to_list(OsPid)),
        [receive
             {C, {error, closed}} -> ok;
             {C, Other} -> error({not_closed, Other})
         after 5000 -> error({hangs, C, erlang:process_info(C, current_stacktrace)})
         end || C <- Callers],
        iommap_test_lib:wait_until(fun() ->
                                           case iommap:open(P, read_write, []) of
                                               {ok, H2} -> true = right(H2, 5), ok =:= iommap:close(H2);
                                               _ -> false
                                           end
                                   end)
    end).

until_error(H, N) ->
    case iommap:pread(H, (N rem 64) * 8, 8) of
        {ok, <<O:64>>} when O =:= (N rem 64) * 8 -> until_error(H, N + 1);
        {ok, Wrong} -> {stale, Wrong};
        Error -> Error
    end.

%% Callers are killed at any point of their call, 10,000 times, while
%% others keep calling: no call ever gets a reply that is not its own, and
%% afterwards every lane is back in the pool (replaced, not reused).
callers_killed_mid_call_never_leave_a_stale_reply(Dir) ->
    iommap_test_lib:with_lanes(?LANES, fun() ->
        {ok, H} = iommap:open(numbered(Dir, 512), read_write, []),
        Self = self(),
        Checkers = [spawn_link(fun() -> Self ! {self(), check_loop(H, Self, 0)} end) || _ <- lists:seq(1, 2)],
        kill_loop(H, 10000),
        [C ! stop || C <- Checkers],
        Checked = lists:sum([receive {C, {ok, K}} -> K after 60000 -> error(checker_hangs) end
                             || C <- Checkers]),
        ?assert(Checked > 0),
        %% the next sweeps replace the lanes of the killed callers
        Pool = iommap_test_lib:lanes_pool_up(),
        iommap_test_lib:wait_until(fun() -> maps:get(free, iommap_lanes:info(Pool)) =:= ?LANES end),
        [true = right(H, W) || W <- lists:seq(0, 511)],
        ok = iommap:close(H)
    end).

%% The sockets the engine holds (its lanes and its listener).
sockets(OsPid) ->
    Dir = "/proc/" ++ integer_to_list(OsPid) ++ "/fd",
    {ok, Fds} = file:list_dir(Dir),
    length([F || F <- Fds, {ok, "socket:" ++ _} <- [file:read_link(filename:join(Dir, F))]]).

kill_loop(_, 0) ->
    ok;
kill_loop(H, N) ->
    P = spawn(fun() -> [right(H, W rem 512) || W <- lists:seq(N, N + 50)] end),
    %% a few microseconds to a few calls' time: killed before, during or
    %% after a send, while it polls or while it waits blocked
    case N rem 4 of
        0 -> ok;
        1 -> erlang:yield();
        _ -> busy(N rem 200)
    end,
    exit(P, kill),
    kill_loop(H, N - 1).

busy(0) -> ok;
busy(N) -> busy(N - 1).

check_loop(H, Parent, K) ->
    receive
        stop -> {ok, K}
    after 0 ->
        true = right(H, K rem 512),
        check_loop(H, Parent, K + 1)
    end.

%% 1,000 callers at once: the pool keeps its size (the rest use the port),
%% the engine holds no more connections than that, and every call is right.
the_pool_stays_bounded_under_1000_callers(Dir) ->
    iommap_test_lib:with_lanes(?LANES, fun() ->
        {ok, H} = iommap:open(numbered(Dir, 256), read_write, []),
        _ = iommap_test_lib:lanes_pool_up(),
        OsPid = iommap_test_lib:engine_os_pid(),
        %% the lanes and the listener, once the engine has accepted them all
        iommap_test_lib:wait_until(fun() -> sockets(OsPid) =:= ?LANES + 1 end),
        Self = self(),
        Callers = [spawn_link(fun() ->
                                      [true = right(H, (I + K) rem 256) || K <- lists:seq(1, 20)],
                                      Self ! {done, self(), sockets(OsPid)}
                              end) || I <- lists:seq(1, 1000)],
        Max = lists:max([receive {done, C, F} -> F after 120000 -> error(hangs) end || C <- Callers]),
        ?assert(Max =< ?LANES + 1),
        #{size := ?LANES, free := ?LANES} = iommap_lanes:info(iommap_test_lib:lanes_pool_up()),
        ok = iommap:close(H)
    end).

%% A caller's process dictionary holds nothing of a lane (erase/0 in every
%% call), and callers killed by a purge of iommap_lanes while they poll
%% leave their lanes to the sweep: afterwards the whole pool is free.
a_purge_of_the_module_and_erase_leak_no_lane(Dir) ->
    iommap_test_lib:with_lanes(?LANES, fun() ->
        {ok, H} = iommap:open(numbered(Dir, 64), read_write, []),
        _ = iommap_test_lib:lanes_pool_up(),
        Loop = fun L(K) -> erase(), true = right(H, K rem 64), L(K + 1) end,
        Callers = [spawn(fun() -> Loop(I) end) || I <- lists:seq(1, 8)],
        timer:sleep(100),
        {module, iommap_lanes} = code:load_file(iommap_lanes),
        timer:sleep(10),
        _ = code:purge(iommap_lanes), % kills the callers still in the old code
        timer:sleep(100),
        [exit(C, kill) || C <- Callers],
        iommap_test_lib:wait_until(fun() -> maps:get(free, iommap_lanes:info(iommap_test_lib:lanes_pool_up())) =:= ?LANES end),
        [true = right(H, W) || W <- lists:seq(0, 63)],
        ok = iommap:close(H)
    end).

%% With direct reads on (their default), a pread of a shared mapping is
%% read in the caller and sends nothing on a lane; an atomic still does.
direct_reads_come_first(Dir) ->
    iommap_test_lib:with_env(lanes, ?LANES, fun() ->
        Pool = iommap_test_lib:lanes_pool_up(),
        {ok, H} = iommap:open(numbered(Dir, 64), read_write, []),
        #{sent := Sent0} = iommap_lanes:info(Pool),
        [true = right(H, W) || W <- lists:seq(0, 63)],
        #{sent := Sent1} = iommap_lanes:info(Pool),
        ?assertEqual(0, Sent1 - Sent0),
        ?assertEqual({ok, 0}, iommap:add(H, 0, 1)),
        #{sent := Sent2, free := ?LANES} = iommap_lanes:info(Pool),
        ?assertEqual(1, Sent2 - Sent1),
        ok = iommap:close(H)
    end).
