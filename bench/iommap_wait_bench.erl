%% make bench-wait: does a caller that waits awake for a long request's reply
%% (wait_spin) pay, at 1, 2, 4 and 8 callers? The same VM, the application
%% restarted with wait_spin at its default and at 0 in alternating order
%% each round; medians over the rounds. Env: BENCH_ROUNDS (5), BENCH_MS (300).
-module(iommap_wait_bench).
-export([main/0]).

-define(FILE_SIZE, (16 bsl 20)).

main() ->
    Rounds = env_int("BENCH_ROUNDS", 5),
    Ms = env_int("BENCH_MS", 300),
    Path = filename:join(os:getenv("TMPDIR", "/tmp"), "iommap-wait-bench-" ++ os:getpid()),
    ok = file:write_file(Path, crypto:strong_rand_bytes(?FILE_SIZE)),
    _ = application:load(iommap),
    Default = iommap_env:get(wait_spin),
    Default =/= 0 orelse error(wait_spin_default_is_0),
    Works = [{"pread_many 64 x 64 B", many}, {"pread 64 KiB", big}],
    Callers = [1, 2, 4, 8],
    io:format("# OTP ~s, ~p schedulers, ~p rounds x ~p ms, wait_spin ~p against 0~n",
              [erlang:system_info(otp_release), erlang:system_info(schedulers_online), Rounds, Ms, Default]),
    Res = lists:foldl(
            fun(R, Acc) ->
                    Order = case R rem 2 of 1 -> [Default, 0]; 0 -> [0, Default] end,
                    lists:foldl(
                      fun(WS, A) ->
                              ok = restart(WS),
                              lists:foldl(fun({Name, Op}, A2) ->
                                                  lists:foldl(fun(N, A3) ->
                                                                      V = rate(Path, Op, N, Ms),
                                                                      maps:update_with({Name, N, WS}, fun(L) -> [V | L] end, [V], A3)
                                                              end, A2, Callers)
                                          end, A, Works)
                      end, Acc, Order)
            end, #{}, lists:seq(1, Rounds)),
    io:format("~n~-22s ~8s ~14s ~14s ~7s~n", ["workload", "callers", "wait_spin op/s", "0 op/s", "ratio"]),
    [begin
         S = median(maps:get({Name, N, Default}, Res)),
         Z = median(maps:get({Name, N, 0}, Res)),
         io:format("~-22s ~8w ~14w ~14w ~6.2fx~n", [Name, N, round(S), round(Z), S / Z])
     end || {Name, _} <- Works, N <- Callers],
    ok = application:stop(iommap),
    ok = file:delete(Path).

restart(WS) ->
    _ = application:stop(iommap),
    ok = application:set_env(iommap, wait_spin, WS),
    {ok, _} = application:ensure_all_started(iommap),
    ok.

%% op/s of N processes, together, for Ms.
rate(Path, Op, N, Ms) ->
    {ok, H} = iommap:open(Path, read, []),
    Parent = self(),
    Pids = [spawn_link(fun() ->
                               F = op(Op, H),
                               receive go -> ok end,
                               T0 = erlang:monotonic_time(microsecond),
                               K = loop(F, T0 + Ms * 1000, 0),
                               Parent ! {done, self(), K * 1.0e6 / (erlang:monotonic_time(microsecond) - T0)}
                       end) || _ <- lists:seq(1, N)],
    [P ! go || P <- Pids],
    Total = lists:sum([receive {done, P, V} -> V end || P <- Pids]),
    ok = iommap:close(H),
    Total.

op(many, H) ->
    fun() -> {ok, [_ | _]} = iommap:pread_many(H, [{off(64), 64} || _ <- lists:seq(1, 64)]) end;
op(big, H) ->
    fun() -> {ok, _} = iommap:pread(H, off(65536), 65536) end.

off(Size) -> rand:uniform(?FILE_SIZE - Size + 1) - 1.

loop(F, Tend, K) ->
    F(),
    case erlang:monotonic_time(microsecond) >= Tend of
        true -> K + 1;
        false -> loop(F, Tend, K + 1)
    end.

median(L) -> lists:nth((length(L) + 1) div 2, lists:sort(L)).
env_int(K, D) -> case os:getenv(K) of false -> D; V -> list_to_integer(V) end.
