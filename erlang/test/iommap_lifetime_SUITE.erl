%% Lifetime: ownership, engine death, concurrency, code reload.
-module(iommap_lifetime_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_testcase/2, end_per_testcase/2]).
-export([engine_death_wakes_a_waiting_caller/1, owner_death_closes_handles/1, controlling_process_hands_over/1,
         engine_kill_loses_no_acknowledged_write/1, engine_kill_repeated/1,
         many_processes_at_once/1, close_races_with_calls/1,
         reload_and_purge_with_handles_in_use/1, works_with_no_start_call/1,
         disk_full_is_enospc_not_sigbus/1, truncation_storm/1,
         atomics_across_os_processes/1, engine_kill_during_staged_writes/1,
         stage_is_replaced_after_engine_restart/1, stage_max_bounds_the_stages/1,
         stage_outlives_its_engine_until_its_process_acts/1, restart_backoff_blocks_nobody/1]).

all() ->
    [works_with_no_start_call, owner_death_closes_handles, controlling_process_hands_over,
     many_processes_at_once, close_races_with_calls, reload_and_purge_with_handles_in_use,
     disk_full_is_enospc_not_sigbus, truncation_storm, atomics_across_os_processes,
     engine_kill_loses_no_acknowledged_write, engine_kill_repeated,
     engine_kill_during_staged_writes, stage_is_replaced_after_engine_restart,
     stage_outlives_its_engine_until_its_process_acts,
     stage_max_bounds_the_stages, engine_death_wakes_a_waiting_caller,
     restart_backoff_blocks_nobody].

init_per_testcase(_, Config) ->
    Config.

end_per_testcase(_, _Config) ->
    ok.

%% A file of Size zero bytes in the suite's directory.
file_of(Config, Name, Size) ->
    iommap_test_lib:file_in(?config(priv_dir, Config), Name, <<0:(Size * 8)>>).

