%% Attacks on the direct reads cache (iommap_direct:cached_read/3) and on
%% the socket lanes (iommap_lanes), as a careless or hostile user would.
%% Each test asserts the documented answer. Code inside the VM is trusted:
%% a frame written by hand to the engine's port or to a lane bypasses the
%% Erlang side's bookkeeping (docs/API.md, "Lanes"), so none is tried here.
-module(iommap_attack2_tests).

-include_lib("eunit/include/eunit.hrl").
-include("../src/iommap_int.hrl").

-define(PAGE, 4096).
-define(CACHE, '$iommap_direct').

attack2_test_() ->
    case os:type() of
        {unix, linux} ->
            {setup,
             fun() -> {ok, Apps} = application:ensure_all_started(iommap), Apps end,
             fun(_) -> ok end,
             {timeout, 300,
              iommap_test_lib:in_tmp_dirs(
                [%% direct reads cache
                 fun cached_handle_after_server_killed_answers_closed/1,
                 fun cached_handle_after_close_answers_closed/1,
                 fun cached_handle_after_truncate_sees_new_size/1,
                 fun cached_handle_after_engine_kill9_answers_closed/1,
                 fun cached_handle_after_app_restart_answers_closed/1,
                 fun write_mode_closed_before_eacces/1,
                 fun non_owner_reader_after_owner_dies/1,
                 fun cache_stays_bounded_over_10000_handles/1,
                 fun erase_between_reads/1,
                 fun garbage_in_the_cache_key/1,
                 %% lanes
                 fun lane_ticket_wrap_to_zero_breaks_a_slow_call/1,
                 fun lane_slow_call_with_normal_ticket_holds/1,
                 fun own_lane_half_frame_does_not_stall_others/1,
                 fun own_lane_huge_length_and_garbage/1,
                 fun big_and_control_calls_take_the_port/1,
                 fun high_priority_callers_on_lanes/1,
                 fun own_lane_flood_without_reading_replies/1,
                 fun many_lanes_every_caller_is_answered/1,
                 fun app_stop_and_server_kill_while_callers_poll/1,
                 fun a_lane_the_engine_refused_is_handed_out/1])}};
        _ ->
            []
    end.

%% Helpers



with_direct(F) -> iommap_test_lib:with_env(direct_reads, true, F).




