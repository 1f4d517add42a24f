%% Attacks on direct reads of the file through descriptors lent by
%% iommap_direct_files (docs/API.md, "Direct reads (ours)").
-module(iommap_attack3_tests).

-include_lib("eunit/include/eunit.hrl").
-include_lib("kernel/include/file.hrl").

-define(PAGE, 4096).
-define(CACHE, '$iommap_direct').
-define(BIG, (16 * ?PAGE)).

attack3_test_() ->
    case os:type() of
        {unix, linux} ->
            {setup,
             fun() -> {ok, Apps} = application:ensure_all_started(iommap), Apps end,
             fun(_) -> ok end,
             {timeout, 600,
              iommap_test_lib:in_tmp_dirs(
                [fun lent_descriptor_closed_by_its_reader_does_not_stall_close/1,
                 fun cache_with_a_pid_for_the_descriptor_does_not_hang/1,
                 fun cache_with_another_processes_descriptor_does_not_raise/1,
                 fun cache_with_another_handles_descriptor_gives_wrong_bytes/1,
                 fun keeper_killed_under_big_readers/1,
                 fun engine_killed_under_big_readers/1,
                 fun close_racing_the_first_big_read/1,
                 fun bounds_hold_under_many_processes/1,
                 fun truncate_through_another_handle/1,
                 fun owner_death_releases_lent_descriptors/1,
                 fun delete_on_close_file_not_held/1])}};
        _ ->
            []
    end.

%% Helpers

on(F) -> iommap_test_lib:with_env(direct_reads, true, F).

vm() -> list_to_integer(os:getpid()).

%% Runs F in a new process; its result, or timeout after Ms.
within(Ms, F) ->
    Self = self(),
    {Pid, Mon} = spawn_monitor(fun() -> Self ! {self(), (catch F())} end),
    receive
        {Pid, R} -> erlang:demonitor(Mon, [flush]), R
    after Ms ->
        exit(Pid, kill),
        receive {'DOWN', Mon, _, _, _} -> ok end,
        timeout
    end.

lent(H) ->
    {_, _, #{H := {_, _, _, #file_descriptor{} = F}}} = get(?CACHE),
    F.

fd_links(Pid) ->
    Dir = "/proc/" ++ integer_to_list(Pid) ++ "/fd",
    {ok, Fds} = file:list_dir(Dir),
    [L || Fd <- Fds, {ok, L} <- [file:read_link(filename:join(Dir, Fd))]].

held(File) ->
    [L || L <- fd_links(vm()), string:find(L, File) =/= nomatch].

%% Tests

%% A lent descriptor closed by the process it was lent to (its owner as
%% far as prim_file is concerned, so file:close/1 works): the keeper's
%% close then answers einval, as during a read, and its count of reads
%% under way tells it apart, so iommap:close/1 returns at once.
lent_descriptor_closed_by_its_reader_does_not_stall_close(Dir) ->
    on(fun() ->
               P = iommap_test_lib:pattern_file(Dir, "d1", 1, 2 * ?BIG),
               {ok, H} = iommap:open(P, read, []),
               Self = self(),
               Reader = spawn_link(fun() ->
                                           {ok, _} = iommap:pread(H, 0, ?BIG),
                                           Self ! {self(), file:close(lent(H))},
                                           receive stop -> ok end
                                   end),
               receive {Reader, C} -> ?assertEqual(ok, C) end,
               T0 = erlang:monotonic_time(millisecond),
               R = within(3000, fun() -> iommap:close(H) end),
               Reader ! stop,
               ?assertEqual({ok, true}, {R, erlang:monotonic_time(millisecond) - T0 < 3000}),
               ok
       end).

%% A cache that names a pid where the memory descriptor goes is dropped
%% (file:pread/3 would take the pid for an io server and wait forever).
cache_with_a_pid_for_the_descriptor_does_not_hang(Dir) ->
    on(fun() ->
               P = iommap_test_lib:pattern_file(Dir, "d2a", 2, ?PAGE),
               {ok, H} = iommap:open(P, read, []),
               Want = {ok, iommap_test_lib:pattern(2, 0, 64)},
               R = within(2000, fun() ->
                                        Want = iommap:pread(H, 0, 64),
                                        {Port, _Fd, Regions} = get(?CACHE),
                                        put(?CACHE, {Port, self(), Regions}),
                                        iommap:pread(H, 0, 64)
                                end),
               ok = iommap:close(H),
               ?assertEqual(Want, R)
       end).

%% A cache holding another process's memory descriptor is dropped (a read
%% of it would raise not_on_controlling_process out of pread/3).
cache_with_another_processes_descriptor_does_not_raise(Dir) ->
    on(fun() ->
               P = iommap_test_lib:pattern_file(Dir, "d2b", 3, ?PAGE),
               {ok, H} = iommap:open(P, read, []),
               Want = {ok, iommap_test_lib:pattern(3, 0, 64)},
               Want = iommap:pread(H, 0, 64),
               {Port, _, Regions} = get(?CACHE),
               Self = self(),
               Other = spawn_link(fun() ->
                                          Want = iommap:pread(H, 0, 64),
                                          Self ! {self(), get(?CACHE)},
                                          receive stop -> ok end
                                  end),
               {Port, OtherFd, _} = receive {Other, C} -> C end,
               put(?CACHE, {Port, OtherFd, Regions}),
               R = try iommap:pread(H, 0, 64) catch Cl:E -> {raised, Cl, E} end,
               Other ! stop,
               erase(?CACHE),
               ok = iommap:close(H),
               ?assertEqual(Want, R)
       end).

