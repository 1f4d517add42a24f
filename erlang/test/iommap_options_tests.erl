%% The open options beyond the NIF package: {chmod, Mode} and
%% delete_on_close.
-module(iommap_options_tests).

-include_lib("eunit/include/eunit.hrl").
-include_lib("kernel/include/file.hrl").

options_test_() ->
    {setup,
     fun() -> {ok, _} = application:ensure_all_started(iommap) end,
     fun(_) -> ok end,
     iommap_test_lib:in_tmp_dirs(
       [fun chmod_gives_exactly_those_bits/1,
        fun chmod_leaves_an_existing_file_alone/1,
        fun chmod_out_of_range_raises_badarg/1,
        fun delete_on_close_at_close/1,
        fun delete_on_close_at_the_owners_death/1,
        fun delete_on_close_at_application_stop/1,
        fun delete_on_close_when_the_engine_dies/1,
        fun without_delete_on_close_the_file_stays/1])}.

mode_of(Path) ->
    {ok, #file_info{mode = M}} = file:read_file_info(Path),
    M band 8#7777.

chmod_gives_exactly_those_bits(Dir) ->
    %% whatever the umask of the engine; 8#600 and 8#640 differ from the
    %% default 0644 less any umask
    [begin
         P = filename:join(Dir, integer_to_list(M, 8)),
         {ok, H} = iommap:open(P, read_write, [create, {size, 64}, {chmod, M}]),
         ?assertEqual({M, M}, {M, mode_of(P)}),
         ok = iommap:close(H)
     end || M <- [8#600, 8#640, 8#700, 8#000]],
    %% the last one given wins
    P2 = filename:join(Dir, "last"),
    {ok, H2} = iommap:open(P2, read_write, [{chmod, 8#666}, create, {size, 8}, {chmod, 8#604}]),
    ?assertEqual(8#604, mode_of(P2)),
    ok = iommap:close(H2).

chmod_leaves_an_existing_file_alone(Dir) ->
    P = iommap_test_lib:file_in(Dir, "old", <<"data">>),
    ok = file:change_mode(P, 8#640),
    {ok, H} = iommap:open(P, read_write, [create, {chmod, 8#600}]),
    ?assertEqual(8#640, mode_of(P)),
    ok = iommap:close(H).

chmod_out_of_range_raises_badarg(Dir) ->
    P = filename:join(Dir, "x"),
    ?assertError(badarg, iommap:open(P, read_write, [create, {size, 8}, {chmod, 8#10000}])),
    ?assertError(badarg, iommap:open(P, read_write, [create, {size, 8}, {chmod, -1}])),
    ?assertError(badarg, iommap:open(P, read_write, [create, {size, 8}, {chmod, "0600"}])),
    ?assertEqual({error, enoent}, file:read_file_info(P)).

delete_on_close_at_close(Dir) ->
    P = filename:join(Dir, "d"),
    {ok, H} = iommap:open(P, read_write, [create, {size, 64}, delete_on_close]),
    ok = iommap:pwrite(H, 0, <<"x">>),
    ?assertMatch({ok, _}, file:read_file_info(P)),
    ?assertMatch({ok, #{options := [shared, delete_on_close]}}, iommap:info(H)),
    ok = iommap:close(H),
    ?assertEqual({error, enoent}, file:read_file_info(P)).

delete_on_close_at_the_owners_death(Dir) ->
    P = filename:join(Dir, "owner"),
    Self = self(),
    {Pid, Mon} = spawn_monitor(fun() ->
                                       {ok, _} = iommap:open(P, read_write, [create, {size, 64}, delete_on_close]),
                                       Self ! opened,
                                       receive stop -> ok end
                               end),
    receive opened -> ok end,
    ?assertMatch({ok, _}, file:read_file_info(P)),
    Pid ! stop,
    receive {'DOWN', Mon, process, Pid, _} -> ok end,
    ok = iommap_test_lib:wait_until(fun() -> file:read_file_info(P) =:= {error, enoent} end).

delete_on_close_at_application_stop(Dir) ->
    P = filename:join(Dir, "stop"),
    {ok, _} = iommap:open(P, read_write, [create, {size, 64}, delete_on_close]),
    ok = application:stop(iommap),
    %% the engine unlinks as it closes its handles on its way out, after
    %% the port is closed: wait for it (its exit grace is 2 s)
    ok = iommap_test_lib:wait_until(fun() -> file:read_file_info(P) =:= {error, enoent} end, 300),
    {ok, _} = application:ensure_all_started(iommap).

delete_on_close_when_the_engine_dies(Dir) ->
    P = filename:join(Dir, "killed"),
    Keep = filename:join(Dir, "kept"),
    {ok, H} = iommap:open(P, read_write, [create, {size, 64}, delete_on_close]),
    {ok, K} = iommap:open(Keep, read_write, [create, {size, 64}]),
    OsPid = iommap_test_lib:engine_os_pid(),
    Server = whereis(iommap_engine),
    Mon = erlang:monitor(process, Server),
    os:cmd("kill -9 " ++ integer_to_list(OsPid)),
    receive {'DOWN', Mon, process, Server, _} -> ok end,
    %% the server removes the file as it goes down, before the restart
    ?assertEqual({error, enoent}, file:read_file_info(P)),
    ?assertMatch({ok, _}, file:read_file_info(Keep)),
    ?assertEqual({error, closed}, iommap:pread(H, 0, 1)),
    ?assertEqual({error, closed}, iommap:close(K)).

without_delete_on_close_the_file_stays(Dir) ->
    P = filename:join(Dir, "stays"),
    {ok, H} = iommap:open(P, read_write, [create, {size, 64}]),
    ok = iommap:close(H),
    ?assertMatch({ok, _}, file:read_file_info(P)).
