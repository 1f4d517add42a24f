%% Resource limits: the engine runs out of file descriptors and keeps
%% serving; tens of thousands of handles come and go and the engine's fds and
%% memory come back to where they were.
-module(iommap_limits_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_testcase/2, end_per_testcase/2, emfile_and_still_serving/1, many_handles_come_back/1,
         owner_of_many_handles_dies/1, short_soak/1, short_soak_staged/1]).

all() -> [emfile_and_still_serving, many_handles_come_back, owner_of_many_handles_dies,
          short_soak, short_soak_staged].

%% Each case makes its files in a directory of its own, removed when it
%% ends, and finds the engine running, whichever cases ran before it.
init_per_testcase(Case, Config) ->
    {ok, _} = application:ensure_all_started(iommap),
    iommap_test_lib:init_case_dir(Case, Config).

end_per_testcase(_, Config) ->
    iommap_test_lib:end_case_dir(Config).

%% `make soak' runs the same for 2 minutes.
short_soak(_Config) ->
    #{unexpected := Bad, ops := Ops, start := {_, Fd0}, 'end' := {_, Fd1}} = iommap_soak:run(10),
    ?assertEqual([], Bad),
    ?assert(Ops > 1000),
    ?assert(Fd1 =< Fd0 + 2). % + the Go runtime's epoll and eventfd, made once

%% The same with stage_min at 1 KiB, so most reads and writes go through
%% the workers' stages while truncates turn ranges into sigbus; every stage
%% is gone with its worker.
short_soak_staged(Config) ->
    iommap_test_lib:with_env(stage_min, 1024, fun() ->
        short_soak(Config),
        iommap_test_lib:wait_until(fun() -> stages() =:= 0 end)
    end).

stages() ->
    {ok, #{stages := N}} = iommap:engine_info(),
    N.

os_pid() -> iommap_test_lib:engine_os_pid().

emfile_and_still_serving(Config) ->
    P = iommap_test_lib:file_in(?config(case_dir, Config), "emfile", <<0:(4096 * 8)>>),
    {ok, Keep} = iommap:open(P, read_write, []),
    Pid = os_pid(),
    Limit = iommap_test_lib:fds(Pid) + 20,
    %% Only the soft limit: lowering the hard one cannot be undone without
    %% CAP_SYS_RESOURCE.
    Soft = string:trim(os:cmd(io_lib:format("prlimit --pid ~w --nofile -o SOFT --noheadings", [Pid]))),
    "" = os:cmd(io_lib:format("prlimit --pid ~w --nofile=~w:", [Pid, Limit])),
    try
        {Hs, Err} = open_until_error(P, []),
        ct:pal("with RLIMIT_NOFILE ~p: ~p opens, then ~p", [Limit, length(Hs), Err]),
        ?assertEqual({error, emfile}, Err),
        ?assert(length(Hs) >= 10),
        ?assertEqual(ok, iommap:pwrite(Keep, 0, <<"alive">>)),
        ?assertEqual({ok, <<"alive">>}, iommap:pread(Keep, 0, 5)),
        [ok = iommap:close(H) || H <- Hs],
        {ok, H2} = iommap:open(P, read_write, []),
        ok = iommap:close(H2)
    after
        "" = os:cmd(io_lib:format("prlimit --pid ~w --nofile=~s:", [Pid, Soft]))
    end,
    ok = iommap:close(Keep).

open_until_error(P, Acc) when length(Acc) < 1000 ->
    case iommap:open(P, read_write, []) of
        {ok, H} -> open_until_error(P, [H | Acc]);
        Err -> {Acc, Err}
    end.

many_handles_come_back(Config) ->
    P = iommap_test_lib:file_in(?config(case_dir, Config), "many", <<0:(4096 * 8)>>),
    Pid = os_pid(),
    {ok, Warm} = iommap:open(P, read_write, []), ok = iommap:close(Warm),
    Fd0 = iommap_test_lib:fds(Pid), Rss0 = iommap_test_lib:rss_kib(Pid),
    N = 20000,
    T0 = erlang:monotonic_time(millisecond),
    %% in waves of 500 open at once, 40 waves
    [begin
         Hs = [element(2, {ok, _} = iommap:open(P, read_write, [])) || _ <- lists:seq(1, 500)],
         [ok = iommap:pwrite(H, 0, <<"w">>) || H <- Hs],
         [ok = iommap:close(H) || H <- Hs]
     end || _ <- lists:seq(1, N div 500)],
    Ms = erlang:monotonic_time(millisecond) - T0,
    Fd1 = iommap_test_lib:fds(Pid), Rss1 = iommap_test_lib:rss_kib(Pid),
    {ok, #{handles := Open}} = iommap:engine_info(),
    ct:pal("~p handles opened, written and closed in ~p ms: engine fds ~p -> ~p, RSS ~p -> ~p KiB, open handles after: ~p",
           [N, Ms, Fd0, Fd1, Rss0, Rss1, Open]),
    ?assert(Fd1 =< Fd0 + 2), % the Go runtime's epoll and eventfd, made once; a leak would be thousands
    ?assertEqual(0, Open),
    ?assert(Rss1 - Rss0 < 32 * 1024).

owner_of_many_handles_dies(Config) ->
    P = iommap_test_lib:file_in(?config(case_dir, Config), "owner", <<0:(4096 * 8)>>),
    Pid = os_pid(),
    Fd0 = iommap_test_lib:fds(Pid),
    Self = self(),
    {Owner, Ref} = spawn_monitor(fun() ->
                                         Hs = [element(2, {ok, _} = iommap:open(P, read, [])) || _ <- lists:seq(1, 2000)],
                                         Self ! {opened, length(Hs)},
                                         receive die -> exit(boom) end
                                 end),
    receive
        {opened, 2000} -> ok;
        {'DOWN', Ref, process, Owner, Why} -> ct:fail({owner_died_opening, Why})
    end,
    ?assertEqual(Fd0 + 2000, iommap_test_lib:fds(Pid)),
    Owner ! die,
    receive {'DOWN', Ref, process, Owner, boom} -> ok end,
    iommap_test_lib:wait_until(fun() -> iommap_test_lib:fds(Pid) =:= Fd0 end, 500),
    {ok, #{handles := Open}} = iommap:engine_info(),
    ct:pal("owner of 2000 handles died: engine fds back to ~p, open handles ~p", [iommap_test_lib:fds(Pid), Open]),
    ?assertEqual(0, Open).