%% A cache entry of handle H holding the descriptor lent for handle H2
%% (another file) is not trusted: pread(H) answers H's bytes.
cache_with_another_handles_descriptor_gives_wrong_bytes(Dir) ->
    on(fun() ->
               P1 = iommap_test_lib:pattern_file(Dir, "d2c1", 11, 2 * ?BIG),
               P2 = iommap_test_lib:pattern_file(Dir, "d2c2", 12, 2 * ?BIG),
               {ok, H1} = iommap:open(P1, read, []),
               {ok, H2} = iommap:open(P2, read, []),
               {ok, _} = iommap:pread(H1, 0, ?BIG),
               {ok, _} = iommap:pread(H2, 0, ?BIG),
               {Port, Fd, #{H1 := {M, R, E, _}} = Regions} = get(?CACHE),
               put(?CACHE, {Port, Fd, Regions#{H1 := {M, R, E, lent(H2)}}}),
               Got = iommap:pread(H1, 0, ?BIG),
               erase(?CACHE),
               ok = iommap:close(H1), ok = iommap:close(H2),
               ?assertEqual({ok, iommap_test_lib:pattern(11, 0, ?BIG)}, Got)
       end).

big_loop(H, Tag, Stop, N) ->
    receive
        Stop -> N
    after 0 ->
        Off = 8 * rand:uniform(1024),
        case iommap:pread(H, Off, ?BIG) of
            {ok, B} ->
                case iommap_test_lib:pattern(Tag, Off, ?BIG) of
                    B -> big_loop(H, Tag, Stop, N + 1);
                    _ -> {wrong, Off}
                end;
            {error, closed} -> {closed, N};
            Other -> {other, Other}
        end
    end.

%% The keeper killed (and restarted) while readers loop big reads:
%% every answer right, no descriptor left behind.
keeper_killed_under_big_readers(Dir) ->
    on(fun() ->
               P = iommap_test_lib:pattern_file(Dir, "keeper_killed_file", 4, 4 * ?BIG),
               {ok, H} = iommap:open(P, read, []),
               F0 = iommap_test_lib:fds(vm()),
               Self = self(),
               Rs = [spawn_link(fun() -> Self ! {self(), big_loop(H, 4, stop, 0)}, receive stop -> ok end end) || _ <- [1, 2, 3]],
               [begin
                    timer:sleep(30),
                    exit(whereis(iommap_direct_files), kill),
                    iommap_test_lib:wait_until(fun() -> is_pid(whereis(iommap_direct_files)) end)
                end || _ <- lists:seq(1, 10)],
               timer:sleep(1200), % a reader refused while the keeper was down asks again after 1 s
               [R ! stop || R <- Rs],
               Res = [receive {R, N} -> N end || R <- Rs],
               ?assertEqual([], [X || X <- Res, not is_integer(X)]),
               ?assertEqual(3, iommap_direct_files:count()),
               ok = iommap:close(H),
               [R ! stop || R <- Rs],
               ?assertEqual(0, iommap_direct_files:count()),
               iommap_test_lib:wait_until(fun() -> iommap_test_lib:fds(vm()) =< F0 end)
       end).

%% kill -9 of the engine under big readers: right bytes or closed.
engine_killed_under_big_readers(Dir) ->
    on(fun() ->
               P = iommap_test_lib:pattern_file(Dir, "engine_killed_file", 5, 4 * ?BIG),
               {ok, H} = iommap:open(P, read, []),
               Self = self(),
               Rs = [spawn_link(fun() -> Self ! {self(), big_loop(H, 5, stop, 0)} end) || _ <- [1, 2, 3]],
               timer:sleep(50),
               os:cmd("kill -9 " ++ integer_to_list(iommap_test_lib:engine_os_pid())),
               Res = [receive {R, N} -> N end || R <- Rs],
               ?assertEqual([], [X || X <- Res, element(1, X) =/= closed]),
               iommap_test_lib:wait_until(fun() -> iommap_direct_files:count() =:= 0 end),
               iommap_test_lib:wait_until(fun() -> element(1, iommap_engine:os_pid()) =:= ok end),
               ?assertEqual([], held(filename:basename(P)))
       end).

%% close/1 racing a reader's first big read (the keeper opening the file):
%% once close/1 has returned, no descriptor of the file is held.
close_racing_the_first_big_read(Dir) ->
    on(fun() ->
               Self = self(),
               Bad = lists:append(
                 [begin
                      P = iommap_test_lib:pattern_file(Dir, "r" ++ integer_to_list(I), 6, 2 * ?BIG),
                      {ok, H} = iommap:open(P, read, []),
                      R = spawn(fun() ->
                                        receive go -> ok end,
                                        _ = iommap:pread(H, 0, ?BIG),
                                        Self ! {self(), done},
                                        receive stop -> ok end
                                end),
                      R ! go,
                      erlang:yield(),
                      ok = iommap:close(H),
                      Rows = ets:lookup(iommap_direct_files, H),
                      receive {R, done} -> ok end,
                      R ! stop,
                      ok = file:delete(P),
                      [{I, Rows} || Rows =/= []]
                  end || I <- lists:seq(1, 300)]),
               ?assertEqual([], Bad)
       end).

%% direct_files_max never passed, even with processes racing.
bounds_hold_under_many_processes(Dir) ->
    iommap_test_lib:with_env(direct_files_max, 5, fun() ->
        P = iommap_test_lib:pattern_file(Dir, "b", 7, 2 * ?BIG),
        {ok, H} = iommap:open(P, read, []),
        Self = self(),
        Want = {ok, iommap_test_lib:pattern(7, 8, ?BIG)},
        Ps = [spawn_link(fun() ->
                                 R = iommap:pread(H, 8, ?BIG),
                                 Self ! {self(), R},
                                 receive stop -> ok end
                         end) || _ <- lists:seq(1, 40)],
        Max = lists:max([begin timer:sleep(1), iommap_direct_files:count() end || _ <- lists:seq(1, 50)]),
        Rs = [receive {Pid, R} -> R end || Pid <- Ps],
        ?assertEqual([Want], lists:usort(Rs)),
        ?assert(Max =< 5),
        ?assertEqual(5, iommap_direct_files:count()),
        [Pid ! stop || Pid <- Ps],
        iommap_test_lib:wait_until(fun() -> iommap_direct_files:count() =:= 0 end),
        ok = iommap:close(H)
    end).

%% A file shrunk and regrown through another handle: the same
%% answers as through the engine.
truncate_through_another_handle(Dir) ->
    Run = fun(Name) ->
                  P = iommap_test_lib:pattern_file(Dir, Name, 8, 4 * ?BIG),
                  {ok, H1} = iommap:open(P, read, []),
                  {ok, H2} = iommap:open(P, read_write, []),
                  {ok, _} = iommap:pread(H1, 0, ?BIG),
                  ok = iommap:truncate(H2, ?BIG + 100),
                  A = [iommap:pread(H1, O, L) || {O, L} <- [{0, ?BIG}, {?BIG, ?BIG}, {8, 2 * ?BIG}, {?BIG + 96, 8}]],
                  ok = iommap:truncate(H2, 4 * ?BIG),
                  B = [iommap:pread(H1, O, L) || {O, L} <- [{0, ?BIG}, {?BIG, ?BIG}, {8, 2 * ?BIG}, {3 * ?BIG, ?BIG}]],
                  ok = iommap:close(H1), ok = iommap:close(H2),
                  {A, B}
          end,
    D = on(fun() -> Run("t_on") end),
    E = iommap_test_lib:with_env(direct_reads, false, fun() -> Run("t_off") end),
    ?assertEqual(E, D).

%% A handle whose owner dies: the lent descriptors go soon.
owner_death_releases_lent_descriptors(Dir) ->
    on(fun() ->
               P = iommap_test_lib:pattern_file(Dir, "owner_death_file", 9, 2 * ?BIG),
               Self = self(),
               Owner = spawn(fun() ->
                                     {ok, H} = iommap:open(P, read, []),
                                     Self ! {self(), H},
                                     receive stop -> ok end
                             end),
               H = receive {Owner, X} -> X end,
               {ok, _} = iommap:pread(H, 0, ?BIG),
               ?assertEqual(1, length(ets:lookup(iommap_direct_files, H))),
               Owner ! stop,
               iommap_test_lib:wait_until(fun() -> ets:lookup(iommap_direct_files, H) =:= [] end),
               ok = file:delete(P),
               iommap_test_lib:wait_until(fun() -> held(filename:basename(P)) =:= [] end),
               ?assertEqual({error, closed}, iommap:pread(H, 0, ?BIG))
       end).

%% delete_on_close: nothing holds the file once close/1 returned.
delete_on_close_file_not_held(Dir) ->
    on(fun() ->
               P = iommap_test_lib:pattern_file(Dir, "delete_on_close_file", 10, 2 * ?BIG),
               {ok, H} = iommap:open(P, read_write, [delete_on_close]),
               {ok, _} = iommap:pread(H, 0, ?BIG),
               ok = iommap:close(H),
               ?assertEqual([], held(filename:basename(P)))
       end).
