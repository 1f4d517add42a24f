%% Direct reads (iommap_direct, docs/API.md "Direct reads"): pread and
%% region_binary of shared mappings on Linux served in the calling process
%% through /proc/<engine>/mem. The same answers as the engine's, never a
%% byte of a stale mapping, bounded descriptors, and nothing of a file held.
-module(iommap_direct_tests).
-include_lib("eunit/include/eunit.hrl").
-include("../src/iommap_int.hrl").

-define(PAGE, 4096).

direct_test_() ->
    case os:type() of
        {unix, linux} ->
            {setup,
             fun() -> {ok, Apps} = application:ensure_all_started(iommap), Apps end,
             fun(_) -> ok end,
             {timeout, 300,
              iommap_test_lib:in_tmp_dirs(
                [fun same_answers_direct_and_through_the_engine/1,
                 fun a_write_is_seen_at_once_by_another_process/1,
                 fun a_renamed_or_unlinked_file_still_reads/1,
                 fun reads_go_direct_and_not_when_turned_off/1,
                 fun closed_handles_refuse_direct_reads/1,
                 fun a_read_after_truncate_sees_the_new_size/1,
                 fun readers_racing_truncates_never_see_a_wrong_byte/1,
                 fun descriptors_stay_bounded_with_10000_readers/1,
                 fun one_descriptor_for_many_handles_and_erase_loses_nothing/1,
                 fun a_closed_and_deleted_file_is_held_by_nobody/1,
                 fun an_old_descriptor_never_serves_a_new_engine/1,
                 fun private_and_write_mode_handles/1,
                 fun same_answers_through_the_files_descriptor/1,
                 fun file_descriptors_go_with_their_reader_and_engine/1,
                 fun file_descriptors_stay_bounded_and_erase_loses_none/1,
                 fun a_handle_closed_under_a_file_reader/1,
                 fun pread_many_of_large_ranges_reads_directly/1,
                 fun only_regular_files_are_lent/1])}};
        _ ->
            []
    end.

env_test() ->
    _ = application:load(iommap),
    try
        [begin
             ok = application:set_env(iommap, K, V),
             ?assertMatch({error, {invalid_env, K, V, _}}, iommap_env:validate()),
             application:unset_env(iommap, K)
         end || {K, V} <- [{direct_reads, yes}, {direct_readers_max, -1}, {direct_readers_max, x},
                           {direct_files_max, -1}, {direct_files_max, 1.0}]]
    after
        application:unset_env(iommap, direct_reads),
        application:unset_env(iommap, direct_readers_max),
        application:unset_env(iommap, direct_files_max)
    end.

%% Helpers

on(F) -> iommap_test_lib:with_env(direct_reads, true, F).
off(F) -> iommap_test_lib:with_env(direct_reads, false, F).


%% Whether the calling process has read directly (it has a descriptor of
%% the running engine).
has_direct_fd() ->
    case iommap_direct:reader(self()) of
        {_, {fd, _}} -> true;
        _ -> false
    end.

%% The descriptors of H's file held for Pid's direct reads
%% (iommap_direct_files).
files(H, Pid) ->
    [Row || {_, P, _, _, _} = Row <- ets:lookup(iommap_direct_files, H), P =:= Pid].

shrink(P, Size) ->
    %% another OS process cuts the file under the mapping
    "" = os:cmd("truncate -s " ++ integer_to_list(Size) ++ " '" ++ P ++ "'"),
    ok.

%% Tests