handles() ->
    {ok, #{handles := N}} = iommap:engine_info(),
    N.

%% Cases

works_with_no_start_call(Config) ->
    _ = application:stop(iommap),
    undefined = whereis(iommap_engine),
    {ok, H} = iommap:open(file_of(Config, "nostart", 16), read_write, []),
    ok = iommap:pwrite(H, 0, <<"x">>),
    ok = iommap:close(H).

owner_death_closes_handles(Config) ->
    P = file_of(Config, "owner", 4096),
    Before = handles(),
    Self = self(),
    {Pid, Ref} = spawn_monitor(fun() ->
                                       Hs = [element(2, iommap:open(P, read_write, [])) || _ <- lists:seq(1, 5)],
                                       Self ! {handles, Hs}
                               end),
    Hs = receive {handles, X} -> X end,
    receive {'DOWN', Ref, process, Pid, _} -> ok end,
    iommap_test_lib:wait_until(fun() -> handles() =:= Before end),
    [?assertEqual({error, closed}, iommap:pread(H, 0, 1)) || H <- Hs],
    [?assertEqual({error, closed}, iommap:close(H)) || H <- Hs].

controlling_process_hands_over(Config) ->
    P = file_of(Config, "ctl", 4096),
    Self = self(),
    {A, ARef} = spawn_monitor(fun() ->
                                      {ok, H} = iommap:open(P, read_write, []),
                                      Self ! {h, H},
                                      receive give -> Self ! {gave, iommap:controlling_process(H, Self)} end
                              end),
    H = receive {h, X} -> X end,
    %% not the owner: refused
    ?assertEqual({error, not_owner}, iommap:controlling_process(H, self())),
    A ! give,
    receive {gave, R} -> ?assertEqual(ok, R) end,
    receive {'DOWN', ARef, process, A, _} -> ok end,
    _ = sys:get_state(iommap_engine), % it has handled A's exit, had it still watched A
    %% the old owner died, the handle lives on with us
    ?assertEqual(ok, iommap:pwrite(H, 0, <<"mine">>)),
    ?assertEqual({ok, <<"mine">>}, iommap:pread(H, 0, 4)),
    %% and goes when its new owner dies
    {B, BRef} = spawn_monitor(fun() -> receive go -> ok end end),
    ok = iommap:controlling_process(H, B),
    B ! go,
    receive {'DOWN', BRef, process, B, _} -> ok end,
    iommap_test_lib:wait_until(fun() -> iommap:pread(H, 0, 1) =:= {error, closed} end),
    ?assertEqual({error, closed}, iommap:controlling_process(H, self())).

many_processes_at_once(Config) ->
    N = 32, Rec = 256, Rounds = 200,
    {ok, H} = iommap:open(file_of(Config, "many", N * Rec), read_write, []),
    Self = self(),
    Pids = [spawn_link(fun() ->
                               Off = I * Rec,
                               [begin
                                    Val = binary:copy(<<(R band 255)>>, Rec),
                                    ok = iommap:pwrite(H, Off, Val),
                                    {ok, Val} = iommap:pread(H, Off, Rec)
                                end || R <- lists:seq(1, Rounds)],
                               Self ! {done, self()}
                       end) || I <- lists:seq(0, N - 1)],
    [receive {done, P} -> ok after 60000 -> ct:fail(timeout) end || P <- Pids],
    {ok, All} = iommap:pread(H, 0, N * Rec),
    ?assertEqual(binary:copy(<<(Rounds band 255)>>, N * Rec), All),
    ok = iommap:close(H).

close_races_with_calls(Config) ->
    Allowed = fun(ok) -> true;
                 ({ok, _}) -> true;
                 ({error, closed}) -> true;
                 (_) -> false
              end,
    [begin
         {ok, H} = iommap:open(file_of(Config, "race", 65536), read_write, []),
         Self = self(),
         Ws = [spawn_link(fun() ->
                                  Rs = [case K rem 4 of
                                            0 -> iommap:pread(H, 0, 4096);
                                            1 -> iommap:pwrite(H, 0, <<1:32768>>);
                                            2 -> iommap:truncate(H, 65536);
                                            3 -> iommap:position(H)
                                        end || K <- lists:seq(1, 40)],
                                  Self ! {rs, self(), Rs}
                          end) || _ <- lists:seq(1, 4)],
         timer:sleep(rand:uniform(3)), % a random point to close at, not a wait for an event
         ?assertEqual(ok, iommap:close(H)),
         [receive {rs, W, Rs} -> [?assert(Allowed(R)) || R <- Rs] end || W <- Ws]
     end || _ <- lists:seq(1, 20)],
    ok.

reload_and_purge_with_handles_in_use(Config) ->
    {ok, H} = iommap:open(file_of(Config, "reload", 4096), read_write, []),
    Loop = spawn_link(fun() -> reader(H, 0) end),
    N0 = reads_past(Loop, 0),
    %% each reload and purge, then reads on the code loaded by it
    N = lists:foldl(fun(_, N1) ->
                            {module, iommap} = code:load_file(iommap),
                            _ = code:purge(iommap),
                            reads_past(Loop, N1)
                    end, N0, lists:seq(1, 3)),
    ?assert(N > N0),
    ?assert(is_process_alive(Loop)),
    unlink(Loop),
    exit(Loop, kill),
    ?assertEqual({ok, 4096}, iommap:position(H)),
    ok = iommap:close(H).

reader(H, N) ->
    receive
        {count, From} -> From ! {count, self(), N}
    after 0 -> ok
    end,
    {ok, _} = iommap:pread(H, 0, 64),
    reader(H, N + 1).

%% Waits until the reader has done more than N reads; how many it has done.
reads_past(Loop, N) ->
    Loop ! {count, self()},
    receive
        {count, Loop, C} when C > N -> C;
        {count, Loop, _} -> reads_past(Loop, N)
    after 5000 ->
        ct:fail(reader_stuck)
    end.

%% 8 writers and readers hammer a shared mapping; the engine is killed with
%% SIGKILL under them. Every caller must come back, every write that
%% returned ok must be in the file, and a new engine must serve opens.
engine_kill_loses_no_acknowledged_write(Config) ->
    kill_round(Config, "kill", 1).

engine_kill_repeated(Config) ->
    [kill_round(Config, "killrep" ++ integer_to_list(I), I) || I <- lists:seq(1, 10)],
    ok.

%% The same with records big enough to go through each writer's stage.
engine_kill_during_staged_writes(Config) ->
    Min = stage_min(),
    [kill_round(Config, "killstaged" ++ integer_to_list(I), I, Min, 8) || I <- lists:seq(1, 5)],
    ok.

%% A process's stage belongs to one engine: after a restart the process
%% gets a new one from the new engine, and the old one is closed.
stage_is_replaced_after_engine_restart(Config) ->
    %% reads of shared mappings go direct, not through a stage
    iommap_test_lib:with_env(direct_reads, false, fun() ->
        Min = stage_min(),
        P = file_of(Config, "restage", 4 * Min),
        {ok, H} = iommap:open(P, read_write, []),
        Data = crypto:strong_rand_bytes(Min),
        ok = iommap:pwrite(H, Min, Data),
        {Port1, {stage, _, Fd1}} = iommap_client:stage_get(self()),
        {ok, #{os_pid := OsPid, stages := 1}} = iommap:engine_info(),
        os:cmd("kill -9 " ++ integer_to_list(OsPid)),
        ?assertEqual({error, closed}, iommap:pread(H, 0, Min)),
        iommap_test_lib:wait_until(fun() -> case iommap:engine_info() of
                                {ok, #{os_pid := New}} -> New =/= OsPid;
                                _ -> false
                            end end),
        {ok, H2} = iommap:open(P, read_write, []),
        ?assert({ok, Data} =:= iommap:pread(H2, Min, Min)),
        {Port2, {stage, _, _}} = iommap_client:stage_get(self()),
        ?assertNotEqual(Port1, Port2),
        ?assertMatch({error, _}, file:pread(Fd1, 0, 1)), % closed on the way
        {ok, #{stages := 1}} = iommap:engine_info(),
        ok = iommap:close(H2)
    end).

%% An idle process keeps its stage of an engine that was killed (the VM
%% closes a raw file only for its owner): it closes it at its next bulk
%% call, before it opens one of the new engine, so its descriptors do not
%% grow; a process that exits instead leaves no row behind.
stage_outlives_its_engine_until_its_process_acts(Config) ->
    %% reads of shared mappings go direct, not through a stage
    iommap_test_lib:with_env(direct_reads, false, fun() ->
        Min = stage_min(),
        P = file_of(Config, "outlive", 2 * Min),
        {ok, H} = iommap:open(P, read, []),
        Acting = spawn_link(fun bulk_reader/0),
        Leaving = spawn_link(fun bulk_reader/0),
        [?assertMatch({ok, _}, bulk_read(Pid, H, Min)) || Pid <- [Acting, Leaving]],
        {Port1, {stage, _, Fd1}} = iommap_client:stage_get(Acting),
        {Port1, {stage, _, _}} = iommap_client:stage_get(Leaving),
        VmFds = iommap_test_lib:fds(list_to_integer(os:getpid())),
        OsPid = iommap_test_lib:engine_os_pid(),
        os:cmd("kill -9 " ++ integer_to_list(OsPid)),
        iommap_test_lib:wait_until(fun() -> new_engine(OsPid) end),
        {ok, #{stages := 0}} = iommap:engine_info(),
        %% idle, both still hold their stage of the dead engine
        ?assertEqual({Port1, {stage, Fd1}}, stage_fd(Acting)),
        ?assertMatch({Port1, {stage, _, _}}, iommap_client:stage_get(Leaving)),
        %% a call on a handle of the dead engine touches no stage
        ?assertEqual({error, closed}, bulk_read(Acting, H, Min)),
        ?assertEqual({Port1, {stage, Fd1}}, stage_fd(Acting)),
        %% a bulk call on the new engine closes the old stage, then opens one
        {ok, H2} = iommap:open(P, read, []),
        ?assertMatch({ok, _}, bulk_read(Acting, H2, Min)),
        {Port2, {stage, _, _}} = iommap_client:stage_get(Acting),
        ?assertNotEqual(Port1, Port2),
        ?assertMatch({error, _}, in(Acting, fun() -> file:pread(Fd1, 0, 1) end)),
        ?assertEqual(VmFds, iommap_test_lib:fds(list_to_integer(os:getpid()))),
        {ok, #{stages := 1}} = iommap:engine_info(),
        %% one that exits instead leaves no row behind
        Ref = monitor(process, Leaving),
        unlink(Leaving),
        exit(Leaving, kill),
        receive {'DOWN', Ref, process, Leaving, _} -> ok end,
        iommap_test_lib:wait_until(fun() -> iommap_client:stage_get(Leaving) =:= undefined end),
        unlink(Acting),
        exit(Acting, kill),
        iommap_test_lib:wait_until(fun() -> iommap_client:stage_get(Acting) =:= undefined end),
        {ok, #{stages := 0}} = iommap:engine_info(),
        ok = iommap:close(H2)
    end).

%% A process that reads through its stage when asked, and runs funs.
bulk_reader() ->
    receive
        {read, H, Len, From} -> From ! {self(), iommap:pread(H, 0, Len)};
        {run, F, From} -> From ! {self(), F()}
    end,
    bulk_reader().

bulk_read(Pid, H, Len) ->
    Pid ! {read, H, Len, self()},
    receive {Pid, R} -> R end.

in(Pid, F) ->
    Pid ! {run, F, self()},
    receive {Pid, R} -> R end.

stage_fd(Pid) ->
    {Port, {stage, _, Fd}} = iommap_client:stage_get(Pid),
    {Port, {stage, Fd}}.

new_engine(Old) ->
    case iommap:engine_info() of
        {ok, #{os_pid := P}} -> P =/= Old;
        {error, closed} -> false
    end.

%% No more than stage_max processes hold a stage (each is a descriptor in
%% the process and in the engine); the others use the pipe, with the same
%% answers, and get a stage after one is given back.
stage_max_bounds_the_stages(Config) ->
    %% reads of shared mappings go direct, not through a stage
    iommap_test_lib:with_env(direct_reads, false, fun() ->
        iommap_test_lib:with_env(stage_max, 2, fun() -> stage_max(Config) end)
    end).

stage_max(Config) ->
    Min = stage_min(),
    Bytes = crypto:strong_rand_bytes(2 * Min),
    P = iommap_test_lib:file_in(?config(priv_dir, Config), "stagemax", Bytes),
    {ok, H} = iommap:open(P, read, []),
    Self = self(),
    Read = fun() -> ?assert({ok, binary:part(Bytes, 1, Min)} =:= iommap:pread(H, 1, Min)) end,
    Procs = [spawn_link(fun() ->
                                Read(),
                                Self ! {read, self(), iommap_client:stage_get(self())},
                                reader_loop(Read)
                        end) || _ <- lists:seq(1, 4)],
    Got = [receive {read, Pid, {_, S}} -> S end || Pid <- Procs],
    ?assertEqual(2, length([S || {stage, _, _} = S <- Got])),
    ?assertEqual({ok, 2}, stage_count()),
    [Holder | _] = [Pid || {Pid, {stage, _, _}} <- lists:zip(Procs, Got)],
    [Waiter | _] = [Pid || {Pid, {none, _}} <- lists:zip(Procs, Got)],
    unlink(Holder),
    exit(Holder, kill),
    iommap_test_lib:wait_until(fun() -> stage_count() =:= {ok, 1} end),
    Waiter ! {read_now, Self}, % as if its retry time had passed
    receive {again, Waiter, Again} -> ?assertMatch({_, {stage, _, _}}, Again) end,
    ?assertEqual({ok, 2}, stage_count()),
    [begin unlink(Pid), exit(Pid, kill) end || Pid <- Procs, Pid =/= Holder],
    iommap_test_lib:wait_until(fun() -> stage_count() =:= {ok, 0} end),
    ok = iommap:close(H).

reader_loop(Read) ->
    receive
        {read_now, From} ->
            %% Backdate the retry time of a process that got no stage, so the
            %% next bulk call asks again now instead of a second later.
            {Port, {none, _}} = iommap_client:stage_get(self()),
            iommap_client:stage_put(Port, {none, erlang:monotonic_time(millisecond) - 1}),
            Read(),
            From ! {again, self(), iommap_client:stage_get(self())},
            reader_loop(Read)
    end.

stage_count() ->
    {ok, #{stages := N}} = iommap:engine_info(),
    {ok, N}.

stage_min() ->
    {ok, _} = application:ensure_all_started(iommap),
    Min = iommap_env:get(stage_min),
    Min.

kill_round(Config, Name, Seed) ->
    kill_round(Config, Name, Seed, 64, 512).

kill_round(Config, Name, Seed, Rec, Slots) ->
    NW = 8,
    P = file_of(Config, Name, NW * Slots * Rec),
    {ok, H} = iommap:open(P, read_write, []),
    {ok, #{os_pid := OsPid}} = iommap:engine_info(),
    Procs0 = erlang:system_info(process_count),
    Self = self(),
    Ws = [spawn_link(fun() -> writer(H, I, Rec, Slots, Seed, Self, []) end) || I <- lists:seq(0, NW - 1)],
    [receive {going, W} -> ok after 10000 -> ct:fail({writer_stuck, W}) end || W <- Ws],
    timer:sleep(rand:uniform(30)), % a random point to kill at, not a wait for an event
    os:cmd("kill -9 " ++ integer_to_list(OsPid)),
    Results = [receive {acked, W, A, M} -> {A, M} after 10000 -> ct:fail({caller_hung, W}) end || W <- Ws],
    Acked = lists:append([A || {A, _} <- Results]),
    {ok, Disk} = file:read_file(P),
    %% A write whose reply was lost with the engine may or may not be on
    %% disk; every acknowledged one must be, unless that lost write came
    %% after it at the same offset.
    [begin
         OnDisk = binary:part(Disk, Off, Rec),
         case lists:member({Off, OnDisk}, [M || {_, M} <- Results]) of
             true -> ok;
             false -> ?assertEqual({Off, Val}, {Off, OnDisk})
         end
     end || {Off, Val} <- Acked],
    ?assertEqual({error, closed}, iommap:pread(H, 0, 1)),
    iommap_test_lib:wait_until(fun() -> case iommap:engine_info() of
                            {ok, #{os_pid := New}} -> New =/= OsPid;
                            _ -> false
                        end end),
    {ok, H2} = iommap:open(P, read_write, []),
    ok = iommap:close(H2),
    iommap_test_lib:wait_until(fun() -> erlang:system_info(process_count) =< Procs0 end),
    ct:pal("round ~p: ~p acknowledged writes, all on disk", [Seed, length(Acked)]).

writer(H, I, Rec, Slots, Seed, Parent, Acked) ->
    Slot = rand:uniform(Slots) - 1,
    Off = (I * Slots + Slot) * Rec,
    Val = <<I:8, Seed:8, (length(Acked)):48, 0:((Rec - 8) * 8)>>,
    case iommap:pwrite(H, Off, Val) of
        ok ->
            Acked =:= [] andalso (Parent ! {going, self()}), % its first write is in
            Acked1 = [{Off, Val} | lists:keydelete(Off, 1, Acked)],
            case iommap:pread(H, Off, Rec) of
                {ok, Val} -> writer(H, I, Rec, Slots, Seed, Parent, Acked1);
                {error, closed} -> Parent ! {acked, self(), Acked1, none}
            end;
        {error, closed} ->
            Parent ! {acked, self(), Acked, {Off, Val}}
    end.


%% Growth allocates blocks, so a full disk fails the open or truncate that
%% grows, with enospc, instead of a write faulting later. Needs root for the
%% small tmpfs (CI runs as root).
disk_full_is_enospc_not_sigbus(Config) ->
    Dir = filename:join(?config(priv_dir, Config), "small"),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    case os:cmd("mount -t tmpfs -o size=1m tmpfs " ++ Dir ++ " 2>&1 && echo MOUNTED") of
        "MOUNTED\n" ->
            try disk_full(Dir) after os:cmd("umount " ++ Dir) end;
        Out ->
            {skip, {cannot_mount_tmpfs, Out}}
    end.

disk_full(Dir) ->
    P = filename:join(Dir, "big"),
    ?assertEqual({error, enospc}, iommap:open(P, read_write, [create, {size, 4 bsl 20}])),
    ?assertNot(filelib:is_file(P)), % the failed open removed what it created
    {ok, H} = iommap:open(P, read_write, [create, {size, 512 bsl 10}]),
    ?assertEqual({error, enospc}, iommap:truncate(H, 4 bsl 20)),
    ?assertEqual({ok, 512 bsl 10}, iommap:position(H)),
    ?assertEqual(ok, iommap:pwrite(H, (512 bsl 10) - 5, <<"still">>)),
    ?assertEqual({ok, <<"still">>}, iommap:pread(H, (512 bsl 10) - 5, 5)),
    ok = iommap:close(H).

%% Another OS process shrinks and regrows the mapped file in a loop while
%% readers and writers run: only contract answers come back, and the engine
%% goes on serving another handle throughout.
truncation_storm(Config) ->
    Size = 16 * 4096,
    P = file_of(Config, "storm", Size),
    Q = file_of(Config, "calm", 4096),
    {ok, H} = iommap:open(P, read_write, []),
    {ok, Calm} = iommap:open(Q, read_write, []),
    Storm = open_port({spawn_executable, "/bin/sh"},
                      [{args, ["-c", "for i in $(seq 1 400); do truncate -s 4096 " ++ P ++
                                     "; truncate -s " ++ integer_to_list(Size) ++ " " ++ P ++ "; done"]},
                       exit_status]),
    Self = self(),
    Allowed = fun(ok) -> true; ({ok, _}) -> true; ({error, sigbus}) -> true;
                 ({error, out_of_bounds}) -> true; (_) -> false end,
    Ws = [spawn_link(fun() -> Self ! {counts, self(), storm_loop(H, I, Allowed, #{})} end)
          || I <- lists:seq(1, 4)],
    receive {Storm, {exit_status, 0}} -> ok after 60000 -> ct:fail(storm_timeout) end,
    [W ! stop || W <- Ws],
    Counts = lists:foldl(fun(W, Acc) ->
                                 receive {counts, W, C} ->
                                         maps:fold(fun(K, V, A) -> maps:update_with(K, fun(X) -> X + V end, V, A) end, Acc, C)
                                 end
                         end, #{}, Ws),
    ct:pal("truncation storm, results by kind: ~p", [Counts]),
    ?assert(maps:get(sigbus, Counts, 0) > 0 orelse maps:get(ok, Counts, 0) > 0),
    ?assertEqual(ok, iommap:pwrite(Calm, 0, <<"calm">>)),
    ?assertEqual({ok, <<"calm">>}, iommap:pread(Calm, 0, 4)),
    ?assertEqual(ok, iommap:close(H)),
    ?assertEqual(ok, iommap:close(Calm)).

storm_loop(H, I, Allowed, Counts) ->
    receive stop -> Counts
    after 0 ->
        Off = rand:uniform(15) * 4096,
        R = case I rem 2 of
                0 -> iommap:pread(H, Off, 100);
                1 -> iommap:pwrite(H, Off, <<"storm">>)
            end,
        case Allowed(R) of
            true -> ok;
            false -> ct:fail({unexpected, R})
        end,
        K = case R of {error, E} -> E; _ -> ok end,
        storm_loop(H, I, Allowed, maps:update_with(K, fun(X) -> X + 1 end, 1, Counts))
    end.

%% A second engine, another OS process driven over the raw protocol, adds to
%% the same counter as 4 Erlang processes do through the main engine: the
%% final value is exact.
atomics_across_os_processes(Config) ->
    P = file_of(Config, "counter", 4096),
    {ok, H} = iommap:open(P, read_write, []),
    Engine = filename:join(code:priv_dir(iommap), "iommap_port"),
    Port = open_port({spawn_executable, Engine}, [{packet, 4}, binary, {args, ["-spin", "0"]}]),
    Call = fun(Req) ->
                   true = port_command(Port, term_to_binary(Req)),
                   receive {Port, {data, B}} -> binary_to_term(B) after 5000 -> ct:fail(no_reply) end
           end,
    {1, {ok, HId}} = Call({1, open, list_to_binary(P), read_write, shared, undefined, undefined, []}),
    N = 20000, Batch = 500,
    Self = self(),
    Other = spawn_link(fun() ->
                               [begin
                                    [true = port_command(Port, term_to_binary({I, add, HId, 64, 1}))
                                     || I <- lists:seq(2, Batch + 1)],
                                    [receive {Port, {data, _}} -> ok end || _ <- lists:seq(1, Batch)]
                                end || _ <- lists:seq(1, N div Batch)],
                               Self ! other_done
                       end),
    erlang:port_connect(Port, Other),
    unlink(Port),
    Ws = [spawn_link(fun() -> [{ok, _} = iommap:add(H, 64, 1) || _ <- lists:seq(1, N div 4)], Self ! done end)
          || _ <- lists:seq(1, 4)],
    [receive done -> ok after 60000 -> ct:fail(timeout) end || _ <- Ws],
    receive other_done -> ok after 60000 -> ct:fail(other_timeout) end,
    ?assertEqual({ok, 2 * N}, iommap:load(H, 64)),
    ct:pal("~p adds from a second engine process and ~p from 4 Erlang processes: counter ~p",
           [N, N, element(2, iommap:load(H, 64))]),
    catch port_close(Port), % closed already if its owner, Other, has exited
    ok = iommap:close(H).

%% A caller waits for its reply blocked on an alias of a monitor on the
%% engine server, so an engine that dies while requests are in flight wakes
%% every caller at once with {error, closed}.
engine_death_wakes_a_waiting_caller(Config) ->
    P = file_of(Config, "waiting", 4096),
    {ok, H} = iommap:open(P, read_write, []),
    ?assertEqual(ok, iommap:pwrite_many(H, [{0, <<"ab">>}, {100, <<"cd">>}])),
    ?assertEqual({ok, [<<"ab">>, <<"cd">>]}, iommap:pread_many(H, [{0, 2}, {100, 2}])),
    OsPid = iommap_test_lib:engine_os_pid(),
    os:cmd("kill -STOP " ++ integer_to_list(OsPid)),
    try
        Callers = [long_caller(H, Prio) || Prio <- [normal, high, low]],
        in_flight(3), % they have sent
        [?assertEqual({status, waiting}, erlang:process_info(Pid, status)) || {Pid, _} <- Callers],
        os:cmd("kill -9 " ++ integer_to_list(OsPid)),
        [?assertEqual({error, closed}, answer(C)) || C <- Callers]
    after
        os:cmd("kill -CONT " ++ integer_to_list(OsPid)) % if a check above failed
    end.

%% The restart back-off of an engine that keeps dying is a timer: while it
%% runs, the supervisor and the new server answer at once, data calls
%% answer {error, closed} at once, an open waits for the engine and gets
%% a handle, and the application stops at once.
restart_backoff_blocks_nobody(Config) ->
    P = file_of(Config, "backoff", 4096),
    {ok, H} = iommap:open(P, read_write, []),
    kill_into_backoff(),
    T0 = erlang:monotonic_time(millisecond),
    ?assertMatch({iommap_engine, Pid, worker, _} when is_pid(Pid),
                 lists:keyfind(iommap_engine, 1, gen_server:call(iommap_sup, which_children, 200))),
    _ = sys:get_state(iommap_engine, 200),
    ?assertEqual({error, closed}, iommap:pread(H, 0, 1)),
    ?assertEqual({error, closed}, iommap:engine_info()),
    Self = self(),
    spawn_link(fun() ->
                       Opened = case iommap:open(P, read_write, []) of
                                    {ok, H2} -> iommap:position(H2);
                                    Error -> Error
                                end,
                       Self ! {opened, Opened}
               end),
    ?assert(erlang:monotonic_time(millisecond) - T0 < 500), % the back-off is 1 s
    receive
        {opened, Opened} ->
            ?assertEqual({ok, 4096}, Opened),
            ?assert(erlang:monotonic_time(millisecond) - T0 >= 500)
    after 15000 ->
        ct:fail(open_during_backoff_hung)
    end,
    kill_into_backoff(),
    {Micros, ok} = timer:tc(application, stop, [iommap]),
    ?assert(Micros < 500000),
    {ok, _} = application:ensure_all_started(iommap).

%% Kills the engine as if it had died 7 times in a row before, so that the
%% next start waits a second; returns once the new server is there.
kill_into_backoff() ->
    Server = whereis(iommap_engine),
    true = ets:insert(iommap_restarts, {last_start, erlang:monotonic_time(millisecond), 7}),
    Ref = monitor(process, Server),
    os:cmd("kill -9 " ++ integer_to_list(iommap_test_lib:engine_os_pid())),
    receive {'DOWN', Ref, process, Server, _} -> ok end,
    iommap_test_lib:wait_until(fun() -> is_pid(whereis(iommap_engine)) end).

%% A process of priority Prio that waits for a long request's reply.
long_caller(H, Prio) ->
    spawn_monitor(fun() ->
                          process_flag(priority, Prio),
                          exit({answer, iommap:pread_many(H, [{0, 2}])})
                  end).

answer({Pid, Ref}) ->
    receive
        {'DOWN', Ref, process, Pid, {answer, A}} -> A;
        {'DOWN', Ref, process, Pid, Other} -> Other
    after 10000 ->
        ct:fail({no_answer, Pid})
    end.

%% Waits until N requests are in flight: their callers have sent them.
in_flight(N) ->
    iommap_test_lib:wait_until(fun() ->
                                       {ok, #{requests_in_flight := R}} = iommap:engine_info(),
                                       R =:= N
                               end).

