%% make bench: the same work through iommap and through file:pread/pwrite on
%% a raw fd of the same page-cached file, in one run. The machine is noisy,
%% so the two sides alternate within each round, every point runs in a fresh
%% process, and the table reports medians and spread over the rounds.
%% Env: BENCH_ROUNDS (5), BENCH_MS (300), BENCH_ONLY (workloads whose name
%% contains one of these comma-separated strings; default all),
%% BENCH_FILE_VM=1 (each point of the file side runs in a VM of its own, so
%% our engine and our VM's schedulers cannot slow it; costs a VM start per
%% point).
-module(iommap_bench).
-export([main/0, file_point_main/3]).
-export([queue_section/2, queue_pusher/3]).

-define(FILE_SIZE, (64 bsl 20)).
-define(NPROC, 8).

workloads() ->
    case string:lexemes(os:getenv("BENCH_ONLY", ""), ",") of
        [] -> all_workloads();
        Only -> [W || {Name, _, _, _} = W <- all_workloads(),
                      lists:any(fun(O) -> string:find(Name, O) =/= nomatch end, Only)]
    end.

all_workloads() ->
    [{"pread 64 B", read, 64, 1},
     {"pread 4 KiB", read, 4096, 1},
     {"pread 64 KiB", read, 65536, 1},
     {"pread 1 MiB", read, 1 bsl 20, 1},
     {"pwrite 64 B", write, 64, 1},
     {"pwrite 4 KiB", write, 4096, 1},
     {"pwrite 1 MiB", write, 1 bsl 20, 1},
     {"region_binary 1 MiB", region, 1 bsl 20, 1},
     {"pread 64 B x8 procs", read, 64, ?NPROC},
     {"pread 4 KiB x8 procs", read, 4096, ?NPROC},
     %% the same reads through the engine (direct_reads off for the handle),
     %% to set the direct path against the round trip in the same run
     {"pread 64 B, engine", read_engine, 64, 1},
     {"pread 4 KiB, engine", read_engine, 4096, 1},
     {"pread 1 MiB, engine", read_engine, 1 bsl 20, 1},
     {"pread 64 B x8, engine", read_engine, 64, ?NPROC},
     %% beyond the NIF: one op is the whole batch
     {"64 x 64 B, one call", many, 64, 1},
     {"64 x 64 B, 64 calls", calls64, 64, 1},
     {"64 x 64 B pwrite, one call", wmany, 64, 1},
     {"64 x 64 B pwrite, 64 calls", wcalls64, 64, 1},
     {"add 8 B (atomic)", add, 8, 1},
     {"pwrite 4 KiB + sync", durable, 4096, 1}].

main() ->
    case os:getenv("BENCH_LANES_ONLY") of
        "1" -> lanes_main();
        _ -> main_all()
    end.

