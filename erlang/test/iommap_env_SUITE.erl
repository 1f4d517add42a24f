%% The application environment: checked at start with an error that names
%% the key, an engine path that can be moved, and an engine of another
%% protocol version refused.
-module(iommap_env_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, end_per_testcase/2]).
-export([bad_values_fail_the_start_by_name/1, engine_path_can_be_moved/1,
         missing_engine_is_named/1, other_protocol_is_refused/1, bad_hello_is_refused/1]).

all() -> [bad_values_fail_the_start_by_name, engine_path_can_be_moved,
          missing_engine_is_named, other_protocol_is_refused, bad_hello_is_refused].

end_per_testcase(_, _) ->
    _ = application:stop(iommap),
    [application:unset_env(iommap, K) || K <- [engine_path, spin_us, pipe_size, engine_threads,
                                               stage_min, stage_max, stage_kind]],
    application:load(iommap),
    [application:set_env(iommap, K, V) || {K, V} <- [{spin_us, 50}, {pipe_size, 1048576}, {engine_threads, 1},
                                                     {stage_min, 131072}, {stage_max, 64}]],
    ok.

restart_with(Env) ->
    _ = application:stop(iommap),
    ok = application:load(iommap) =:= ok orelse ok,
    [application:set_env(iommap, K, V) || {K, V} <- Env],
    application:ensure_all_started(iommap).

bad_values_fail_the_start_by_name(_Config) ->
    Cases = [{spin_us, -3}, {spin_us, fast}, {pipe_size, -1}, {engine_threads, 0},
             {engine_threads, "2"}, {engine_path, 42}, {stage_min, 0}, {stage_min, never},
             {stage_max, -1}, {stage_max, 1.5}, {stage_kind, shm}, {stage_kind, "file"}],
    [begin
         end_per_testcase(x, x),
         {error, {iommap, Why}} = restart_with([{K, V}]),
         ?assertMatch({{invalid_env, K, V, _}, _}, {element(1, Why), K}),
         ?assertError({iommap_not_started, _}, iommap:open("/tmp/x", read, []))
     end || {K, V} <- Cases],
    ct:pal("~p bad settings, each refused by name", [length(Cases)]),
    %% and the good values at the edges start
    [begin
         end_per_testcase(x, x),
         {ok, _} = restart_with([{K, V}])
     end || {K, V} <- [{stage_min, infinity}, {stage_min, 1}, {stage_max, 0},
                       {stage_kind, memfd}, {stage_kind, file}, {stage_kind, none}]].

engine_path_can_be_moved(Config) ->
    Src = filename:join(code:priv_dir(iommap), "iommap_port"),
    Dst = filename:join(?config(priv_dir, Config), "moved_engine"),
    {ok, _} = file:copy(Src, Dst),
    ok = file:change_mode(Dst, 8#755),
    {ok, _} = restart_with([{engine_path, Dst}, {spin_us, 0}]),
    {ok, #{os_pid := Pid}} = iommap:engine_info(),
    ?assertEqual({ok, Dst}, file:read_link("/proc/" ++ integer_to_list(Pid) ++ "/exe")),
    {ok, Cmdline} = file:read_file("/proc/" ++ integer_to_list(Pid) ++ "/cmdline"),
    ?assertMatch({match, _}, re:run(Cmdline, <<"-spin\\x000\\x00">>)),
    P = filename:join(?config(priv_dir, Config), "data"),
    {ok, H} = iommap:open(P, read_write, [create, {size, 10}]),
    ok = iommap:close(H),
    %% A relative engine path (as a relative -pa makes of priv_dir) names
    %% the file from the node's directory, though the engine runs in "/".
    {ok, Cwd} = file:get_cwd(),
    ok = file:set_cwd(?config(priv_dir, Config)),
    try
        end_per_testcase(x, x),
        {ok, _} = restart_with([{engine_path, "moved_engine"}]),
        {ok, #{os_pid := Pid2}} = iommap:engine_info(),
        ?assertEqual({ok, Dst}, file:read_link("/proc/" ++ integer_to_list(Pid2) ++ "/exe"))
    after
        file:set_cwd(Cwd)
    end.

missing_engine_is_named(Config) ->
    Missing = filename:join(?config(priv_dir, Config), "no_such_engine"),
    {error, {iommap, {{invalid_env, engine_path, Missing, Why}, _}}} =
        restart_with([{engine_path, Missing}]),
    ?assertEqual("an engine binary: enoent", Why).

%% A stand-in engine that answers hello with protocol 99.
other_protocol_is_refused(Config) ->
    Why = start_with_fake(Config, "fake_engine", term_to_binary({1, {ok, {99, <<"9.9.9">>}}})),
    ?assertMatch({match, _}, re:run(io_lib:format("~p", [Why]), "engine_protocol_mismatch")).

%% Stand-ins that answer hello with something else, or with bytes that are
%% no term: the start fails with a reason that says so, and the stand-in's
%% port is closed (it sees the end of its input).
bad_hello_is_refused(Config) ->
    [begin
         Name = "bad_hello_" ++ integer_to_list(I),
         Why = start_with_fake(Config, Name, Reply),
         ?assertMatch({match, _}, re:run(io_lib:format("~p", [Why]), "engine_bad_hello")),
         Eof = filename:join(?config(priv_dir, Config), Name ++ ".eof"),
         iommap_test_lib:wait_until(fun() -> filelib:is_file(Eof) end)
     end || {I, Reply} <- [{1, term_to_binary({1, hello_yourself})},
                           {2, term_to_binary({2, {ok, {4, <<"1.0.0">>}}})},
                           {3, <<"not a term">>}]].

%% Starts the application with a stand-in engine that writes Reply as its
%% one frame, and at the end of its input writes the file Name.eof; the
%% reason the start fails with.
start_with_fake(Config, Name, Reply) ->
    Frame = <<(byte_size(Reply)):32, Reply/binary>>,
    Octal = lists:flatten([io_lib:format("\\~3.8.0b", [B]) || <<B>> <= Frame]),
    Fake = filename:join(?config(priv_dir, Config), Name),
    ok = file:write_file(Fake, ["#!/bin/sh\nprintf '", Octal, "'\ncat >/dev/null\n: > '", Fake, ".eof'\n"]),
    ok = file:change_mode(Fake, 8#755),
    {error, {iommap, Why}} = restart_with([{engine_path, Fake}]),
    ct:pal("start refused: ~p", [Why]),
    Why.