%% A table of (shrunk to X, offset, length) read with direct reads on and
%% off: the answers agree byte for byte, the partial last page reads zeros,
%% a range past it is sigbus, bounds are the mapping's.
same_answers_direct_and_through_the_engine(Dir) ->
    Size = 4 * ?PAGE,
    Shrinks = [none, 3 * ?PAGE, 2 * ?PAGE + 100, ?PAGE + 1, 1],
    Ranges = [{0, 0}, {0, 1}, {0, 64}, {100, 4000}, {?PAGE - 8, 16}, {?PAGE, ?PAGE},
              {2 * ?PAGE + 90, 20}, {2 * ?PAGE + 100, 10}, {2 * ?PAGE + 100, ?PAGE - 100},
              {3 * ?PAGE - 1, 1}, {3 * ?PAGE - 1, 2}, {3 * ?PAGE, ?PAGE}, {Size - 1, 1},
              {Size, 0}, {Size, 1}, {Size + 1, 0}, {0, Size}, {0, Size + 1}, {1 bsl 64, 0},
              {?PAGE + 1, 0}, {?PAGE, 2}],
    Run = fun(Tag) ->
                  Answers = [answers(Dir, Tag, Size, Shrink, Ranges) || Shrink <- Shrinks],
                  {Answers, has_direct_fd()}
          end,
    {Direct, true} = on(fun() -> Run(on) end),
    {Engine, false} = off(fun() -> Run(off) end),
    [?assertEqual({Shrink, E}, {Shrink, D}) || {Shrink, D, E} <- lists:zip3(Shrinks, Direct, Engine)],
    %% and the table covers what it should
    All = [R || {_, _, _, R} <- lists:append(Direct)],
    ?assert(lists:member({error, sigbus}, All)),
    ?assert(lists:member({error, out_of_bounds}, All)),
    ?assert(lists:member({ok, <<0:(10 * 8)>>}, All)). % the partial last page

answers(Dir, Tag, Size, Shrink, Ranges) ->
    P = iommap_test_lib:pattern_file(Dir, atom_to_list(Tag) ++ integer_to_list(erlang:unique_integer([positive])), 1, Size),
    {ok, H} = iommap:open(P, read, []),
    try
        case Shrink of
            none -> ok;
            X -> shrink(P, X)
        end,
        [{Read, Off, Len, iommap:Read(H, Off, Len)} || {Off, Len} <- Ranges, Read <- [pread, region_binary]]
    after
        ok = iommap:close(H)
    end.

%% A write the engine has acknowledged is in the page that a direct read of
%% another process reads, at once.
a_write_is_seen_at_once_by_another_process(Dir) ->
    on(fun() ->
               P = iommap_test_lib:sparse_file_in(Dir, "w", ?PAGE),
               {ok, H} = iommap:open(P, read_write, []),
               Self = self(),
               Reader = spawn_link(fun() -> reader_loop(H, Self) end),
               [begin
                    ok = iommap:pwrite(H, 8, <<I:64>>),
                    Reader ! {read, I},
                    receive {Reader, Got} -> ?assertEqual({ok, <<I:64>>}, Got) end
                end || I <- lists:seq(1, 2000)],
               Reader ! {direct, self()},
               receive {Reader, Direct} -> ?assert(Direct) end,
               ok = iommap:close(H)
       end).

reader_loop(H, Parent) ->
    receive
        {read, _} -> Parent ! {self(), iommap:pread(H, 8, 8)}, reader_loop(H, Parent);
        {direct, Parent} -> Parent ! {self(), has_direct_fd()}
    end.

%% The mapping, not the path, is read.
a_renamed_or_unlinked_file_still_reads(Dir) ->
    on(fun() ->
               P = iommap_test_lib:pattern_file(Dir, "r", 7, 8 * ?PAGE),
               {ok, H} = iommap:open(P, read, []),
               P2 = P ++ ".renamed",
               ok = file:rename(P, P2),
               ?assertEqual({ok, iommap_test_lib:pattern(7, ?PAGE, 64)}, iommap:pread(H, ?PAGE, 64)),
               ok = file:delete(P2),
               ?assertEqual({ok, iommap_test_lib:pattern(7, 8, 8000)}, iommap:region_binary(H, 8, 8000)),
               ?assert(has_direct_fd()),
               %% and through a descriptor of the file, opened after the unlink
               ?assertEqual({ok, iommap_test_lib:pattern(7, 8, 5 * ?PAGE)}, iommap:pread(H, 8, 5 * ?PAGE)),
               ?assertMatch([_], files(H, self())),
               ok = iommap:close(H)
       end).

