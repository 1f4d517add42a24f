%% The soak: many processes doing mixed operations on many handles for a
%% bounded time. Two handles share each file, so a truncate through one
%% turns parts of the other into {error, sigbus}. Prints operations done,
%% results by kind, the worst latency, and the engine's RSS and fd count at
%% start and end (before its handles are opened, after they are closed; the
%% Go runtime opens an epoll and an eventfd once, the first time it needs
%% them). `make soak` runs it for 2 minutes; CI for 10 seconds.
-module(iommap_soak).
-export([main/0, run/1]).

-define(PROCS, 16).
-define(FILES, 8).
-define(PAGE, 4096).

-spec main() -> ok.
main() ->
    Secs = case os:getenv("SOAK_SECONDS") of false -> 120; S -> list_to_integer(S) end,
    {ok, _} = application:ensure_all_started(iommap),
    Report = run(Secs),
    case maps:get(unexpected, Report) of
        [] -> ok;
        Bad -> io:format("UNEXPECTED RESULTS: ~p~n", [Bad]), halt(1)
    end.

%% Returns the report; `unexpected' lists any answer outside the contract
%% (and any worker that crashed). The files live in a directory of their
%% own under $TMPDIR or /tmp, removed at the end, whatever happens.
-spec run(pos_integer()) -> map().
run(Secs) ->
    Dir = iommap_test_lib:tmp_dir(),
    try run(Secs, Dir)
    after iommap_test_lib:remove_dir(Dir)
    end.

run(Secs, Dir) ->
    Paths = [iommap_test_lib:file_in(Dir, "f" ++ integer_to_list(I), <<0:(16 * ?PAGE * 8)>>)
             || I <- lists:seq(1, ?FILES)],
    {ok, #{os_pid := Pid}} = iommap:engine_info(),
    Start = {iommap_test_lib:rss_kib(Pid), iommap_test_lib:fds(Pid)},
    Handles = list_to_tuple([element(2, {ok, _} = iommap:open(P, read_write, [])) || P <- Paths, _ <- [a, b]]),
    Deadline = erlang:monotonic_time(millisecond) + Secs * 1000,
    %% monitored, not linked: a worker that crashes is reported, and the
    %% handles are still closed and the files removed
    Ws = [spawn_monitor(fun() -> exit({done, worker(Handles, Deadline, #{}, 0, [])}) end)
          || _ <- lists:seq(1, ?PROCS)],
    Results = [receive
                   {'DOWN', Ref, process, W, {done, R}} -> R;
                   {'DOWN', Ref, process, W, Why} -> {#{}, 0, [{worker_crashed, Why}]}
               end || {W, Ref} <- Ws],
    Counts = lists:foldl(fun({C, _, _}, Acc) -> merge(C, Acc) end, #{}, Results),
    MaxUs = lists:max([M || {_, M, _} <- Results]),
    Unexpected = lists:append([U || {_, _, U} <- Results]),
    [_ = iommap:close(element(I, Handles)) || I <- lists:seq(1, tuple_size(Handles))],
    End = {iommap_test_lib:rss_kib(Pid), iommap_test_lib:fds(Pid)},
    Ops = lists:sum(maps:values(Counts)),
    io:format("soak ~p s, ~p processes, ~p handles on ~p files: ~p operations (~p/s)~n"
              "  results by kind: ~p~n  worst latency: ~.1f ms~n"
              "  engine RSS ~p -> ~p KiB, fds ~p -> ~p~n  unexpected: ~p~n",
              [Secs, ?PROCS, tuple_size(Handles), ?FILES, Ops, Ops div Secs,
               lists:sort(maps:to_list(Counts)), MaxUs / 1000,
               element(1, Start), element(1, End), element(2, Start), element(2, End),
               Unexpected]),
    #{ops => Ops, counts => Counts, max_latency_us => MaxUs, start => Start, 'end' => End,
      unexpected => Unexpected}.

worker(Handles, Deadline, Counts, MaxUs, Bad) ->
    case erlang:monotonic_time(millisecond) >= Deadline of
        true ->
            {Counts, MaxUs, Bad};
        false ->
            H = element(rand:uniform(tuple_size(Handles)), Handles),
            T0 = erlang:monotonic_time(microsecond),
            R = op(H, rand:uniform(100)),
            Us = erlang:monotonic_time(microsecond) - T0,
            K = kind(R),
            Bad1 = case K of unexpected when length(Bad) < 10 -> [R | Bad]; _ -> Bad end,
            worker(Handles, Deadline, maps:update_with(K, fun(X) -> X + 1 end, 1, Counts),
                   max(MaxUs, Us), Bad1)
    end.

op(H, N) when N =< 45 -> iommap:pread(H, rand:uniform(16 * ?PAGE) - 1, rand:uniform(8192));
op(H, N) when N =< 85 -> iommap:pwrite(H, rand:uniform(16 * ?PAGE) - 1, rand:bytes(rand:uniform(4096)));
op(H, N) when N =< 88 -> iommap:region_binary(H, rand:uniform(16 * ?PAGE) - 1, 65536);
op(H, N) when N =< 92 -> iommap:position(H);
op(H, N) when N =< 94 -> iommap:sync(H, async);
op(H, 95) -> iommap:sync(H, sync);
op(H, N) when N =< 97 -> iommap:advise(H, ?PAGE * (rand:uniform(8) - 1), ?PAGE, willneed);
op(H, _) -> iommap:truncate(H, ?PAGE * (8 + rand:uniform(8))).

kind(ok) -> ok;
kind({ok, _}) -> ok;
kind({error, E}) when E =:= sigbus; E =:= out_of_bounds -> E;
kind(_) -> unexpected.

merge(A, B) -> maps:fold(fun(K, V, Acc) -> maps:update_with(K, fun(X) -> X + V end, V, Acc) end, B, A).
