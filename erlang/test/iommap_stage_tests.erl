%% Bulk reads and writes through a stage (a memory file the caller and the
%% engine share, see iommap_client): the same answers as through the pipe,
%% whatever the size, and no stage outlives its process.
-module(iommap_stage_tests).
-include_lib("eunit/include/eunit.hrl").


min_size() ->
    {ok, _} = application:ensure_all_started(iommap),
    Min = iommap_env:get(stage_min),
    Min.

%% Every test runs in a directory of its own, removed however it ends, with
%% direct reads off: reads of shared mappings would not use a stage.
stage_test_() ->
    {foreach,
     fun() ->
             ok = application:set_env(iommap, direct_reads, false), % read at open
             iommap_test_lib:tmp_dir()
     end,
     fun(Dir) ->
             ok = application:unset_env(iommap, direct_reads),
             iommap_test_lib:remove_dir(Dir)
     end,
     [fun(Dir) -> {Name, {timeout, 60, fun() -> T(Dir) end}} end
      || {Name, T} <- [{"reads and writes of every size", fun reads_and_writes_of_every_size/1},
                       {"errors on the staged path", fun errors_on_the_staged_path/1},
                       {"sigbus on the staged path", fun sigbus_on_the_staged_path/1},
                       {"one stage per process", fun one_stage_per_process_and_gone_with_it/1},
                       {"big transfers leave the stage empty", fun big_transfers_leave_the_stage_empty/1},
                       {"a failed read leaves the stage empty", fun a_failed_read_leaves_the_stage_empty/1},
                       {"a broken stage falls back to the pipe", fun a_broken_stage_falls_back_to_the_pipe/1},
                       {"many processes at once", fun many_processes_at_once/1},
                       {"an erased dictionary leaks no descriptor",
                        fun erased_dictionary_leaks_no_descriptor/1}]]}.

file_with(Dir, Name, Bytes) ->
    P = filename:join(Dir, Name),
    ok = file:write_file(P, Bytes),
    P.

in_process(F) ->
    {Pid, Ref} = spawn_monitor(fun() -> exit({done, F()}) end),
    receive {'DOWN', Ref, process, Pid, {done, V}} -> V;
            {'DOWN', Ref, process, Pid, Why} -> erlang:error(Why)
    end.