%% With the engine stopped (SIGSTOP), a direct read still answers; with
%% direct_reads false, it waits for the engine.
reads_go_direct_and_not_when_turned_off(Dir) ->
    P = iommap_test_lib:pattern_file(Dir, "s", 3, ?PAGE),
    Stopped = fun() ->
                      {ok, H} = iommap:open(P, read, []),
                      OsPid = integer_to_list(iommap_test_lib:engine_os_pid()),
                      os:cmd("kill -STOP " ++ OsPid),
                      try
                          {Pid, Mon} = spawn_monitor(fun() -> exit({answer, iommap:pread(H, 64, 16)}) end),
                          Answer = receive {'DOWN', Mon, _, _, {answer, A}} -> A after 1000 -> waiting end,
                          os:cmd("kill -CONT " ++ OsPid),
                          Late = case Answer of
                                     waiting -> receive {'DOWN', Mon, _, _, {answer, A2}} -> A2 end;
                                     _ -> Answer
                                 end,
                          ok = iommap:close(H),
                          {Answer, Late, is_process_alive(Pid)}
                      after
                          os:cmd("kill -CONT " ++ OsPid)
                      end
              end,
    ?assertEqual({{ok, iommap_test_lib:pattern(3, 64, 16)}, {ok, iommap_test_lib:pattern(3, 64, 16)}, false}, on(Stopped)),
    ?assertEqual({waiting, {ok, iommap_test_lib:pattern(3, 64, 16)}, false}, off(Stopped)).