cached(H) ->
    case get(?CACHE) of
        {_, _, #{H := _}} -> true;
        _ -> false
    end.

new_engine_after(Old) ->
    iommap_test_lib:wait_until(fun() ->
                                       case iommap_engine:os_pid() of
                                           {ok, New} -> New =/= Old;
                                           _ -> false
                                       end
                               end).

%% ---------------------------------------------------------------------
%% Direct reads cache

%% terminate/2, so iommap_direct:closing_all/0 never bumps the cached
%% regions' State. cached_read/3 then answers the checks it makes from
%% the atomics alone (zero length, out of bounds) without looking at the
%% port: a handle of the dead engine answers {ok, <<>>} and
%% {error, out_of_bounds} for good instead of {error, closed}. (A read of
%% bytes is saved by the port_info check after the read.)
cached_handle_after_server_killed_answers_closed(Dir) ->
    with_direct(fun() ->
        P = iommap_test_lib:pattern_file(Dir, "k", 1, ?PAGE),
        {ok, H} = iommap:open(P, read_write, []),
        ?assertEqual({ok, iommap_test_lib:pattern(1, 0, 64)}, iommap:pread(H, 0, 64)),
        ?assert(cached(H)),
        Old = iommap_test_lib:engine_os_pid(),
        exit(whereis(iommap_engine), kill),
        new_engine_after(Old),
        ?assertEqual({error, closed}, iommap:pread(H, 0, 0)),
        ?assertEqual({error, closed}, iommap:pread(H, 2 * ?PAGE, 1)),
        ?assertEqual({error, closed}, iommap:pread(H, 0, 8))
    end).

cached_handle_after_close_answers_closed(Dir) ->
    with_direct(fun() ->
        P1 = iommap_test_lib:pattern_file(Dir, "c1", 1, ?PAGE),
        P2 = iommap_test_lib:pattern_file(Dir, "c2", 2, ?PAGE),
        {ok, H} = iommap:open(P1, read, []),
        ?assertEqual({ok, iommap_test_lib:pattern(1, 0, 64)}, iommap:pread(H, 0, 64)),
        ok = iommap:close(H),
        %% likely mapped where H was
        {ok, H2} = iommap:open(P2, read, []),
        ?assertEqual({error, closed}, iommap:pread(H, 0, 0)),
        ?assertEqual({error, closed}, iommap:pread(H, 0, 64)),
        ?assertEqual({error, closed}, iommap:pread(H, 2 * ?PAGE, 1)),
        ?assertEqual({ok, iommap_test_lib:pattern(2, 0, 64)}, iommap:pread(H2, 0, 64)),
        ?assertEqual({error, closed}, iommap:pread(H, 0, 64)),
        ok = iommap:close(H2)
    end).

cached_handle_after_truncate_sees_new_size(Dir) ->
    with_direct(fun() ->
        P = iommap_test_lib:pattern_file(Dir, "t", 3, 4 * ?PAGE),
        {ok, H} = iommap:open(P, read_write, []),
        ?assertEqual({ok, iommap_test_lib:pattern(3, 3 * ?PAGE, 64)}, iommap:pread(H, 3 * ?PAGE, 64)),
        Self = self(),
        %% truncated by another process: this one's cache must not answer
        spawn_link(fun() -> Self ! {done, iommap:truncate(H, ?PAGE)} end),
        receive {done, ok} -> ok end,
        ?assertEqual({error, out_of_bounds}, iommap:pread(H, 3 * ?PAGE, 64)),
        ?assertEqual({error, out_of_bounds}, iommap:pread(H, ?PAGE, 1)),
        ?assertEqual({ok, <<>>}, iommap:pread(H, ?PAGE, 0)),
        ?assertEqual({ok, iommap_test_lib:pattern(3, 0, 64)}, iommap:pread(H, 0, 64)),
        spawn_link(fun() -> Self ! {done, iommap:truncate(H, 8 * ?PAGE)} end),
        receive {done, ok} -> ok end,
        ?assertEqual({ok, <<0:(64 * 8)>>}, iommap:pread(H, 7 * ?PAGE, 64)),
        ?assertEqual({ok, iommap_test_lib:pattern(3, ?PAGE - 64, 64)}, iommap:pread(H, ?PAGE - 64, 64)),
        ok = iommap:close(H)
    end).

cached_handle_after_engine_kill9_answers_closed(Dir) ->
    with_direct(fun() ->
        P1 = iommap_test_lib:pattern_file(Dir, "a", 1, ?PAGE),
        P2 = iommap_test_lib:pattern_file(Dir, "b", 2, ?PAGE),
        {ok, H} = iommap:open(P1, read_write, []),
        ?assertEqual({ok, iommap_test_lib:pattern(1, 0, 64)}, iommap:pread(H, 0, 64)),
        Old = iommap_test_lib:engine_os_pid(),
        os:cmd("kill -9 " ++ integer_to_list(Old)),
        new_engine_after(Old),
        ?assertEqual({error, closed}, iommap:pread(H, 0, 0)),
        ?assertEqual({error, closed}, iommap:pread(H, 2 * ?PAGE, 1)),
        ?assertEqual({error, closed}, iommap:pread(H, 0, 64)),
        {ok, H2} = iommap:open(P2, read, []),
        ?assertEqual({ok, iommap_test_lib:pattern(2, 0, 64)}, iommap:pread(H2, 0, 64)),
        ?assertEqual({error, closed}, iommap:pread(H, 0, 64)),
        ok = iommap:close(H2)
    end).

cached_handle_after_app_restart_answers_closed(Dir) ->
    with_direct(fun() ->
        P1 = iommap_test_lib:pattern_file(Dir, "r1", 1, ?PAGE),
        P2 = iommap_test_lib:pattern_file(Dir, "r2", 2, ?PAGE),
        {ok, H} = iommap:open(P1, read, []),
        ?assertEqual({ok, iommap_test_lib:pattern(1, 0, 64)}, iommap:pread(H, 0, 64)),
        ok = application:stop(iommap),
        {ok, _} = application:ensure_all_started(iommap),
        {ok, H2} = iommap:open(P2, read, []),
        ?assertEqual({error, closed}, iommap:pread(H, 0, 0)),
        ?assertEqual({error, closed}, iommap:pread(H, 0, 64)),
        ?assertEqual({ok, iommap_test_lib:pattern(2, 0, 64)}, iommap:pread(H2, 0, 64)),
        ?assertEqual({error, closed}, iommap:pread(H, 0, 64)),
        ok = iommap:close(H2)
    end).

write_mode_closed_before_eacces(Dir) ->
    with_direct(fun() ->
        P = iommap_test_lib:pattern_file(Dir, "w", 1, ?PAGE),
        {ok, R} = iommap:open(P, read, []),
        {ok, _} = iommap:pread(R, 0, 8),           % a cache with a port and fd
        {ok, W} = iommap:open(P, write, []),
        ?assertEqual({error, eacces}, iommap:pread(W, 0, 4)),
        ?assertEqual({error, eacces}, iommap:pread(W, 0, 4)),
        ok = iommap:close(W),
        ?assertEqual({error, closed}, iommap:pread(W, 0, 4)),
        ?assertEqual({error, closed}, iommap:pread(W, 0, 0)),
        ok = iommap:close(R)
    end).

non_owner_reader_after_owner_dies(Dir) ->
    with_direct(fun() ->
        P = iommap_test_lib:pattern_file(Dir, "o", 5, ?PAGE),
        Self = self(),
        Owner = spawn(fun() ->
                              {ok, H} = iommap:open(P, read, []),
                              Self ! {h, H},
                              receive stop -> ok end
                      end),
        H = receive {h, X} -> X end,
        ?assertEqual({ok, iommap_test_lib:pattern(5, 8, 64)}, iommap:pread(H, 8, 64)),
        ?assert(cached(H)),
        MRef = monitor(process, Owner),
        exit(Owner, kill),
        receive {'DOWN', MRef, _, _, _} -> ok end,
        iommap_test_lib:wait_until(fun() -> iommap:pread(H, 0, 8) =:= {error, closed} end),
        ?assertEqual({error, closed}, iommap:pread(H, 0, 0)),
        ?assertEqual({error, closed}, iommap:pread(H, ?PAGE, 1))
    end).

cache_stays_bounded_over_10000_handles(Dir) ->
    with_direct(fun() ->
        P = iommap_test_lib:pattern_file(Dir, "many", 7, ?PAGE),
        lists:foreach(fun(I) ->
                              {ok, H} = iommap:open(P, read, []),
                              Off = (I rem 500) * 8,
                              {ok, <<V:64/little>>} = iommap:pread(H, Off, 8),
                              ?assertEqual(7 bsl 40 + Off, V),
                              ok = iommap:close(H),
                              {error, closed} = iommap:pread(H, 0, 8)
                      end, lists:seq(1, 10000)),
        {_, _, Regions} = get(?CACHE),
        ?assert(map_size(Regions) =< 64),
        ?assertMatch(#{handles := 0}, element(2, iommap:engine_info()))
    end).

erase_between_reads(Dir) ->
    with_direct(fun() ->
        P = iommap_test_lib:pattern_file(Dir, "e", 4, ?PAGE),
        {ok, H} = iommap:open(P, read, []),
        VM = list_to_integer(os:getpid()),
        {ok, _} = iommap:pread(H, 0, 8),
        Fds = iommap_test_lib:fds(VM),
        [begin
             erase(),
             ?assertEqual({ok, iommap_test_lib:pattern(4, 64, 64)}, iommap:pread(H, 64, 64))
         end || _ <- lists:seq(1, 200)],
        ?assertEqual(Fds, iommap_test_lib:fds(VM)),
        ok = iommap:close(H),
        erase(),
        ?assertEqual({error, closed}, iommap:pread(H, 0, 8))
    end).

%% process that writes garbage under '$iommap_direct' gets. Held: foo, a
%% wrong-shaped tuple, a bogus descriptor, a bogus port (port_info/2 takes
%% an atom as a name), a handle mapped to a non-2-tuple. Fails: a handle
%% mapped to {Mode, NotAnAtomicsRef} makes cached_read/3 raise badarg out
%% of iommap:pread/3 (atomics:get/2 in check/4). (A bogus Mode is taken
%% for read: {read, Ref} put for a write-mode handle, its Ref looked up in
%% the regions table, would read it; hostile, not tested.)
garbage_in_the_cache_key(Dir) ->
    with_direct(fun() ->
        P = iommap_test_lib:pattern_file(Dir, "g", 9, ?PAGE),
        {ok, H} = iommap:open(P, read, []),
        Right = {ok, iommap_test_lib:pattern(9, 0, 16)},
        {ok, _} = iommap:pread(H, 0, 16),
        {Port, Fd, Regions} = get(?CACHE),
        Try = fun(Garbage) ->
                      put(?CACHE, Garbage),
                      R = try iommap:pread(H, 0, 16)
                          catch C:E -> {raised, C, E}
                          end,
                      erase(?CACHE),
                      {Garbage, R}
              end,
        Results = [Try(G) || G <- [foo, {a, b, c}, {Port, Fd, foo},
                                   {Port, not_an_fd, Regions},
                                   {not_a_port, not_an_fd, Regions},
                                   {Port, Fd, Regions#{H => {read, not_a_ref}}},
                                   {Port, Fd, Regions#{H => {bogus_mode, element(2, maps:get(H, Regions))}}},
                                   {Port, Fd, Regions#{H => garbage}}]],
        ?assertEqual([{G, Right} || {G, _} <- Results], Results),
        ok = iommap:close(H)
    end).

%% ---------------------------------------------------------------------
%% Lanes

stopped(OsPid, Ms, F) ->
    os:cmd("kill -STOP " ++ integer_to_list(OsPid)),
    try
        Self = self(),
        Pid = spawn_link(fun() -> Self ! {res, self(), F()} end),
        timer:sleep(Ms),
        os:cmd("kill -CONT " ++ integer_to_list(OsPid)),
        receive {res, Pid, R} -> R after 5000 -> timeout end
    after
        os:cmd("kill -CONT " ++ integer_to_list(OsPid))
    end.

%% 16#7FFFFFFF, which is 0 once every 2^31 calls; checkout/5 then stores 1
%% in the slot's state but call/2 writes ticket 0 in the slot's row (and
%% sends id 0). sweep/1 sees state 1 =/= row ticket 0, keeps the slot as a
%% suspect, and on its next pass (100 ms later) takes the slot of a live
%% caller, closing its socket: a lane call that takes more than ~200 ms
%% (here the engine is stopped 400 ms, as a busy engine or a lock would)
%% answers {error, closed} although the handle and engine are fine.
lane_ticket_wrap_to_zero_breaks_a_slow_call(Dir) ->
    iommap_test_lib:with_lanes(1, fun() ->
        Pool = iommap_test_lib:lanes_pool_up(),
        P = iommap_test_lib:pattern_file(Dir, "lz", 1, ?PAGE),
        {ok, H} = iommap:open(P, read_write, []),
        ?assertEqual({ok, iommap_test_lib:pattern(1, 0, 8)}, iommap:pread(H, 0, 8)),
        Extra = element(4, Pool),                       % #pool.extra
        atomics:put(Extra, 1, 16#7FFFFFFF),             % the next ticket is 0
        R = stopped(iommap_test_lib:engine_os_pid(), 400, fun() -> iommap:pread(H, 8, 8) end),
        ?assertEqual({ok, iommap_test_lib:pattern(1, 8, 8)}, R),
        ok = iommap:close(H)
    end).

%% The control for the case above: the same slow call with any other
%% ticket is served.
lane_slow_call_with_normal_ticket_holds(Dir) ->
    iommap_test_lib:with_lanes(1, fun() ->
        _ = iommap_test_lib:lanes_pool_up(),
        P = iommap_test_lib:pattern_file(Dir, "ln", 1, ?PAGE),
        {ok, H} = iommap:open(P, read_write, []),
        ?assertEqual({ok, iommap_test_lib:pattern(1, 0, 8)}, iommap:pread(H, 0, 8)),
        R = stopped(iommap_test_lib:engine_os_pid(), 400, fun() -> iommap:pread(H, 8, 8) end),
        ?assertEqual({ok, iommap_test_lib:pattern(1, 8, 8)}, R),
        ok = iommap:close(H)
    end).

%% Sockets the engine holds: its listener and every lane it accepted.
engine_sockets() ->
    Fd = "/proc/" ++ integer_to_list(iommap_test_lib:engine_os_pid()) ++ "/fd",
    {ok, L} = file:list_dir(Fd),
    length([x || F <- L, {ok, "socket:" ++ _} <- [file:read_link(Fd ++ "/" ++ F)]]).

own_lane(Path) ->
    {ok, S} = socket:open(local, stream, default),
    ok = socket:connect(S, #{family => local, path => Path}),
    S.

%% A connection of our own (SO_PEERCRED lets the VM in) that sends half a
%% frame and nothing more: the engine must go on serving the pool's lanes
%% and the port.
own_lane_half_frame_does_not_stall_others(Dir) ->
    iommap_test_lib:with_lanes(2, fun() ->
        Pool = iommap_test_lib:lanes_pool_up(),
        #{path := Path} = iommap_lanes:info(Pool),
        P = iommap_test_lib:pattern_file(Dir, "hf", 2, ?PAGE),
        {ok, H} = iommap:open(P, read_write, []),
        S = own_lane(Path),
        Frame = iommap_codec:encode(5, 1, {position}),
        ok = socket:send(S, [<<(iolist_size(Frame) + 100):32>>, Frame]),
        #{sent := Sent0} = iommap_lanes:info(Pool),
        [?assertEqual({ok, iommap_test_lib:pattern(2, I * 8, 8)}, iommap:pread(H, I * 8, 8)) || I <- lists:seq(0, 99)],
        ?assertMatch(#{sent := Sent1} when Sent1 >= Sent0 + 100, iommap_lanes:info(Pool)),
        ok = iommap:sync(H),                                  % the port
        %% a request colliding with the pool's tickets, on our lane only
        S2 = own_lane(Path),
        F2 = iommap_codec:encode(1, 1, {position}),
        ok = socket:send(S2, [<<(iolist_size(F2)):32>>, F2]),
        {ok, <<Len:32>>} = socket:recv(S2, 4, 2000),
        {ok, Reply} = socket:recv(S2, Len, 2000),
        ?assertMatch({1, _}, binary_to_term(Reply)),
        [?assertEqual({ok, iommap_test_lib:pattern(2, I * 8, 8)}, iommap:pread(H, I * 8, 8)) || I <- lists:seq(0, 99)],
        socket:close(S), socket:close(S2),
        ok = iommap:close(H)
    end).

%% A frame announcing 2 GiB, and one that is no term: the engine closes the
%% first lane, answers badarg on the second, and goes on.
own_lane_huge_length_and_garbage(Dir) ->
    iommap_test_lib:with_lanes(2, fun() ->
        Pool = iommap_test_lib:lanes_pool_up(),
        #{path := Path} = iommap_lanes:info(Pool),
        P = iommap_test_lib:pattern_file(Dir, "hg", 3, ?PAGE),
        {ok, H} = iommap:open(P, read_write, []),
        S = own_lane(Path),
        ok = socket:send(S, <<16#7FFFFFFF:32, 131, 104, 2, 98, 0, 0, 0, 9>>),
        ?assertMatch({error, _}, socket:recv(S, 0, 2000)),
        S2 = own_lane(Path),
        ok = socket:send(S2, <<5:32, "hello">>),
        {ok, <<Len:32>>} = socket:recv(S2, 4, 2000),
        {ok, Reply} = socket:recv(S2, Len, 2000),
        ?assertMatch({_, {error, badarg}}, binary_to_term(Reply)),
        [?assertEqual({ok, iommap_test_lib:pattern(3, I * 8, 8)}, iommap:pread(H, I * 8, 8)) || I <- lists:seq(0, 99)],
        ?assertMatch(#{broken := 0, free := 2}, iommap_lanes:info(Pool)),
        socket:close(S), socket:close(S2),
        ok = iommap:close(H)
    end).

big_and_control_calls_take_the_port(Dir) ->
    iommap_test_lib:with_lanes(4, fun() ->
        Pool = iommap_test_lib:lanes_pool_up(),
        P = iommap_test_lib:file_in(Dir, "big", <<0:(256 * 1024 * 8)>>),
        {ok, H} = iommap:open(P, read_write, []),
        #{sent := S0} = iommap_lanes:info(Pool),
        ok = iommap:pwrite(H, 0, binary:copy(<<1>>, 65536)),
        {ok, B} = iommap:pread(H, 0, 65536),
        ?assertEqual(binary:copy(<<1>>, 65536), B),
        ok = iommap:truncate(H, 128 * 1024),
        ok = iommap:sync(H),
        {ok, H2} = iommap:open(P, read, []),
        ok = iommap:close(H2),
        ?assertMatch(#{sent := S0}, iommap_lanes:info(Pool)),
        ok = iommap:pwrite(H, 0, binary:copy(<<2>>, 65535)),
        ?assertEqual({ok, 128 * 1024}, iommap:position(H)),
        ?assertMatch(#{sent := S1} when S1 =:= S0 + 2, iommap_lanes:info(Pool)),
        ok = iommap:close(H)
    end).

high_priority_callers_on_lanes(Dir) ->
    iommap_test_lib:with_lanes(2, fun() ->
        Pool = iommap_test_lib:lanes_pool_up(),
        P = iommap_test_lib:pattern_file(Dir, "hp", 4, ?PAGE),
        {ok, H} = iommap:open(P, read_write, []),
        Self = self(),
        Pids = [spawn_opt(fun() ->
                                  R = [iommap:pread(H, (I rem 512) * 8, 8) =:= {ok, iommap_test_lib:pattern(4, (I rem 512) * 8, 8)}
                                       || I <- lists:seq(1, 2000)],
                                  Self ! {done, self(), lists:all(fun(X) -> X end, R)}
                          end, [{priority, Prio}])
                || Prio <- [max, high, high, normal, low]],
        [receive {done, Pid, Ok} -> ?assert(Ok) after 20000 -> error(timeout) end || Pid <- Pids],
        ?assertMatch(#{free := 2, broken := 0, polling := 0}, iommap_lanes:info(Pool)),
        ok = iommap:close(H)
    end).

%% Thousands of requests on a connection of our own, no reply read: the
%% engine must shut that lane down (its replies would block) rather than
%% stall, and keep serving the pool.
own_lane_flood_without_reading_replies(Dir) ->
    iommap_test_lib:with_lanes(2, fun() ->
        Pool = iommap_test_lib:lanes_pool_up(),
        #{path := Path} = iommap_lanes:info(Pool),
        P = iommap_test_lib:pattern_file(Dir, "fl", 5, ?PAGE),
        {ok, H} = iommap:open(P, read_write, []),
        [{_, HId, _}] = ets:lookup((iommap_client:engine())#engine.handles, H),
        S = own_lane(Path),
        F = iommap_codec:encode(7, HId, {pread, 0, 4000}),
        Frame = [<<(iolist_size(F)):32>>, F],
        Sender = spawn(fun() -> [socket:send(S, Frame) || _ <- lists:seq(1, 20000)] end),
        T0 = erlang:monotonic_time(millisecond),
        [?assertEqual({ok, iommap_test_lib:pattern(5, (I rem 512) * 8, 8)}, iommap:pread(H, (I rem 512) * 8, 8))
         || I <- lists:seq(0, 2000)],
        ?assert(erlang:monotonic_time(millisecond) - T0 < 3000),
        exit(Sender, kill),
        socket:close(S),
        ?assertMatch(#{broken := 0}, iommap_lanes:info(Pool)),
        ok = iommap:close(H)
    end).

%% iommap_lanes:replace/2 takes a successful connect for a working lane,
%% but the engine may close it at once (maxLanes in port/lane.go), and the
%% slot is handed out as free: the next caller on it gets {error, closed}
%% from run/5 for a handle and an engine that are fine, instead of the
%% port. Here: one pool lane, 255 connections of ours; a caller killed
%% mid-call (engine stopped) makes the sweep replace its lane, and one
%% more connection of ours queued before the replacement takes the last
%% place.
a_lane_the_engine_refused_is_handed_out(Dir) ->
    iommap_test_lib:with_lanes(1, fun() ->
        Pool = iommap_test_lib:lanes_pool_up(),
        #{path := Path} = iommap_lanes:info(Pool),
        P = iommap_test_lib:pattern_file(Dir, "rf", 6, ?PAGE),
        {ok, H} = iommap:open(P, read_write, []),
        %% a few at a time: a burst past the engine's listen backlog gives
        %% sockets that connect/2 calls connected and are not (see
        %% many_lanes_every_caller_is_answered)
        Mine = lists:append([begin L = [own_lane(Path) || _ <- lists:seq(1, 15)], timer:sleep(20), L end
                             || _ <- lists:seq(1, 17)]),
        ?assertEqual(1 + 1 + 255, engine_sockets()),
        ?assertEqual({ok, iommap_test_lib:pattern(6, 0, 8)}, iommap:pread(H, 0, 8)),  % all accepted by now
        OsPid = iommap_test_lib:engine_os_pid(),
        os:cmd("kill -STOP " ++ integer_to_list(OsPid)),
        Extra = try
                    Caller = spawn(fun() -> iommap:pread(H, 8, 8) end),
                    timer:sleep(30),
                    exit(Caller, kill),
                    X = own_lane(Path),
                    %% the sweeps (every 100 ms) try to replace the lane;
                    %% the engine refuses the new one, or cannot answer
                    timer:sleep(300),
                    X
                after
                    os:cmd("kill -CONT " ++ integer_to_list(OsPid))
                end,
        timer:sleep(50),
        R = iommap:pread(H, 16, 8),

        [socket:close(S) || S <- [Extra | Mine]],
        ?assertEqual({ok, iommap_test_lib:pattern(6, 16, 8)}, R),
        ok = iommap:close(H)
    end).

%% with a backlog of 64 (port/lane_linux.go, listenLane) and
%% iommap_lanes:open/3 connects all N at once (connect_all/2). Past the
%% backlog, OTP's socket:connect/2 on a local stream socket answers ok for
%% a socket that is not connected (send then gives enotconn), so the pool
%% holds lanes the engine never accepted; info/1 counts them free, and a
%% caller that checks one out gets {error, closed} from run/5 for a handle
%% and an engine that are fine (any lane failure is taken for the engine
%% gone; the call is not retried on the port).
many_lanes_every_caller_is_answered(Dir) ->
    iommap_test_lib:with_lanes(128, fun() ->
        Pool = iommap_test_lib:lanes_pool_up(),
        P = iommap_test_lib:pattern_file(Dir, "ml", 8, ?PAGE),
        {ok, H} = iommap:open(P, read_write, []),
        Accepted = engine_sockets() - 1,
        Self = self(),
        Pids = [spawn_link(fun() ->
                                   Self ! {r, self(), lists:usort([iommap:pread(H, 8, 8) || _ <- lists:seq(1, 50)])}
                           end) || _ <- lists:seq(1, 300)],
        Answers = lists:usort(lists:append([receive {r, Pid, R} -> R end || Pid <- Pids])),
        ?assertEqual({128, [{ok, iommap_test_lib:pattern(8, 8, 8)}]}, {Accepted, Answers}),
        ?assertMatch(#{size := 128}, iommap_lanes:info(Pool)),
        ok = iommap:close(H)
    end).

%% The application stopped, then the engine server killed, while callers
%% at every priority loop on the lanes: each ends with {error, closed} at
%% once, none hangs and none gets a wrong value.
app_stop_and_server_kill_while_callers_poll(Dir) ->
    iommap_test_lib:with_lanes(4, fun() ->
        P = iommap_test_lib:pattern_file(Dir, "st", 6, ?PAGE),
        Run = fun(Stop) ->
                      _ = iommap_test_lib:lanes_pool_up(),
                      {ok, H} = iommap:open(P, read_write, []),
                      Self = self(),
                      Loop = fun L(I) ->
                                     Off = (I rem 512) * 8,
                                     Want = {ok, iommap_test_lib:pattern(6, Off, 8)},
                                     case iommap:pread(H, Off, 8) of
                                         Want -> L(I + 1);
                                         Other -> Self ! {ended, self(), Other}
                                     end
                             end,
                      Pids = [spawn_opt(fun() -> Loop(0) end, [{priority, Pr}])
                              || Pr <- [low, normal, normal, normal, high, high, max]],
                      timer:sleep(100),
                      Stop(),
                      Ends = [receive {ended, Pid, R} -> R after 3000 -> hung end || Pid <- Pids],
                      ?assertEqual([{error, closed}], lists:usort(Ends))
              end,
        Run(fun() -> ok = application:stop(iommap) end),
        {ok, _} = application:ensure_all_started(iommap),
        Run(fun() -> exit(whereis(iommap_engine), kill) end)
    end).