stages() ->
    {ok, #{stages := N}} = iommap:engine_info(),
    N.

%% The calling process's stage: {EnginePort, {stage, Id, Fd} | {none, RetryAt}}.
stage() ->
    iommap_client:stage_get(self()).

%% Sizes on both sides of stage_min, and past the size a stage keeps.
sizes() ->
    Min = min_size(),
    [Min - 1, Min, Min + 1, 1 bsl 20, 3 bsl 20 + 17, 9 bsl 20].

reads_and_writes_of_every_size(Dir) ->
    Bytes = crypto:strong_rand_bytes(12 bsl 20),
    P = file_with(Dir, "sizes", Bytes),
    {ok, H} = iommap:open(P, read_write, []),
    %% the file is checked against a model after each write; the
    %% binaries are compared with =:= so a failure does not print MiBs
    lists:foldl(
      fun(Len, Model) ->
              Off = rand:uniform(byte_size(Model) - Len) - 1,
              Want = binary:part(Model, Off, Len),
              ?assert({ok, Want} =:= iommap:pread(H, Off, Len)),
              ?assert({ok, Want} =:= iommap:region_binary(H, Off, Len)),
              New = crypto:strong_rand_bytes(Len),
              %% iodata, not just a binary, goes through the stage as it is
              <<A:100/binary, B/binary>> = New,
              ?assertEqual(ok, iommap:pwrite(H, Off, [A, [B]])),
              ?assert({ok, New} =:= iommap:pread(H, Off, Len)),
              Model2 = <<(binary:part(Model, 0, Off))/binary, New/binary,
                         (binary:part(Model, Off + Len, byte_size(Model) - Off - Len))/binary>>,
              {ok, OnDisk} = file:read_file(P),
              ?assert(OnDisk =:= Model2),
              Model2
      end, Bytes, sizes()),
    %% and it was the stage that carried them, not the pipe it falls back to
    ?assertMatch({_, {stage, _, _}}, stage()),
    ok = iommap:close(H),
    ok = file:delete(P).

%% The checks come in the documented order on the staged path too.
errors_on_the_staged_path(Dir) ->
    Big = min_size() * 2,
    P = file_with(Dir, "errors", binary:copy(<<"e">>, 4 * Big)),
    {ok, R} = iommap:open(P, read, []),
    {ok, W} = iommap:open(P, write, []),
    ?assertEqual({error, eacces}, iommap:pread(W, 0, Big)),
    ?assertEqual({error, eacces}, iommap:pwrite(R, 0, binary:copy(<<"x">>, Big))),
    ?assertEqual({error, out_of_bounds}, iommap:pread(R, 3 * Big + 1, Big)),
    ?assertEqual({error, out_of_bounds}, iommap:pwrite(W, 3 * Big + 1, binary:copy(<<"x">>, Big))),
    ok = iommap:close(R),
    ?assertEqual({error, closed}, iommap:pread(R, 0, Big)),
    ok = iommap:close(W),
    ?assertEqual({error, closed}, iommap:pwrite(W, 0, binary:copy(<<"x">>, Big))),
    {ok, Kept} = file:read_file(P),
    ?assertEqual(binary:copy(<<"e">>, 4 * Big), Kept),
    ok = file:delete(P).

sigbus_on_the_staged_path(Dir) ->
    Big = min_size() * 2,
    P = file_with(Dir, "sigbus", binary:copy(<<"s">>, 4 * Big)),
    {ok, H} = iommap:open(P, read_write, []),
    ok = file:write_file(P, binary:copy(<<"s">>, Big)),
    ?assertEqual({error, sigbus}, iommap:pread(H, Big, Big)),
    ?assertEqual({error, sigbus}, iommap:pwrite(H, 2 * Big, binary:copy(<<"x">>, Big))),
    ?assertEqual({ok, binary:copy(<<"s">>, Big)}, iommap:pread(H, 0, Big)),
    ok = iommap:close(H),
    ok = file:delete(P).

%% One stage per process, made on its first bulk call and closed when the
%% process dies; small calls never make one.
one_stage_per_process_and_gone_with_it(Dir) ->
    Big = min_size(),
    P = file_with(Dir, "owner", binary:copy(<<"o">>, 2 * Big)),
    {ok, H} = iommap:open(P, read_write, []),
    Before = stages(),
    Self = self(),
    Pid = spawn(fun() ->
                        {ok, _} = iommap:pread(H, 0, Big - 1),
                        Self ! {small, stages()},
                        {ok, _} = iommap:pread(H, 0, Big),
                        ok = iommap:pwrite(H, 0, binary:copy(<<"x">>, Big)),
                        {ok, _} = iommap:pread(H, 1, Big),
                        Self ! {big, stages()},
                        receive stop -> ok end
                end),
    ?assertEqual(Before, receive {small, N1} -> N1 end),
    ?assertEqual(Before + 1, receive {big, N2} -> N2 end),
    Pid ! stop,
    iommap_test_lib:wait_until(fun() -> stages() =:= Before end),
    ok = iommap:close(H),
    ok = file:delete(P).

%% A stage gives back what it held past 8 MiB as soon as the call is done.
big_transfers_leave_the_stage_empty(Dir) ->
    %% reads of shared mappings go direct, not through a stage
    iommap_test_lib:with_env(direct_reads, false, fun() ->
        P = file_with(Dir, "trim", binary:copy(<<"t">>, 10 bsl 20)),
        {ok, H} = iommap:open(P, read_write, []),
        in_process(fun() ->
            {ok, _} = iommap:pread(H, 0, 1 bsl 20),
            {_, {stage, _, Fd}} = stage(),
            ?assertMatch({ok, <<_>>}, file:pread(Fd, 0, 1)),
            {ok, _} = iommap:pread(H, 0, 9 bsl 20),
            ?assertEqual(eof, file:pread(Fd, 0, 1)),
            ok = iommap:pwrite(H, 0, binary:copy(<<"u">>, 9 bsl 20)),
            ?assertEqual(eof, file:pread(Fd, 0, 1)),
            ?assertEqual({ok, <<"ut">>}, iommap:pread(H, (9 bsl 20) - 1, 2))
        end),
        ok = iommap:close(H),
        ok = file:delete(P)
    end).

%% A read that fails leaves the stage no bigger than 8 MiB either: here
%% the stage is grown as an engine does for a read, and the read fails.
a_failed_read_leaves_the_stage_empty(Dir) ->
    %% reads of shared mappings go direct, not through a stage
    iommap_test_lib:with_env(direct_reads, false, fun() ->
        P = file_with(Dir, "trimfail", binary:copy(<<"f">>, 2 * min_size())),
        {ok, H} = iommap:open(P, read, []),
        in_process(fun() ->
            {ok, _} = iommap:pread(H, 0, min_size()),
            {_, {stage, _, Fd}} = stage(),
            ok = file:pwrite(Fd, 0, binary:copy(<<"g">>, 9 bsl 20)),
            ?assertEqual({error, out_of_bounds}, iommap:pread(H, 1, 9 bsl 20)),
            ?assertEqual(eof, file:pread(Fd, 0, 1))
        end),
        ok = iommap:close(H),
        ok = file:delete(P)
    end).

%% If this side of the stage fails, the call goes through the pipe with the
%% same answer, and the process stops using the stage.
a_broken_stage_falls_back_to_the_pipe(Dir) ->
    %% reads of shared mappings go direct, not through a stage
    iommap_test_lib:with_env(direct_reads, false, fun() ->
        Big = min_size(),
        Bytes = crypto:strong_rand_bytes(2 * Big),
        P = file_with(Dir, "fallback", Bytes),
        {ok, H} = iommap:open(P, read_write, []),
        Before = stages(),
        in_process(fun() ->
            {ok, _} = iommap:pread(H, 0, Big),
            {Port, {stage, SId, Fd}} = stage(),
            ok = file:close(Fd), % break it
            ?assertEqual({ok, binary:part(Bytes, 1, Big)}, iommap:pread(H, 1, Big)),
            ?assertMatch({Port, {none, _}}, stage()),
            iommap_test_lib:wait_until(fun() -> stages() =:= Before end),
            New = crypto:strong_rand_bytes(Big),
            ?assertEqual(ok, iommap:pwrite(H, 3, New)),
            ?assertEqual({ok, New}, iommap:pread(H, 3, Big)),
            %% no new stage before the retry time, one after it
            {ok, _} = iommap:pread(H, 0, Big),
            ?assertMatch({Port, {none, _}}, stage()),
            iommap_client:stage_put(Port, {none, erlang:monotonic_time(millisecond) - 1}),
            {ok, _} = iommap:pread(H, 0, Big),
            ?assertMatch({Port, {stage, _, _}}, stage()),
            ?assertEqual(Before + 1, stages()),
            {Port, {stage, _, Fd2}} = stage(),
            ok = file:close(Fd2),
            ?assertEqual(ok, iommap:pwrite(H, 5, <<0:(Big * 8)>>)),
            ?assertMatch({Port, {none, _}}, stage()),
            %% the same for a write whose stage breaks
            iommap_client:stage_put(Port, {stage, SId, Fd}),
            New2 = crypto:strong_rand_bytes(Big),
            ?assertEqual(ok, iommap:pwrite(H, 5, New2)),
            ?assertMatch({Port, {none, _}}, stage()),
            ?assertEqual({ok, New2}, iommap:pread(H, 5, Big))
        end),
        ok = iommap:close(H),
        ok = file:delete(P)
    end).

%% Many processes with their own stages at once, each checking its bytes.
many_processes_at_once(Dir) ->
    Len = min_size() * 2,
    N = 8,
    P = file_with(Dir, "many", binary:copy(<<0>>, N * Len)),
    {ok, H} = iommap:open(P, read_write, []),
    Self = self(),
    Pids = [spawn_link(fun() ->
                               [begin
                                    D = crypto:strong_rand_bytes(Len),
                                    ok = iommap:pwrite(H, I * Len, D),
                                    {ok, D} = iommap:pread(H, I * Len, Len)
                                end || _ <- lists:seq(1, 25)],
                               Self ! {done, self()}
                       end) || I <- lists:seq(0, N - 1)],
    [receive {done, Pid} -> ok after 50000 -> erlang:error({stuck, Pid}) end || Pid <- Pids],
    ok = iommap:close(H),
    ok = file:delete(P).

%% A process that erases its process dictionary between bulk reads must not
%% open a descriptor in the VM each time: the VM closes a raw file only
%% when its owner closes it or exits, never by garbage collection, so lost
%% stages used to pile up until every file:open of the node gave emfile.
%% The VM's own descriptors are counted, not the engine's stages.
erased_dictionary_leaks_no_descriptor(Dir) ->
    Len = 1 bsl 20,
    ?assert(Len >= min_size()),
    P = file_with(Dir, "erase", binary:copy(<<"e">>, Len)),
    {ok, H} = iommap:open(P, read, []),
    VmFds = fun() -> iommap_test_lib:fds(list_to_integer(os:getpid())) end,
    Grew = in_process(fun() ->
        {ok, _} = iommap:pread(H, 0, Len), % the stage, opened once
        Before = VmFds(),
        [begin
             {ok, Bin} = iommap:pread(H, 0, Len),
             Len = byte_size(Bin),
             erase()
         end || _ <- lists:seq(1, 50)],
        VmFds() - Before
    end),
    ?assertMatch(G when G =< 2, Grew),
    ok = iommap:close(H),
    ok = file:delete(P).
