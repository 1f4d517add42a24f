%% Attacks: what a careless or hostile caller can do to the one engine that
%% serves the whole node. Each case is a defect found by attacking it: one
%% caller's request must never kill, hang or stall the engine for the
%% others, lose data, or surprise the user.
-module(iommap_attack_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-include_lib("iommap/src/iommap_int.hrl").

-export([all/0, init_per_testcase/2, end_per_testcase/2]).
-export([oversized_vector_write_leaves_the_engine_alone/1,
         too_large_writes_answer_in_api_order/1,
         huge_vectors_are_refused_with_e2big/1,
         fifo_is_refused_and_the_engine_still_exits/1,
         relative_paths_follow_the_current_directory/1,
         atomics_do_not_stall_other_handles/1,
         truncate_with_unreachable_size_keeps_the_file/1,
         truncate_past_free_space_keeps_the_file/1,
         populate_after_external_truncation_is_sigbus/1,
         big_replies_do_not_linger_in_the_router/1,
         erased_stage_is_replaced_not_leaked/1,
         resident_of_a_huge_sparse_range_stays_small/1,
         flapping_engine_does_not_take_the_node_down/1,
         requests_of_killed_callers_are_swept/1,
         mode_atoms_in_open2_options_and_read_growth/1,
         engine_gets_no_environment_and_runs_in_root/1]).

all() ->
    [oversized_vector_write_leaves_the_engine_alone, too_large_writes_answer_in_api_order,
     huge_vectors_are_refused_with_e2big, fifo_is_refused_and_the_engine_still_exits,
     relative_paths_follow_the_current_directory, atomics_do_not_stall_other_handles,
     truncate_with_unreachable_size_keeps_the_file, truncate_past_free_space_keeps_the_file,
     populate_after_external_truncation_is_sigbus, big_replies_do_not_linger_in_the_router,
     erased_stage_is_replaced_not_leaked, resident_of_a_huge_sparse_range_stays_small,
     requests_of_killed_callers_are_swept, mode_atoms_in_open2_options_and_read_growth,
     engine_gets_no_environment_and_runs_in_root,
     %% last: it restarts the engine for ten seconds
     flapping_engine_does_not_take_the_node_down].

%% Each case makes its files in a directory of its own, case_dir, removed
%% when the case ends, passed or failed (the sparse files here are up to
%% 64 GiB long).
init_per_testcase(Case, Config) ->
    {ok, _} = application:ensure_all_started(iommap),
    iommap_test_lib:init_case_dir(Case, Config).

end_per_testcase(_, Config) ->
    iommap_test_lib:end_case_dir(Config).

%% Helpers

os_pid() -> iommap_test_lib:engine_os_pid().

new_engine(Old) ->
    case iommap:engine_info() of
        {ok, #{os_pid := P}} -> P =/= Old;
        {error, closed} -> false
    end.

%% The engine is the same OS process and still serves another handle.
engine_untouched(OsPid, Config) ->
    ?assertEqual(OsPid, os_pid()),
    P = iommap_test_lib:file_in(?config(case_dir, Config), "witness", <<"witness">>),
    {ok, W} = iommap:open(P, read, []),
    ?assertEqual({ok, <<"witness">>}, iommap:pread(W, 0, 7)),
    ok = iommap:close(W).

%% 2047 MiB of iodata that costs 1 MiB of memory: one binary, many times.
big_iodata() ->
    lists:duplicate(2047, binary:copy(<<7>>, 1 bsl 20)).

%% Cases

%% The frame's size used to be estimated at 16 bytes a piece; offsets past
%% 2^48 take 17, so a request just under the estimate went out larger than
%% the engine can hold, and the engine exited for everybody.
oversized_vector_write_leaves_the_engine_alone(Config) ->
    {ok, H} = iommap:open(iommap_test_lib:file_in(?config(case_dir, Config), "small", <<0:(4096 * 8)>>), read_write, []),
    OsPid = os_pid(),
    Pieces = [{0, big_iodata()} | [{(1 bsl 48) + K, <<>>} || K <- lists:seq(1, 64000)]],
    ?assertEqual({error, out_of_bounds}, iommap:pwrite_many(H, Pieces)),
    engine_untouched(OsPid, Config),
    ?assertEqual(ok, iommap:pwrite(H, 0, <<"alive">>)),
    ok = iommap:close(H).

%% Too large a write (more than one frame carries) answers like any other
%% call: closed, then the mode, then the bounds, and only then enomem.
too_large_writes_answer_in_api_order(Config) ->
    Size = 4 bsl 30,
    P = iommap_test_lib:sparse_file_in(?config(case_dir, Config), "four_gib", Size),
    {ok, RW} = iommap:open(P, read_write, []),
    {ok, R} = iommap:open(P, read, []),
    OsPid = os_pid(),
    Big = big_iodata(),
    Bigger = [Big, binary:copy(<<1>>, 1 bsl 20)],
    ?assertEqual({error, enomem}, iommap:pwrite(RW, 0, Bigger)),
    ?assertEqual({error, eacces}, iommap:pwrite(R, 0, Bigger)),
    ?assertEqual({error, out_of_bounds}, iommap:pwrite(RW, Size - 10, Bigger)),
    ?assertEqual({error, enomem}, iommap:pwrite_many(RW, [{0, Big}, {Size - (2 bsl 20), binary:copy(<<1>>, 1 bsl 20)}])),
    ?assertEqual({error, eacces}, iommap:pwrite_many(R, [{0, Big}, {0, Bigger}])),
    ?assertEqual({error, out_of_bounds}, iommap:pwrite_many(RW, [{0, Big}, {Size, Bigger}])),
    ok = iommap:close(R),
    ?assertEqual({error, closed}, iommap:pwrite(R, 0, Bigger)),
    engine_untouched(OsPid, Config),
    ok = iommap:close(RW).

%% One request carries at most 65,536 ranges; past that, e2big, in API
%% order, with the engine untouched. 65,536 work.
huge_vectors_are_refused_with_e2big(Config) ->
    {ok, H} = iommap:open(iommap_test_lib:file_in(?config(case_dir, Config), "vec", <<"abcdefgh">>), read_write, []),
    {ok, R} = iommap:open(iommap_test_lib:file_in(?config(case_dir, Config), "vec_r", <<"abcdefgh">>), read, []),
    OsPid = os_pid(),
    Max = 65536,
    ?assertEqual({error, e2big}, iommap:pread_many(H, lists:duplicate(Max + 1, {0, 1}))),
    ?assertEqual({error, e2big}, iommap:pwrite_many(H, lists:duplicate(Max + 1, {0, <<"x">>}))),
    ?assertEqual({error, eacces}, iommap:pwrite_many(R, lists:duplicate(Max + 1, {0, <<"x">>}))),
    ?assertEqual({error, out_of_bounds}, iommap:pread_many(H, [{9, 0} | lists:duplicate(Max, {0, 1})])),
    {ok, Bs} = iommap:pread_many(H, lists:duplicate(Max, {1, 2})),
    ?assertEqual(Max, length(Bs)),
    ?assert(lists:all(fun(B) -> B =:= <<"bc">> end, Bs)),
    ?assertEqual(ok, iommap:pwrite_many(H, [{I rem 8, <<($a + I rem 8)>>} || I <- lists:seq(0, Max - 1)])),
    engine_untouched(OsPid, Config),
    ok = iommap:close(H),
    ok = iommap:close(R).

%% Opening a FIFO used to block the engine's goroutine until a writer came,
%% and kept the engine alive after the application stopped.
fifo_is_refused_and_the_engine_still_exits(Config) ->
    Fifo = filename:join(?config(case_dir, Config), "fifo"),
    "" = os:cmd("mkfifo " ++ Fifo),
    Self = self(),
    %% One at a time: an O_RDWR open of the FIFO would count as the writer
    %% that a blocked O_RDONLY open waits for.
    [begin
         spawn(fun() -> Self ! {Mode, iommap:open(Fifo, Mode, [])} end),
         receive {Mode, R} -> ?assertEqual({error, enodev}, R)
         after 5000 -> ct:fail({open_of_a_fifo_hangs, Mode})
         end
     end || Mode <- [read, read_write, write]],
    OsPid = os_pid(),
    ok = application:stop(iommap),
    iommap_test_lib:wait_until(fun() -> not filelib:is_dir("/proc/" ++ integer_to_list(OsPid)) end).

%% A relative name is resolved against the node's current directory when
%% open is called, not the engine's, and again after an engine restart.
relative_paths_follow_the_current_directory(Config) ->
    {ok, Old} = file:get_cwd(),
    Dir = ?config(case_dir, Config),
    ok = file:set_cwd(Dir),
    try
        {ok, H} = iommap:open("relative.bin", read_write, [create, {size, 16}]),
        ok = iommap:pwrite(H, 0, <<"here">>),
        ok = iommap:sync(H),
        {ok, <<"here", _/binary>>} = file:read_file(filename:join(Dir, "relative.bin")),
        {ok, #{path := Path}} = iommap:info(H),
        ?assertEqual(list_to_binary(filename:join(Dir, "relative.bin")), Path),
        OsPid = os_pid(),
        "" = os:cmd("kill -9 " ++ integer_to_list(OsPid)),
        iommap_test_lib:wait_until(fun() -> new_engine(OsPid) end),
        {ok, H2} = iommap:open(<<"relative.bin">>, read, []),
        ?assertEqual({ok, <<"here">>}, iommap:pread(H2, 0, 4)),
        ok = iommap:close(H2),
        ?assertEqual({error, enoent}, iommap:open("", read, []))
    after
        ok = file:set_cwd(Old)
    end.

%% An atomic on a handle whose lock a slow call holds (a truncate that
%% allocates 2 GiB) used to wait for it on the engine's main loop, and every
%% other handle waited too. Now it waits on its own: a read of another
%% handle, sent after it, comes back first.
%%
%% The file is on /dev/shm: allocating 2 GiB of tmpfs takes a moment that
%% can be watched (its blocks grow, its size changes only at the end), where
%% a disk file system allocates at once. Skipped when /dev/shm has not that
%% much room (Docker gives it 64 MiB by default).
atomics_do_not_stall_other_handles(Config) ->
    NeedKiB = (2 bsl 30) div 1024 + 65536, % and 64 MiB to spare
    case iommap_test_lib:free_kib("/dev/shm") of
        Free when Free < NeedKiB ->
            {skip, lists:flatten(io_lib:format("needs ~p MiB free in /dev/shm to allocate 2 GiB of tmpfs, "
                                               "has ~p MiB", [NeedKiB div 1024, Free div 1024]))};
        _ ->
            atomic_waits_on_its_own(Config)
    end.

atomic_waits_on_its_own(Config) ->
    Shm = "/dev/shm/iommap_attack_" ++ os:getpid(),
    ok = file:write_file(Shm, <<0:(4096 * 8)>>),
    try
        {ok, A} = iommap:open(Shm, read_write, []),
        {ok, B} = iommap:open(iommap_test_lib:file_in(?config(case_dir, Config), "b", <<"other">>), read, []),
        {4096, Blocks0} = size_and_blocks(Shm),
        Self = self(),
        spawn_link(fun() -> Self ! {truncated, iommap:truncate(A, 2 bsl 30)} end),
        %% the engine allocates, holding A's lock
        iommap_test_lib:wait_until(fun() -> allocating(Shm, Blocks0) end),
        Adder = spawn_link(fun() -> Self ! {added, iommap:add(A, 0, 1)} end),
        %% the add is on its way to the engine: its caller waits for the reply
        iommap_test_lib:wait_until(
          fun() -> lists:member(erlang:process_info(Adder, status), [{status, waiting}, undefined]) end),
        _ = sys:get_state(iommap_engine), % and the server has passed on whatever it was given
        spawn_link(fun() -> Self ! {read, iommap:pread(B, 0, 5)} end),
        First = receive M1 -> M1 after 30000 -> ct:fail(no_reply) end,
        case First of
            {read, {ok, <<"other">>}} -> ok;
            _ -> ct:fail({first_reply, First, {shm_size_and_blocks_then, size_and_blocks(Shm)}})
        end,
        Rest = [receive M -> M after 30000 -> ct:fail(no_reply) end || _ <- [1, 2]],
        ?assertEqual([{added, {ok, 0}}, {truncated, ok}], lists:sort(Rest)),
        ?assertEqual({ok, 1}, iommap:load(A, 0)),
        ?assertEqual({2 bsl 30, (2 bsl 30) div 512}, size_and_blocks(Shm)),
        ok = iommap:close(A),
        ok = iommap:close(B)
    after
        file:delete(Shm)
    end.

%% A truncate is growing the file: it has more blocks than it had, and not
%% yet its new size. Fails if the truncate is done: too late to watch.
allocating(P, Blocks0) ->
    case size_and_blocks(P) of
        {4096, Blocks} -> Blocks > Blocks0;
        Done -> ct:fail({truncate_done_before_it_was_seen, Done})
    end.

%% The size of a file and its blocks of 512 bytes.
size_and_blocks(P) ->
    [S, B] = string:lexemes(os:cmd("stat -c '%s %b' " ++ P), " \n"),
    {list_to_integer(S), list_to_integer(B)}.

%% [truncate, {size, N}] used to cut the file to 0 and then fail to grow it.
truncate_with_unreachable_size_keeps_the_file(Config) ->
    P = iommap_test_lib:file_in(?config(case_dir, Config), "keep", <<"keep me">>),
    ?assertEqual({error, efbig}, iommap:open(P, read_write, [truncate, {size, 1 bsl 62}])),
    ?assertEqual({error, efbig}, iommap:open(P, read_write, [{size, 1 bsl 62}])),
    ?assertEqual({ok, <<"keep me">>}, file:read_file(P)).

truncate_past_free_space_keeps_the_file(Config) ->
    Dir = filename:join(?config(case_dir, Config), "tiny"),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    case os:cmd("mount -t tmpfs -o size=1m tmpfs " ++ Dir ++ " 2>&1 && echo MOUNTED") of
        "MOUNTED\n" ->
            try
                P = filename:join(Dir, "keep"),
                ok = file:write_file(P, <<"keep me">>),
                ?assertEqual({error, enospc}, iommap:open(P, read_write, [truncate, {size, 4 bsl 20}])),
                ?assertEqual({ok, <<"keep me">>}, file:read_file(P)),
                ?assertEqual({error, enospc}, iommap:open(P, read_write, [{size, 4 bsl 20}])),
                ?assertEqual({ok, <<"keep me">>}, file:read_file(P))
            after
                os:cmd("umount " ++ Dir)
            end;
        Out ->
            {skip, {cannot_mount_tmpfs, Out}}
    end.

%% The populate hints fault in pages as a read or write would: past the end
%% of a file that shrank under the mapping, that is sigbus, not efault.
populate_after_external_truncation_is_sigbus(Config) ->
    P = iommap_test_lib:file_in(?config(case_dir, Config), "shrinks", <<0:(16 * 4096 * 8)>>),
    {ok, H} = iommap:open(P, read_write, []),
    case iommap:advise(H, 0, 4096, populate_read) of
        {error, einval} ->
            {skip, no_madv_populate};
        ok ->
            {ok, F} = file:open(P, [read, write, raw]),
            {ok, _} = file:position(F, 4096),
            ok = file:truncate(F),
            ok = file:close(F),
            ?assertEqual({error, sigbus}, iommap:advise(H, 8192, 4096, populate_read)),
            ?assertEqual({error, sigbus}, iommap:advise(H, 8192, 4096, populate_write)),
            ?assertEqual({error, sigbus}, iommap:pread(H, 8192, 1)),
            ?assertEqual(ok, iommap:advise(H, 0, 4096, populate_read)),
            ok = iommap:close(H)
    end.

%% The process that routes replies must not keep a big one alive.
big_replies_do_not_linger_in_the_router(Config) ->
    P = iommap_test_lib:sparse_file_in(?config(case_dir, Config), "sixty_four", 64 bsl 20),
    {ok, H} = iommap:open(P, read, []),
    {ok, Bs} = iommap:pread_many(H, [{I bsl 20, 1 bsl 20} || I <- lists:seq(0, 63)]),
    ?assertEqual(64 bsl 20, iolist_size(Bs)),
    {binary, Held} = erlang:process_info(whereis(iommap_engine), binary),
    ?assertEqual([], [Size || {_, Size, _} <- Held, Size >= 1 bsl 20]),
    ok = iommap:close(H).

%% A process that erases its process dictionary between bulk calls loses
%% its stage's descriptor; the engine used to keep the stage, one more each
%% time, until every process fell back to the pipe.
erased_stage_is_replaced_not_leaked(Config) ->
    %% reads of shared mappings go direct, not through a stage
    iommap_test_lib:with_env(direct_reads, false, fun() ->
        P = iommap_test_lib:sparse_file_in(?config(case_dir, Config), "staged", 1 bsl 20),
        {ok, H} = iommap:open(P, read_write, []),
        Self = self(),
        Pid = spawn_link(fun() ->
                                 [begin
                                      {ok, _} = iommap:pread(H, 0, 256 bsl 10),
                                      erase()
                                  end || _ <- lists:seq(1, 20)],
                                 Self ! done,
                                 receive stop -> ok end
                         end),
        receive done -> ok after 30000 -> ct:fail(bulk_reads_hang) end,
        {ok, #{stages := Stages}} = iommap:engine_info(),
        ?assertEqual(1, Stages),
        unlink(Pid),
        exit(Pid, kill),
        iommap_test_lib:wait_until(fun() -> {ok, #{stages := S}} = iommap:engine_info(), S =:= 0 end),
        ok = iommap:close(H)
    end).

%% resident/3 over 64 GiB of a sparse mapping: its memory is bounded
%% (a vector of 64 KiB per chunk, not a byte per page: 16 MiB here).
resident_of_a_huge_sparse_range_stays_small(Config) ->
    Size = 64 bsl 30,
    P = iommap_test_lib:sparse_file_in(?config(case_dir, Config), "huge_sparse", Size),
    {ok, H} = iommap:open(P, read, []),
    OsPid = os_pid(),
    Before = iommap_test_lib:rss_kib(OsPid),
    {ok, Resident} = iommap:resident(H, 0, Size),
    ?assertEqual(0, Resident), % nothing of a hole is in memory
    Grew = iommap_test_lib:rss_kib(OsPid) - Before,
    ct:pal("engine RSS grew by ~p KiB for resident of 64 GiB", [Grew]),
    ?assert(Grew < 8192),
    ok = iommap:close(H).

%% 50 engine deaths within 10 s used to exhaust the supervisor's restart
%% intensity: the application stopped, and as a permanent application it
%% would have taken the node down. Now restarts back off.
flapping_engine_does_not_take_the_node_down(Config) ->
    P = iommap_test_lib:file_in(?config(case_dir, Config), "flap", <<"flap">>),
    Sup = whereis(iommap_sup),
    ?assert(is_pid(Sup)),
    {ok, H} = iommap:open(P, read, []),
    Deadline = erlang:monotonic_time(millisecond) + 11000,
    Kills = flap(Deadline, 0),
    ct:pal("~p engine kills in 11 s", [Kills]),
    ?assert(Kills >= 5),
    %% data calls on a handle of a dead engine answer at once
    ?assertEqual({error, closed}, iommap:pread(H, 0, 4)),
    ?assertEqual(Sup, whereis(iommap_sup)),
    ?assertMatch({_, _, _}, lists:keyfind(iommap, 1, application:which_applications())),
    {ok, H2} = iommap:open(P, read, []),
    ?assertEqual({ok, <<"flap">>}, iommap:pread(H2, 0, 4)),
    ok = iommap:close(H2).

%% Kills each new engine as soon as it answers, until Deadline; how many.
flap(Deadline, N) ->
    case erlang:monotonic_time(millisecond) < Deadline of
        false ->
            N;
        true ->
            {ok, #{os_pid := OsPid}} = iommap:engine_info(),
            _ = os:cmd("kill -9 " ++ integer_to_list(OsPid)),
            %% the supervisor starts the next one after a back-off of at
            %% most a second
            iommap_test_lib:wait_until(fun() -> new_engine(OsPid) end),
            flap(Deadline, N + 1)
    end.

%% A caller killed after registering its request and before sending it (or
%% before its reply) used to leave its entry in the pending table for good.
requests_of_killed_callers_are_swept(_Config) ->
    %% The window itself, made on purpose: register, then die.
    #engine{pending = Pending, ids = Ids} = iommap_client:engine(),
    {Pid, Ref} = spawn_monitor(fun() ->
                                       Alias = erlang:monitor(process, whereis(iommap_engine), [{alias, demonitor}]),
                                       _ = iommap_codec:new_id(Pending, Ids, {Alias, self()})
                               end),
    receive {'DOWN', Ref, process, Pid, _} -> ok end,
    {ok, #{requests_in_flight := N}} = iommap:engine_info(),
    ?assertEqual(0, N).

%% The NIF's open/2 is open(Path, read_write, Options): mode atoms in the
%% options are ignored, as all unknown options are. A read-only mapping
%% cannot grow its file: einval, and the file is left as it was.
mode_atoms_in_open2_options_and_read_growth(Config) ->
    P = iommap_test_lib:file_in(?config(case_dir, Config), "modes", <<"0123456789">>),
    {ok, H} = iommap:open(P, [read]),
    ?assertMatch({ok, #{mode := read_write}}, iommap:info(H)),
    ok = iommap:close(H),
    ?assertEqual({error, einval}, iommap:open(P, read, [{size, 4096}])),
    ?assertEqual({ok, <<"0123456789">>}, file:read_file(P)),
    {ok, R} = iommap:open(P, read, [{size, 10}]),
    ?assertEqual({ok, 10}, iommap:position(R)),
    ok = iommap:close(R),
    {ok, R2} = iommap:open(P, read, [{size, 4}]),
    ?assertEqual({ok, 10}, iommap:position(R2)),
    ok = iommap:close(R2).

%% The engine inherits nothing of the VM's environment but what it needs,
%% and no working directory it could hold busy.
engine_gets_no_environment_and_runs_in_root(_Config) ->
    true = os:putenv("IOMMAP_ATTACK_SECRET", "leaked"),
    true = os:putenv("GODEBUG", "madvdontneed=0"),
    try
        ok = application:stop(iommap),
        {ok, _} = application:ensure_all_started(iommap),
        OsPid = integer_to_list(os_pid()),
        {ok, Environ} = file:read_file("/proc/" ++ OsPid ++ "/environ"),
        Vars = [V || V <- binary:split(Environ, <<0>>, [global]), V =/= <<>>],
        ?assertEqual([<<"GOMAXPROCS=1">>], Vars),
        ?assertEqual({ok, "/"}, file:read_link("/proc/" ++ OsPid ++ "/cwd"))
    after
        os:unsetenv("IOMMAP_ATTACK_SECRET"),
        os:unsetenv("GODEBUG")
    end.