main_all() ->
    Rounds = env_int("BENCH_ROUNDS", 5),
    Ms = env_int("BENCH_MS", 300),
    Path = filename:join(os:getenv("TMPDIR", "/tmp"), "iommap-bench-" ++ os:getpid()),
    ok = file:write_file(Path, crypto:strong_rand_bytes(?FILE_SIZE)),
    {ok, _} = file:read_file(Path), % page-cache it
    {ok, _} = application:ensure_all_started(iommap),
    FileVM = os:getenv("BENCH_FILE_VM") =:= "1",
    io:format("# ~s, OTP ~s, ~p schedulers, ~p rounds x ~p ms per point, 64 MiB file, file side ~s~n",
              [cpu(), erlang:system_info(otp_release), erlang:system_info(schedulers_online), Rounds, Ms,
               case FileVM of true -> "in its own VM"; false -> "in this VM" end]),
    Res = lists:foldl(
            fun(R, Acc) ->
                    io:format("# round ~p/~p~n", [R, Rounds]),
                    lists:foldl(
                      fun({Name, _, _, _} = W, A) ->
                              %% alternate which side goes first
                              Sides = case R rem 2 of 1 -> [iommap, file]; 0 -> [file, iommap] end,
                              lists:foldl(fun(Side, A2) ->
                                                  V = case {Side, FileVM} of
                                                          {file, true} -> file_point_vm(W, Path, Ms);
                                                          _ -> isolated(fun() -> point(Side, W, Path, Ms) end)
                                                      end,
                                                  maps:update_with({Name, Side}, fun(L) -> [V | L] end, [V], A2)
                                          end, A, Sides)
                      end, Acc, workloads())
            end, #{}, lists:seq(1, Rounds)),
    report(Res),
    queue_section(Rounds, Ms),
    idle(Path),
    lanes(Path, Rounds, Ms),
    ok = file:delete(Path).

%% One measurement: ops/s of NProc processes doing Op for Ms milliseconds.
point(Side, {_, Op, Size, NProc}, Path, Ms) ->
    Parent = self(),
    Data = crypto:strong_rand_bytes(Size),
    Open = opener(Side, Op, Path),
    H0 = case Side of iommap -> Open(); file -> none end,
    Pids = [spawn_link(fun() ->
                               H = case Side of iommap -> H0; file -> Open() end,
                               F = op(Side, Op, H, Size, Data),
                               receive go -> ok end,
                               T0 = erlang:monotonic_time(microsecond),
                               N = loop(F, T0 + Ms * 1000, 0),
                               T1 = erlang:monotonic_time(microsecond),
                               Parent ! {done, self(), N * 1.0e6 / (T1 - T0)}
                       end) || _ <- lists:seq(1, NProc)],
    [P ! go || P <- Pids],
    lists:sum([receive {done, P, R} -> R end || P <- Pids]).

%% A point of the file side in a VM of its own, started for it.
file_point_vm(W, Path, Ms) ->
    Idx = length(lists:takewhile(fun(X) -> X =/= W end, all_workloads())) + 1,
    Dir = filename:dirname(code:which(?MODULE)),
    Cmd = lists:flatten(io_lib:format("erl -noshell -pa ~s -eval 'iommap_bench:file_point_main(~p, \"~s\", ~p)'",
                                      [Dir, Idx, Path, Ms])),
    Out = string:trim(os:cmd(Cmd)),
    try list_to_float(lists:last(string:lexemes(Out, "\n")))
    catch _:_ -> io:format("# file point failed: ~s~n", [Out]), 0.0
    end.

%% @private The entry point of that VM.
-spec file_point_main(pos_integer(), string(), pos_integer()) -> no_return().
file_point_main(Idx, Path, Ms) ->
    V = point(file, lists:nth(Idx, all_workloads()), Path, Ms),
    io:format("~.3f~n", [float(V)]),
    halt().

opener(iommap, read_engine, Path) ->
    fun() ->
            ok = application:set_env(iommap, direct_reads, false), % read at open
            {ok, H} = iommap:open(Path, read_write, []),
            ok = application:set_env(iommap, direct_reads, true),
            H
    end;
opener(iommap, _, Path) -> fun() -> {ok, H} = iommap:open(Path, read_write, []), H end;
opener(file, _, Path) -> fun() -> {ok, Fd} = file:open(Path, [read, write, raw, binary]), Fd end.

op(iommap, many, H, Size, _) ->
    fun() -> {ok, [_ | _]} = iommap:pread_many(H, [{offset(Size), Size} || _ <- lists:seq(1, 64)]) end;
op(file, many, Fd, Size, _) ->
    fun() -> {ok, [_ | _]} = file:pread(Fd, [{offset(Size), Size} || _ <- lists:seq(1, 64)]) end;
op(iommap, wmany, H, Size, D) ->
    fun() -> ok = iommap:pwrite_many(H, [{offset(Size), D} || _ <- lists:seq(1, 64)]) end;
op(file, wmany, Fd, Size, D) ->
    fun() -> ok = file:pwrite(Fd, [{offset(Size), D} || _ <- lists:seq(1, 64)]) end;
op(iommap, wcalls64, H, Size, D) ->
    fun() -> [ok = iommap:pwrite(H, offset(Size), D) || _ <- lists:seq(1, 64)] end;
op(file, wcalls64, Fd, Size, D) ->
    fun() -> [ok = file:pwrite(Fd, offset(Size), D) || _ <- lists:seq(1, 64)] end;
op(iommap, calls64, H, Size, _) ->
    fun() -> [{ok, _} = iommap:pread(H, offset(Size), Size) || _ <- lists:seq(1, 64)] end;
op(file, calls64, Fd, Size, _) ->
    fun() -> [{ok, _} = file:pread(Fd, offset(Size), Size) || _ <- lists:seq(1, 64)] end;
%% the file module has no atomics: its nearest is a read, add, write
op(iommap, add, H, _, _) ->
    fun() -> {ok, _} = iommap:add(H, 8 * rand:uniform(1000), 1) end;
op(file, add, Fd, _, _) ->
    fun() -> Off = 8 * rand:uniform(1000),
             {ok, <<V:64/little>>} = file:pread(Fd, Off, 8),
             ok = file:pwrite(Fd, Off, <<(V + 1):64/little>>) end;
%% a record made durable: the pages of the record vs fdatasync of the file
op(iommap, durable, H, Size, D) ->
    fun() -> Off = offset(Size), ok = iommap:pwrite(H, Off, D), ok = iommap:sync(H, Off, Size, sync) end;
op(file, durable, Fd, Size, D) ->
    fun() -> ok = file:pwrite(Fd, offset(Size), D), ok = file:datasync(Fd) end;
op(Side, read_engine, H, Size, D) -> op(Side, read, H, Size, D);
op(iommap, read, H, Size, _) -> fun() -> {ok, _} = iommap:pread(H, offset(Size), Size) end;
op(iommap, region, H, Size, _) -> fun() -> {ok, _} = iommap:region_binary(H, offset(Size), Size) end;
op(iommap, write, H, Size, D) -> fun() -> ok = iommap:pwrite(H, offset(Size), D) end;
op(file, read, Fd, Size, _) -> fun() -> {ok, _} = file:pread(Fd, offset(Size), Size) end;
op(file, region, Fd, Size, _) -> fun() -> {ok, _} = file:pread(Fd, offset(Size), Size) end;
op(file, write, Fd, Size, D) -> fun() -> ok = file:pwrite(Fd, offset(Size), D) end.

offset(Size) -> rand:uniform(?FILE_SIZE - Size + 1) - 1.

loop(F, Tend, N) ->
    F(),
    case erlang:monotonic_time(microsecond) >= Tend of
        true -> N + 1;
        false -> loop(F, Tend, N + 1)
    end.

isolated(F) ->
    {Pid, Ref} = spawn_monitor(fun() -> exit({ok, F()}) end),
    receive
        {'DOWN', Ref, process, Pid, {ok, V}} -> V;
        {'DOWN', Ref, process, Pid, Why} -> io:format("# point failed: ~p~n", [Why]), 0.0
    end.

report(Res) ->
    io:format("~n~-24s ~12s ~12s ~11s ~10s ~7s ~9s~n",
              ["workload (median)", "iommap op/s", "file op/s", "iommap MB/s", "file MB/s", "ratio", "spread"]),
    [begin
         I = maps:get({Name, iommap}, Res), F = maps:get({Name, file}, Res),
         MI = median(I), MF = median(F),
         io:format("~-24s ~12s ~12s ~11s ~10s ~6.2fx ~4w/~w%~n",
                   [Name, fmt(MI), fmt(MF), mbs(MI, bytes(Op, Size)), mbs(MF, bytes(Op, Size)),
                    MI / MF, spread(I), spread(F)])
     end || {Name, Op, Size, _} <- workloads()],
    against_itself(Res).

%% iommap against itself, in the same run: what a write costs against a
%% read of the same size (time per call, so 1.0x is the same cost), and how
%% many times faster one pwrite_many is than the same pieces in 64 calls.
against_itself(Res) ->
    Pairs = [{"pwrite 64 B costs", "pwrite 64 B", "pread 64 B", "of pread 64 B"},
             {"pwrite 4 KiB costs", "pwrite 4 KiB", "pread 4 KiB", "of pread 4 KiB"},
             {"pwrite_many 64 x 64 B runs", "64 x 64 B pwrite, 64 calls", "64 x 64 B pwrite, one call",
              "the rate of 64 pwrite calls"},
             {"pread_many 64 x 64 B runs", "64 x 64 B, 64 calls", "64 x 64 B, one call",
              "the rate of 64 pread calls"},
             {"a direct pread 64 B runs", "pread 64 B, engine", "pread 64 B", "the engine path's rate"},
             {"a direct pread 4 KiB runs", "pread 4 KiB, engine", "pread 4 KiB", "the engine path's rate"},
             {"a direct pread 1 MiB runs", "pread 1 MiB, engine", "pread 1 MiB", "the engine path's rate"},
             {"direct pread 64 B x8 run", "pread 64 B x8, engine", "pread 64 B x8 procs", "the engine path's rate"}],
    Lines = [{What, median(maps:get({Slow, iommap}, Res)), median(maps:get({Fast, iommap}, Res)), Of}
             || {What, Slow, Fast, Of} <- Pairs,
                maps:is_key({Slow, iommap}, Res), maps:is_key({Fast, iommap}, Res)],
    case Lines of
        [] -> ok;
        _ -> io:format("~niommap against itself (medians of this run):~n")
    end,
    [io:format("  ~s ~.2fx ~s~n", [What, Fast / Slow, Of]) || {What, Slow, Fast, Of} <- Lines],
    ok.

bytes(Op, Size) when Op =:= many; Op =:= calls64; Op =:= wmany; Op =:= wcalls64 -> 64 * Size;
bytes(_, Size) -> Size.

%% CPU of the engine over one idle second, right after a burst of calls.
idle(Path) ->
    {ok, H} = iommap:open(Path, read, []),
    [{ok, _} = iommap:pread(H, 0, 64) || _ <- lists:seq(1, 20000)],
    {ok, #{os_pid := Pid}} = iommap:engine_info(),
    T0 = ticks(Pid),
    timer:sleep(1000),
    T1 = ticks(Pid),
    Hz = 100,
    io:format("~nengine CPU over 1 s idle after a burst: ~w ticks (~.1f% of one core)~n",
              [T1 - T0, (T1 - T0) * 100 / Hz]),
    ok = iommap:close(H).

ticks(Pid) ->
    {ok, B} = file:read_file("/proc/" ++ integer_to_list(Pid) ++ "/stat"),
    [_, After] = binary:split(B, <<") ">>),
    F = binary:split(After, <<" ">>, [global]),
    binary_to_integer(lists:nth(12, F)) + binary_to_integer(lists:nth(13, F)).

cpu() ->
    case file:read_file("/proc/cpuinfo") of
        {ok, B} ->
            case re:run(B, "model name\\s*: (.*)", [{capture, [1], list}]) of
                {match, [M]} -> M ++ ", " ++ integer_to_list(erlang:system_info(logical_processors)) ++ " cpus";
                _ -> "unknown cpu"
            end;
        _ -> "unknown cpu"
    end.

median(L) -> lists:nth((length(L) + 1) div 2, lists:sort(L)).
spread(L) -> round((lists:max(L) - lists:min(L)) / max(1.0e-9, median(L)) * 100).
fmt(X) when X >= 1.0e4 -> io_lib:format("~.1fk", [X / 1000]);
fmt(X) -> integer_to_list(round(X)).
mbs(Ops, Size) -> integer_to_list(round(Ops * Size / 1.0e6)).
env_int(K, D) -> case os:getenv(K) of false -> D; V -> list_to_integer(V) end.

%% Lanes: small calls on a lane against the same calls through
%% the port, in this VM, in the same run. Each side gets a fresh engine
%% (the application restarted with lanes = 0, or with lanes = BENCH_LANES,
%% default 4); the sides alternate which goes first in each round.
%% BENCH_LANES_ONLY=1 runs this section alone.
lanes_main() ->
    Path = filename:join(os:getenv("TMPDIR", "/tmp"), "iommap-bench-" ++ os:getpid()),
    ok = file:write_file(Path, crypto:strong_rand_bytes(?FILE_SIZE)),
    lanes(Path, env_int("BENCH_ROUNDS", 5), env_int("BENCH_MS", 300)),
    ok = file:delete(Path).

%% Its reads go through the engine (read_engine: direct reads off for the
%% handle), as a lane carries only what goes to the engine.
lanes(Path, Rounds, Ms) ->
    ok = logger:set_primary_config(level, warning), % no report of each restart
    N = env_int("BENCH_LANES", 4),
    Ws = [{Name, Op, Size, C} || {Name, Op, Size} <- [{"pread 64 B", read_engine, 64}, {"pread 4 KiB", read_engine, 4096},
                                                     {"pwrite 64 B", write, 64}, {"pwrite 4 KiB", write, 4096},
                                                     {"add 8 B", add, 8}],
                                  C <- [1, 2, 4, 8]],
    io:format("~nlanes (~p in the pool) against the port, ~p schedulers, ~p rounds x ~p ms~n",
              [N, erlang:system_info(schedulers_online), Rounds, Ms]),
    Res = lists:foldl(
            fun(R, Acc) ->
                    Sides = case R rem 2 of 1 -> [port, lanes]; 0 -> [lanes, port] end,
                    lists:foldl(fun(Side, A) ->
                                        with_lanes(case Side of port -> 0; lanes -> N end),
                                        lists:foldl(fun({Name, _, _, C} = W, A2) ->
                                                            V = isolated(fun() -> point(iommap, W, Path, Ms) end),
                                                            maps:update_with({Name, C, Side}, fun(L) -> [V | L] end, [V], A2)
                                                    end, A, Ws)
                                end, Acc, Sides)
            end, #{}, lists:seq(1, Rounds)),
    with_lanes(0),
    io:format("~-14s ~7s ~12s ~12s ~7s ~9s~n", ["workload", "callers", "port op/s", "lanes op/s", "ratio", "spread"]),
    [begin
         P = maps:get({Name, C, port}, Res), L = maps:get({Name, C, lanes}, Res),
         io:format("~-14s ~7w ~12s ~12s ~6.2fx ~4w/~w%~n",
                   [Name, C, fmt(median(P)), fmt(median(L)), median(L) / median(P), spread(P), spread(L)])
     end || {Name, _, _, C} <- Ws],
    ok.

with_lanes(N) ->
    _ = application:stop(iommap),
    ok = application:set_env(iommap, lanes, N),
    {ok, _} = application:ensure_all_started(iommap),
    timer:sleep(100). % the pool opens just after the engine is up

%% ---------------------------------------------------------------------
%% The persistent queue (iommap_queue). Push and pop of a 64 B record
%% against pwrite and pread of 64 B on a raw fd (target: 0.8x or better);
%% push_many and pop_many of 64 records against the same in 64 calls each
%% (target: 10x or better); then two OS processes (a VM started for it
%% pushes, this one pops) for BENCH_QUEUE_SECONDS (10) one record a call,
%% and as long again in batches of 64, every record checked to come
%% exactly once and in order. BENCH_ONLY=queue runs only this section.

queue_section(Rounds, Ms) ->
    case os:getenv("BENCH_ONLY", "") of
        "" -> queue_bench(Rounds, Ms);
        Only -> case lists:any(fun(O) -> string:find("queue", O) =/= nomatch end,
                               string:lexemes(Only, ",")) of
                    true -> queue_bench(Rounds, Ms);
                    false -> ok
                end
    end.

queue_points() ->
    D = crypto:strong_rand_bytes(64),
    Ds = lists:duplicate(64, D),
    [{"queue push+pop 64 B", queue, fun(Q) -> ok = iommap_queue:push(Q, D), {ok, _} = iommap_queue:pop(Q) end},
     {"file pwrite+pread 64 B", file, fun(Fd) -> Off = offset(64), ok = file:pwrite(Fd, Off, D),
                                                 {ok, _} = file:pread(Fd, Off, 64) end},
     {"queue 64 x push+pop", queue, fun(Q) -> [ok = iommap_queue:push(Q, X) || X <- Ds],
                                              [{ok, _} = iommap_queue:pop(Q) || _ <- Ds] end},
     {"queue push_many+pop_many 64", queue, fun(Q) -> ok = iommap_queue:push_many(Q, Ds),
                                                      {ok, [_ | _]} = iommap_queue:pop_many(Q, 64) end}].

queue_bench(Rounds, Ms) ->
    Dir = os:getenv("TMPDIR", "/tmp"),
    File = filename:join(Dir, "iommap-bench-qf-" ++ os:getpid()),
    ok = file:write_file(File, <<0:(?FILE_SIZE * 8)>>),
    Res = lists:foldl(
            fun(_, Acc) ->
                    lists:foldl(
                      fun({Name, Kind, F}, A) ->
                              V = isolated(fun() -> queue_point(Kind, F, Dir, File, Ms) end),
                              maps:update_with(Name, fun(L) -> [V | L] end, [V], A)
                      end, Acc, queue_points())
            end, #{}, lists:seq(1, Rounds)),
    ok = file:delete(File),
    io:format("~n~-30s ~12s ~9s~n", ["queue workload (median)", "op/s", "spread"]),
    [io:format("~-30s ~12s ~4w%~n", [Name, fmt(median(maps:get(Name, Res))), spread(maps:get(Name, Res))])
     || {Name, _, _} <- queue_points()],
    M = fun(Name) -> median(maps:get(Name, Res)) end,
    io:format("  queue push+pop 64 B runs ~.2fx the rate of pwrite+pread 64 B (target 0.8x)~n",
              [M("queue push+pop 64 B") / M("file pwrite+pread 64 B")]),
    io:format("  push_many+pop_many of 64 runs ~.2fx the rate of 64 push+pop calls (target 10x)~n",
              [M("queue push_many+pop_many 64") / M("queue 64 x push+pop")]),
    Seconds = env_int("BENCH_QUEUE_SECONDS", 10),
    [queue_two_processes(Dir, Seconds, Batch) || Batch <- [1, 64]],
    ok.

%% One point: ops/s of F on a fresh queue of 1 MiB (or the raw file) for Ms.
queue_point(queue, F, Dir, _, Ms) ->
    Path = filename:join(Dir, "iommap-bench-q-" ++ os:getpid()),
    _ = file:delete(Path),
    {ok, Q} = iommap_queue:create(Path, 1 bsl 20),
    try rate(F, Q, Ms)
    after
        ok = iommap_queue:close(Q),
        ok = file:delete(Path)
    end;
queue_point(file, F, _, File, Ms) ->
    {ok, Fd} = file:open(File, [read, write, raw, binary]),
    try rate(F, Fd, Ms) after file:close(Fd) end.

rate(F, X, Ms) ->
    T0 = erlang:monotonic_time(microsecond),
    N = loop(fun() -> F(X) end, T0 + Ms * 1000, 0),
    N * 1.0e6 / (erlang:monotonic_time(microsecond) - T0).

%% A VM of its own pushes numbered 64 B records for Seconds, Batch a call;
%% this one pops them, Batch at most a call, and checks each is the next.
queue_two_processes(Dir, Seconds, Batch) ->
    Path = filename:join(Dir, "iommap-bench-q2-" ++ os:getpid()),
    _ = file:delete(Path),
    {ok, Q} = iommap_queue:create(Path, 1 bsl 20),
    Peer = case peer:start(#{connection => standard_io,
                             args => ["-pa", filename:dirname(code:which(iommap)),
                                      "-pa", filename:dirname(code:which(?MODULE))]}) of
               {ok, P} -> P;
               {ok, P, _Node} -> P
           end,
    Self = self(),
    T0 = erlang:monotonic_time(microsecond),
    spawn_link(fun() ->
                       Self ! {pushed, peer:call(Peer, ?MODULE, queue_pusher, [Path, Seconds * 1000, Batch],
                                                 Seconds * 1000 + 60000)}
               end),
    {N, Full} = queue_popper(Q, Batch, 0, undefined),
    T1 = erlang:monotonic_time(microsecond),
    peer:stop(Peer),
    ok = iommap_queue:close(Q),
    ok = file:delete(Path),
    io:format("  two OS processes, ~s: ~s records/s (~p records in ~.1f s, each once and in order; "
              "the pusher found the queue full ~p times)~n",
              [case Batch of 1 -> "one record a call"; _ -> "batches of " ++ integer_to_list(Batch) end,
               fmt(N * 1.0e6 / (T1 - T0)), N, (T1 - T0) / 1.0e6, Full]).

queue_popper(Q, Batch, Got, Pushed) ->
    case iommap_queue:pop_many(Q, Batch) of
        {ok, []} ->
            case Pushed of
                {Got, _} ->
                    Pushed;
                undefined ->
                    receive {pushed, P} -> queue_popper(Q, Batch, Got, P)
                    after 0 -> queue_popper(Q, Batch, Got, Pushed)
                    end;
                _ ->
                    queue_popper(Q, Batch, Got, Pushed)
            end;
        {ok, Recs} ->
            Next = lists:foldl(fun(<<Seq:64, _:56/binary>>, Seq) -> Seq + 1;
                                  (<<Seq:64, _/binary>>, Want) -> error({out_of_order, Seq, Want})
                               end, Got, Recs),
            queue_popper(Q, Batch, Next, Pushed)
    end.

%% @private In the pushing VM: records 0, 1, ... for Ms, Batch a call; gives
%% how many, and how often the queue was full.
-spec queue_pusher(file:filename(), pos_integer(), pos_integer()) -> {non_neg_integer(), non_neg_integer()}.
queue_pusher(Path, Ms, Batch) ->
    {ok, Q} = iommap_queue:open(Path),
    Pad = binary:copy(<<7>>, 56),
    Tend = erlang:monotonic_time(millisecond) + Ms,
    Push = fun P(Seq, Full) ->
                   case erlang:monotonic_time(millisecond) >= Tend of
                       true -> {Seq, Full};
                       false ->
                           Recs = [<<S:64, Pad/binary>> || S <- lists:seq(Seq, Seq + Batch - 1)],
                           case iommap_queue:push_many(Q, Recs) of
                               ok -> P(Seq + Batch, Full);
                               {error, full} -> erlang:yield(), P(Seq, Full + 1)
                           end
                   end
           end,
    Result = Push(0, 0),
    ok = iommap_queue:close(Q),
    Result.