%% A handle closed (by close/1 or its owner's death) refuses direct reads,
%% from any process, at once.
closed_handles_refuse_direct_reads(Dir) ->
    on(fun() ->
               P = iommap_test_lib:pattern_file(Dir, "c", 2, ?PAGE),
               {ok, H} = iommap:open(P, read, []),
               {ok, _} = iommap:pread(H, 0, 8),
               ?assert(has_direct_fd()),
               ok = iommap:close(H),
               ?assertEqual({error, closed}, iommap:pread(H, 0, 8)),
               ?assertEqual({error, closed}, iommap:region_binary(H, 0, 0)),
               Self = self(),
               Owner = spawn(fun() ->
                                     {ok, H2} = iommap:open(P, read, []),
                                     Self ! {h, H2},
                                     receive stop -> ok end
                             end),
               H2 = receive {h, X} -> X end,
               ?assertEqual({ok, iommap_test_lib:pattern(2, 0, 8)}, iommap:pread(H2, 0, 8)),
               Mon = monitor(process, Owner),
               Owner ! stop,
               receive {'DOWN', Mon, _, _, _} -> ok end,
               iommap_test_lib:wait_until(fun() -> iommap:pread(H2, 0, 8) =:= {error, closed} end)
       end).

%% truncate/2 updates the size direct reads see before it returns.
a_read_after_truncate_sees_the_new_size(Dir) ->
    on(fun() ->
               P = iommap_test_lib:pattern_file(Dir, "t", 4, 2 * ?PAGE),
               {ok, H} = iommap:open(P, read_write, []),
               ?assertEqual({error, out_of_bounds}, iommap:pread(H, 2 * ?PAGE, 1)),
               ok = iommap:truncate(H, 5 * ?PAGE),
               ?assertEqual({ok, <<0:8, 0:8>>}, iommap:pread(H, 5 * ?PAGE - 2, 2)),
               ?assertEqual({ok, iommap_test_lib:pattern(4, ?PAGE, 8)}, iommap:pread(H, ?PAGE, 8)),
               ?assertEqual({error, out_of_bounds}, iommap:pread(H, 5 * ?PAGE, 1)),
               ok = iommap:truncate(H, 100),
               ?assertEqual({error, out_of_bounds}, iommap:pread(H, 96, 8)),
               ?assertEqual({ok, iommap_test_lib:pattern(4, 88, 8)}, iommap:pread(H, 88, 8)),
               {error, einval} = iommap:truncate(H, 0),
               ?assertEqual({ok, iommap_test_lib:pattern(4, 88, 8)}, iommap:pread(H, 88, 8)),
               ?assert(has_direct_fd()),
               ok = iommap:close(H)
       end).

%% Two files, each truncated back and forth by two processes at once (so
%% old addresses are freed and reused, by the other file's mappings too),
%% and readers of both: every word read in the part that always exists is
%% that file's own word at that offset.
readers_racing_truncates_never_see_a_wrong_byte(Dir) ->
    on(fun() ->
               Keep = 16 * ?PAGE,
               Hs = [begin
                         P = iommap_test_lib:pattern_file(Dir, "race" ++ integer_to_list(Tag), Tag, Keep),
                         {ok, H} = iommap:open(P, read_write, []),
                         {Tag, H}
                     end || Tag <- [1, 2]],
               Stop = atomics:new(1, []),
               Truncaters = [spawn_monitor(fun() -> truncate_loop(H, Keep, Stop, 0) end)
                             || {_, H} <- Hs, _ <- [1, 2]],
               Readers = [spawn_monitor(fun() -> read_loop(Tag, H, Keep, Stop, 0) end)
                          || {Tag, H} <- Hs, _ <- [1, 2, 3]],
               timer:sleep(3000),
               atomics:put(Stop, 1, 1),
               Counts = [receive {'DOWN', M, _, _, R} -> R end || {_, M} <- Truncaters ++ Readers],
               {Ts, Rs} = lists:split(length(Truncaters), Counts),
               [?assertMatch({truncated, N} when N > 10, T) || T <- Ts],
               [?assertMatch({read, N, D} when N > 100 andalso D > 0, R) || R <- Rs],
               [ok = iommap:close(H) || {_, H} <- Hs]
       end).

truncate_loop(H, Keep, Stop, N) ->
    case atomics:get(Stop, 1) of
        1 -> exit({truncated, N});
        0 ->
            ok = iommap:truncate(H, Keep + ?PAGE * rand:uniform(64)),
            timer:sleep(rand:uniform(3) - 1), % room for direct reads between
            truncate_loop(H, Keep, Stop, N + 1)
    end.

%% Reads until told to stop; exits with how many reads there were and how
%% whether it read direct, or with the first wrong answer.
read_loop(Tag, H, Keep, Stop, N) ->
    case atomics:get(Stop, 1) of
        1 -> exit({read, N, case has_direct_fd() of true -> 1; false -> 0 end});
        0 ->
            Off = 8 * (rand:uniform(Keep div 8 - 32) - 1),
            Len = 8 * rand:uniform(32),
            Want = {ok, iommap_test_lib:pattern(Tag, Off, Len)},
            case iommap:pread(H, Off, Len) of
                Want -> ok;
                Other -> exit({wrong, Tag, Off, Len, Other})
            end,
            read_loop(Tag, H, Keep, Stop, N + 1)
    end.

%% 10,000 processes read and stay alive: the VM holds at most
%% direct_readers_max descriptors for them (the others read through the
%% engine, with the same answers), and they all go when the processes exit.
descriptors_stay_bounded_with_10000_readers(Dir) ->
    Max = 100,
    on(fun() -> iommap_test_lib:with_env(direct_readers_max, Max, fun() ->
        P = iommap_test_lib:pattern_file(Dir, "many", 5, ?PAGE),
        {ok, H} = iommap:open(P, read, []),
        VM = list_to_integer(os:getpid()),
        Before = iommap_test_lib:fds(VM),
        Self = self(),
        Pids = [spawn(fun() ->
                              R = iommap:pread(H, 800, 8),
                              Self ! {self(), R, has_direct_fd()},
                              receive stop -> ok end
                      end) || _ <- lists:seq(1, 10000)],
        Results = [receive {Pid, R, D} -> {R, D} end || Pid <- Pids],
        ?assertEqual([{ok, iommap_test_lib:pattern(5, 800, 8)}], lists:usort([R || {R, _} <- Results])),
        Direct = length([x || {_, true} <- Results]),
        Opened = iommap_test_lib:fds(VM) - Before,
        %% never past the bound, even racing for its last places
        ?assertMatch({true, _, _}, {Direct > 0 andalso Direct =< Max andalso Opened =< Max, Direct, Opened}),
        [Pid ! stop || Pid <- Pids],
        iommap_test_lib:wait_until(fun() -> ets:info(iommap_readers, size) =:= 0 end),
        iommap_test_lib:wait_until(fun() -> iommap_test_lib:fds(VM) =< Before end),
        ok = iommap:close(H)
    end) end).

%% One descriptor for any number of handles; erase() loses nothing (the
%% row is in a table; the process dictionary holds only a bounded cache of
%% it), and the descriptor goes when the process exits.
one_descriptor_for_many_handles_and_erase_loses_nothing(Dir) ->
    on(fun() ->
               VM = list_to_integer(os:getpid()),
               Hs = [begin
                         {ok, H} = iommap:open(iommap_test_lib:pattern_file(Dir, "h" ++ integer_to_list(I), I, ?PAGE), read, []),
                         {I, H}
                     end || I <- lists:seq(1, 70)],
               Self = self(),
               {Pid, Mon} = spawn_monitor(fun() ->
                                                  F0 = iommap_test_lib:fds(VM),
                                                  [{ok, _} = iommap:pread(H, 0, 8) || {_, H} <- Hs],
                                                  {_, _, Cached} = get('$iommap_direct'),
                                                  F1 = iommap_test_lib:fds(VM),
                                                  Row = iommap_direct:reader(self()),
                                                  [begin erase(), {ok, _} = iommap:pread(H, 8, 8) end || {_, H} <- Hs],
                                                  Self ! {self(), F1 - F0, Row =:= iommap_direct:reader(self()),
                                                          iommap_test_lib:fds(VM) - F1, get(), Row, Cached},
                                                  receive stop -> ok end
                                          end),
               receive {Pid, Opened, Same, More, Dict, {_, {fd, Fd}}, Cached} ->
                       ?assertEqual({1, true, 0}, {Opened, Same, More}),
                       %% the dictionary holds only a cache: the same
                       %% descriptor, and the regions of at most 64 handles
                       %% (70 were read: it started again after 64)
                       ?assertEqual(70 rem 64, map_size(Cached)),
                       ?assertMatch([{'$iommap_direct', {_, Fd, #{}}}], Dict)
               end,
               Fds = iommap_test_lib:fds(VM),
               Pid ! stop,
               receive {'DOWN', Mon, _, _, _} -> ok end,
               iommap_test_lib:wait_until(fun() -> iommap_direct:reader(Pid) =:= undefined end),
               ?assertEqual(Fds - 1, iommap_test_lib:fds(VM)),
               [ok = iommap:close(H) || {_, H} <- Hs]
       end).

%% Closing a handle unmaps it and closes the descriptors of its file held
%% for direct reads: once close/1 has returned and the file is deleted,
%% nothing holds the file, though the process that read it lives on idle.
a_closed_and_deleted_file_is_held_by_nobody(Dir) ->
    on(fun() ->
               P = filename:join(Dir, "big"),
               ok = file:write_file(P, binary:copy(<<1>>, 32 bsl 20)),
               {ok, H} = iommap:open(P, read, [populate]),
               Self = self(),
               Idle = spawn(fun() ->
                                    R = iommap:pread(H, 1 bsl 20, 1 bsl 20),
                                    Self ! {self(), R, has_direct_fd()},
                                    receive stop -> ok end
                            end),
               receive {Idle, R, D} -> ?assertEqual({{ok, binary:copy(<<1>>, 1 bsl 20)}, true}, {R, D}) end,
               Engine = iommap_test_lib:engine_os_pid(),
               VM = list_to_integer(os:getpid()),
               %% the 1 MiB read was of the file, through a descriptor of
               %% the VM's, held for the idle reader until the close
               ?assertMatch([_], files(H, Idle)),
               ?assertMatch([_ | _], [x || {OsPid, _} <- holders(filename:basename(P), [VM]), OsPid =:= VM]),
               ok = iommap:close(H),
               ?assertEqual([], files(H, Idle)),
               ok = file:delete(P),
               %% at once: no wait
               ?assertEqual([], holders(filename:basename(P), [VM, Engine])),
               Idle ! stop
       end).

%% Descriptors and mappings of these OS processes that name File.
holders(File, OsPids) ->
    [{Pid, What} || Pid <- OsPids,
                    What <- fd_links(Pid) ++ maps(Pid),
                    string:find(What, File) =/= nomatch].

fd_links(Pid) ->
    Dir = "/proc/" ++ integer_to_list(Pid) ++ "/fd",
    {ok, Fds} = file:list_dir(Dir),
    [L || Fd <- Fds, {ok, L} <- [file:read_link(filename:join(Dir, Fd))]].

maps(Pid) ->
    {ok, B} = file:read_file("/proc/" ++ integer_to_list(Pid) ++ "/maps"),
    string:split(binary_to_list(B), "\n", all).

%% The engine killed: its handles answer closed; a handle of the new engine
%% is read through a new descriptor (the old one, on the dead engine's
%% memory, is closed, never used).
an_old_descriptor_never_serves_a_new_engine(Dir) ->
    on(fun() ->
               P1 = iommap_test_lib:pattern_file(Dir, "e1", 1, ?PAGE),
               P2 = iommap_test_lib:pattern_file(Dir, "e2", 2, ?PAGE),
               {ok, H1} = iommap:open(P1, read, []),
               ?assertEqual({ok, iommap_test_lib:pattern(1, 0, 64)}, iommap:pread(H1, 0, 64)),
               {Port1, {fd, _}} = iommap_direct:reader(self()),
               VM = list_to_integer(os:getpid()),
               Fds = iommap_test_lib:fds(VM),
               Old = iommap_test_lib:engine_os_pid(),
               os:cmd("kill -9 " ++ integer_to_list(Old)),
               iommap_test_lib:wait_until(fun() -> iommap:pread(H1, 0, 64) =:= {error, closed} end),
               iommap_test_lib:wait_until(fun() ->
                                                  case iommap_engine:os_pid() of
                                                      {ok, New} -> New =/= Old;
                                                      _ -> false
                                                  end
                                          end),
               {ok, H2} = iommap:open(P2, read, []),
               ?assertEqual({ok, iommap_test_lib:pattern(2, 0, 64)}, iommap:pread(H2, 0, 64)),
               {Port2, {fd, _}} = iommap_direct:reader(self()),
               ?assertNotEqual(Port1, Port2),
               ?assertEqual({error, closed}, iommap:pread(H1, 0, 64)),
               ?assert(iommap_test_lib:fds(VM) =< Fds + 2), % the engine's new pipes, not our descriptor
               ok = iommap:close(H2)
       end).

%% Private mappings are read through the engine; a write-mode handle is
%% refused on this side, as the engine would.
private_and_write_mode_handles(Dir) ->
    on(fun() ->
               P = iommap_test_lib:pattern_file(Dir, "p", 6, ?PAGE),
               {ok, H} = iommap:open(P, read_write, [private]),
               ok = iommap:pwrite(H, 0, <<"mine">>),
               ?assertEqual({ok, <<"mine">>}, iommap:pread(H, 0, 4)),
               ?assertEqual(undefined, iommap_direct:reader(self())),
               ok = iommap:close(H),
               {ok, W} = iommap:open(P, write, []),
               ?assertEqual({error, eacces}, iommap:pread(W, 0, 4)),
               ?assertEqual({error, eacces}, iommap:region_binary(W, 1 bsl 64, 4)),
               ok = iommap:close(W)
       end).

%% Reads of 16 KiB and more, and every read of a process that holds the
%% file's descriptor, are of the file: the same answers as the engine's
%% across shrinks, the partial last page and a range that straddles it.
same_answers_through_the_files_descriptor(Dir) ->
    Size = 16 * ?PAGE,
    Shrinks = [none, 10 * ?PAGE + 100, 5 * ?PAGE + 1, 1],
    Ranges = [{0, Size}, {?PAGE, 8 * ?PAGE}, {5 * ?PAGE, 5 * ?PAGE + 100}, {10 * ?PAGE, ?PAGE},
              {10 * ?PAGE, 4 * ?PAGE}, {10 * ?PAGE + 90, 20}, {10 * ?PAGE + 100, ?PAGE - 100},
              {11 * ?PAGE - 1, 2}, {5 * ?PAGE, ?PAGE}, {5 * ?PAGE + 1, 5000}, {Size - 1, 1},
              {Size, 1}, {0, Size + 1}, {3, 0}],
    Run = fun(Tag) ->
                  [begin
                       P = iommap_test_lib:pattern_file(Dir, atom_to_list(Tag) ++ integer_to_list(erlang:unique_integer([positive])), 3, Size),
                       {ok, H} = iommap:open(P, read, []),
                       try
                           {ok, _} = iommap:pread(H, 0, 4 * ?PAGE), % the descriptor, when on
                           Held = length(files(H, self())),
                           case Shrink of
                               none -> ok;
                               X -> shrink(P, X)
                           end,
                           {Held, [{Read, Off, Len, iommap:Read(H, Off, Len)}
                                   || {Off, Len} <- Ranges, Read <- [pread, region_binary]]}
                       after
                           ok = iommap:close(H)
                       end
                   end || Shrink <- Shrinks]
          end,
    Direct = on(fun() -> Run(on) end),
    Engine = off(fun() -> Run(off) end),
    ?assertEqual([1], lists:usort([N || {N, _} <- Direct])),
    ?assertEqual([0], lists:usort([N || {N, _} <- Engine])),
    [?assertEqual({Shrink, E}, {Shrink, D}) || {Shrink, {_, D}, {_, E}} <- lists:zip3(Shrinks, Direct, Engine)],
    All = [R || {_, _, _, R} <- lists:append([A || {_, A} <- Direct])],
    ?assert(lists:member({error, sigbus}, All)),
    ?assert(lists:member({ok, <<0:(3996 * 8)>>}, All)). % the partial last page, after 100 bytes

%% A process's descriptors of files go when it exits, and all of an
%% engine's when the engine is killed; a process that reads a handle often
%% enough gets one for its small reads too.
file_descriptors_go_with_their_reader_and_engine(Dir) ->
    on(fun() ->
               P = iommap_test_lib:pattern_file(Dir, "g", 4, 8 * ?PAGE),
               {ok, H} = iommap:open(P, read, []),
               Self = self(),
               {Pid, Mon} = spawn_monitor(fun() ->
                                                  [{ok, _} = iommap:pread(H, 0, 64) || _ <- lists:seq(1, 64)],
                                                  Before = length(files(H, self())),
                                                  {ok, _} = iommap:pread(H, 0, 64),
                                                  Self ! {self(), Before, length(files(H, self()))},
                                                  receive stop -> ok end
                                          end),
               receive {Pid, Before, After} -> ?assertEqual({0, 1}, {Before, After}) end,
               Pid ! stop,
               receive {'DOWN', Mon, _, _, _} -> ok end,
               iommap_test_lib:wait_until(fun() -> files(H, Pid) =:= [] end),
               ?assertEqual({ok, iommap_test_lib:pattern(4, 96, 5 * ?PAGE)}, iommap:pread(H, 96, 5 * ?PAGE)),
               ?assertMatch([_], files(H, self())),
               os:cmd("kill -9 " ++ integer_to_list(iommap_test_lib:engine_os_pid())),
               iommap_test_lib:wait_until(fun() -> iommap_direct_files:count() =:= 0 end),
               ?assertEqual({error, closed}, iommap:pread(H, 96, 5 * ?PAGE)),
               iommap_test_lib:wait_until(fun() -> element(1, iommap_engine:os_pid()) =:= ok end)
       end).

%% At most direct_files_max descriptors on the node and 64 per process;
%% past them reads are of the mapping, with the same bytes. erase() loses
%% none: the process gets the one it has again.
file_descriptors_stay_bounded_and_erase_loses_none(Dir) ->
    on(fun() ->
               Hs = [begin
                         {ok, H} = iommap:open(iommap_test_lib:pattern_file(Dir, "b" ++ integer_to_list(I), I, 5 * ?PAGE), read, []),
                         {I, H}
                     end || I <- lists:seq(1, 70)],
               VM = list_to_integer(os:getpid()),
               ReadAll = fun() -> [?assertEqual({ok, iommap_test_lib:pattern(I, 8, 4 * ?PAGE)}, iommap:pread(H, 8, 4 * ?PAGE))
                                   || {I, H} <- Hs] end,
               _ = ReadAll(),
               ?assertEqual(64, iommap_direct_files:count()),
               F0 = iommap_test_lib:fds(VM),
               [begin erase(), _ = ReadAll() end || _ <- [1, 2]],
               ?assertEqual({64, F0}, {iommap_direct_files:count(), iommap_test_lib:fds(VM)}),
               [ok = iommap:close(H) || {_, H} <- Hs],
               ?assertEqual(0, iommap_direct_files:count()),
               iommap_test_lib:with_env(direct_files_max, 2, fun() ->
                   Self = self(),
                   Hs2 = lists:sublist(Hs, 1),
                   P = iommap_test_lib:pattern_file(Dir, "b", 9, 5 * ?PAGE),
                   {ok, H} = iommap:open(P, read, []),
                   Pids = [spawn_link(fun() ->
                                              R = iommap:pread(H, 8, 4 * ?PAGE),
                                              Self ! {self(), R},
                                              receive stop -> ok end
                                      end) || _ <- lists:seq(1, 3)],
                   [receive {Pid, R} -> ?assertEqual({ok, iommap_test_lib:pattern(9, 8, 4 * ?PAGE)}, R) end || Pid <- Pids],
                   ?assertEqual(2, iommap_direct_files:count()),
                   [Pid ! stop || Pid <- Pids],
                   ok = iommap:close(H),
                   [] = Hs2 -- Hs
               end)
       end).

%% Reads of the file's descriptor racing the handle's close: each answers
%% the right bytes or closed, and the descriptor goes with the close.
a_handle_closed_under_a_file_reader(Dir) ->
    on(fun() ->
               [begin
                    P = iommap_test_lib:pattern_file(Dir, "c", I, 64 * ?PAGE),
                    {ok, H} = iommap:open(P, read, []),
                    Self = self(),
                    Want = {ok, iommap_test_lib:pattern(I, 0, 64 * ?PAGE)},
                    Reader = spawn_link(fun() -> Self ! {self(), close_race_loop(H, Want, Self, 0)} end),
                    receive {Reader, reading} -> ok end,
                    ok = iommap:close(H),
                    ?assertEqual([], ets:lookup(iommap_direct_files, H)),
                    receive {Reader, N} -> ?assert(N > 0) end
                end || I <- lists:seq(1, 20)]
       end).

close_race_loop(H, Want, Parent, N) ->
    case iommap:pread(H, 0, 64 * ?PAGE) of
        Want when N =:= 0 -> Parent ! {self(), reading}, close_race_loop(H, Want, Parent, 1);
        Want -> close_race_loop(H, Want, Parent, N + 1);
        {error, closed} -> N
    end.

%% A pread_many of at most 16 ranges of 64 KiB or more is read directly,
%% with the engine's answers: the list whole, or the engine's error for it
%% (a range past the mapping, or past a file shrunk under it); any other
%% list goes to the engine.
pread_many_of_large_ranges_reads_directly(Dir) ->
    K = 65536,
    Size = 8 * K,
    Lists = [[{0, K}, {K, K}], [{8, K}, {3 * K + 8, 2 * K}, {0, Size}],
             [{0, K}, {5 * K, K}], [{0, K}, {5 * K - 8, K}], [{0, K}, {Size, 1}],
             [{0, K}, {Size - K, K + 1}], [{0, K}, {8, 100}], lists:duplicate(17, {0, K})],
    Run = fun(Tag) ->
                  [begin
                       P = iommap_test_lib:pattern_file(Dir, atom_to_list(Tag) ++ integer_to_list(erlang:unique_integer([positive])), 5, Size),
                       {ok, H} = iommap:open(P, read, []),
                       try
                           Whole = iommap:pread_many(H, [{0, K}, {2 * K, K}]),
                           Held = length(files(H, self())),
                           ok = shrink(P, 5 * K + 100),
                           {Whole, Held, [iommap:pread_many(H, L) || L <- Lists]}
                       after
                           ok = iommap:close(H)
                       end
                   end || _ <- [1]]
          end,
    [{Whole, 1, Direct}] = on(fun() -> Run(on) end),
    [{Whole, 0, Engine}] = off(fun() -> Run(off) end),
    ?assertEqual({ok, [iommap_test_lib:pattern(5, 0, K), iommap_test_lib:pattern(5, 2 * K, K)]}, Whole),
    [?assertEqual({L, E}, {L, D}) || {L, D, E} <- lists:zip3(Lists, Direct, Engine)],
    ?assertEqual([ok, error, error, error, error, error, ok, ok], [element(1, A) || A <- Direct]),
    ?assertEqual({error, sigbus}, lists:nth(4, Direct)).

%% The keeper opens /proc/<engine>/fd/<N> only if it names a regular file:
%% a number reused at once could name a FIFO, whose open would block it.
%% Here N names a pipe of the VM's (one of its engine's), which would open.
only_regular_files_are_lent(Dir) ->
    VM = list_to_integer(os:getpid()),
    FdDir = "/proc/self/fd",
    {ok, Fds} = file:list_dir(FdDir),
    [Pipe | _] = [list_to_integer(N) || N <- Fds, {ok, "pipe:" ++ _} <- [file:read_link(filename:join(FdDir, N))]],
    P = iommap_test_lib:pattern_file(Dir, "reg", 8, ?PAGE),
    {ok, Regular} = file:open(P, [raw, read]),
    [Reg | _] = [list_to_integer(N) || N <- element(2, file:list_dir(FdDir)),
                                       {ok, L} <- [file:read_link(filename:join(FdDir, N))], L =:= P],
    #engine{} = E0 = iommap_client:engine(),
    E = E0#engine{os_pid = VM},
    H = make_ref(),
    Lend = fun(N) -> iommap_direct_files:open(H, atomics:new(3, []), 0, E, N) end,
    ?assertEqual(none, Lend(Pipe)),
    Lent = Lend(Reg),
    ?assertEqual({ok, iommap_test_lib:pattern(8, 0, 64)}, file:pread(Lent, 0, 64)),
    ok = iommap_direct_files:closed(H),
    ?assertEqual(0, iommap_direct_files:count()),
    ok = file:close(Regular).
