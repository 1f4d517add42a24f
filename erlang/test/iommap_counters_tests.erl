%% Counters files (iommap_counters) and the read-modify-write atomics
%% (iommap:sub/3, bit_and/3, bit_or/3, bit_xor/3, exchange/3), against
%% models, and shared by two VMs.
-module(iommap_counters_tests).

-include_lib("eunit/include/eunit.hrl").

-export([work/3]).

-define(MIN, -16#8000000000000000).
-define(MAX, 16#7FFFFFFFFFFFFFFF).

%% A temporary directory per test, removed after it, whatever happens.
with_dir(Test) ->
    {setup,
     fun() ->
             Dir = filename:join(os:getenv("TMPDIR", "/tmp"),
                                 "iommap-counters-" ++ integer_to_list(erlang:unique_integer([positive]))),
             ok = file:make_dir(Dir),
             Dir
     end,
     fun(Dir) -> file:del_dir_r(Dir) end,
     fun(Dir) -> {timeout, 120, fun() -> Test(Dir) end} end}.

wrap(V) ->
    <<W:64/signed>> = <<V:64>>,
    W.

atomics_against_a_model_test_() ->
    with_dir(fun(Dir) ->
        Path = filename:join(Dir, "words"),
        {ok, H} = iommap:open(Path, read_write, [create, {size, 64}]),
        Values = [0, 1, -1, 7, ?MIN, ?MAX, 16#5555555555555555, -16#5555555555555556],
        Ops = [{sub, fun(A, B) -> wrap(A - B) end},
               {bit_and, fun(A, B) -> A band B end},
               {bit_or, fun(A, B) -> A bor B end},
               {bit_xor, fun(A, B) -> A bxor B end},
               {exchange, fun(_, B) -> B end},
               {add, fun(A, B) -> wrap(A + B) end}],
        [begin
             ok = iommap:store(H, 8, A),
             ?assertEqual({Op, A, B, {ok, A}}, {Op, A, B, iommap:Op(H, 8, B)}),
             ?assertEqual({Op, A, B, {ok, F(A, B)}}, {Op, A, B, iommap:load(H, 8)})
         end || {Op, F} <- Ops, A <- Values, B <- Values],
        [begin
             ?assertEqual({error, einval}, iommap:Op(H, 4, 1)),
             ?assertEqual({error, out_of_bounds}, iommap:Op(H, 64, 1)),
             ?assertEqual({error, badarg}, iommap:Op(H, 0, ?MAX + 1)),
             ?assertEqual({error, badarg}, iommap:Op(H, -8, 1)),
             ?assertError(badarg, iommap:Op(H, 0, 1.0))
         end || {Op, _} <- Ops],
        ok = iommap:close(H),
        [?assertEqual({error, closed}, iommap:Op(H, 0, 1)) || {Op, _} <- Ops],
        {ok, R} = iommap:open(Path, read, []),
        [?assertEqual({error, eacces}, iommap:Op(R, 0, 1)) || {Op, _} <- Ops],
        ok = iommap:close(R)
    end).

counters_against_a_model_test_() ->
    with_dir(fun(Dir) ->
        Path = filename:join(Dir, "c"),
        {ok, C} = iommap_counters:create(Path, 3),
        ?assertEqual({ok, [0, 0, 0]}, iommap_counters:read_all(C)),
        ?assertEqual({ok, 0}, iommap_counters:inc(C, 0, 5)),
        ?assertEqual({ok, 5}, iommap_counters:dec(C, 0, 7)),
        ?assertEqual({ok, -2}, iommap_counters:read(C, 0)),
        ?assertEqual({ok, 0}, iommap_counters:set(C, 2, ?MAX)),
        ?assertEqual({ok, ?MAX}, iommap_counters:inc(C, 2, 1)),
        ?assertEqual({ok, ?MIN}, iommap_counters:read(C, 2)),
        ?assertEqual({ok, [-2, 0, ?MIN]}, iommap_counters:read_all(C)),
        ?assertEqual({error, out_of_bounds}, iommap_counters:inc(C, 3, 1)),
        ?assertEqual({error, out_of_bounds}, iommap_counters:read(C, -1)),
        ?assertError(badarg, iommap_counters:inc(C, a, 1)),
        %% the format, as a C program would read it
        {ok, Bin} = file:read_file(Path),
        ?assertEqual(<<"IOMMAPCT", 1:32/little, 32:32/little, 3:64/little, 0:64,
                       -2:64/signed-little, 0:64, ?MIN:64/signed-little>>, Bin),
        ok = iommap_counters:close(C),
        %% open again; create of the same count opens it as it is
        {ok, C2} = iommap_counters:open(Path),
        ?assertEqual({ok, [-2, 0, ?MIN]}, iommap_counters:read_all(C2)),
        {ok, C3} = iommap_counters:create(Path, 3),
        ?assertEqual({ok, -2}, iommap_counters:read(C3, 0)),
        ok = iommap_counters:close(C2),
        ok = iommap_counters:close(C3),
        ?assertEqual([], [F || F <- element(2, file:list_dir(Dir)), lists:suffix(".tmp", F)]),
        ?assertEqual({error, closed}, iommap_counters:read(C, 0))
    end).

counters_refuse_other_files_test_() ->
    with_dir(fun(Dir) ->
        Cases = [{"not_counters", <<"hello, this is not a counters file at all.......">>},
                 {"short", <<"IOMMAPCT">>},
                 {"wrong_version", <<"IOMMAPCT", 2:32/little, 32:32/little, 1:64/little, 0:64, 0:64>>},
                 {"count_past_size", <<"IOMMAPCT", 1:32/little, 32:32/little, 2:64/little, 0:64, 0:64>>},
                 {"count_zero", <<"IOMMAPCT", 1:32/little, 32:32/little, 0:64/little, 0:64>>}],
        [begin
             Path = filename:join(Dir, Name),
             ok = file:write_file(Path, Bytes),
             ?assertEqual({Name, {error, einval}}, {Name, iommap_counters:open(Path)}),
             ?assertEqual({Name, {error, einval}}, {Name, iommap_counters:create(Path, 1)}),
             ?assertEqual({Name, {ok, Bytes}}, {Name, file:read_file(Path)})
         end || {Name, Bytes} <- Cases],
        %% create with another count than the file has
        Path = filename:join(Dir, "two"),
        {ok, C} = iommap_counters:create(Path, 2),
        ok = iommap_counters:close(C),
        ?assertEqual({error, einval}, iommap_counters:create(Path, 5)),
        ?assertEqual({error, enoent}, iommap_counters:open(filename:join(Dir, "none")))
    end).

%% Two VMs, each 100,000 mixed operations on the same words of one file:
%% the final values are exactly what the operations add up to.
two_vms_count_exactly_test_() ->
    with_dir(fun(Dir) ->
        Path = filename:join(Dir, "shared"),
        {ok, C} = iommap_counters:create(Path, 4),
        {ok, Peer, _} = peer:start_link(#{connection => standard_io,
                                       args => ["-pa", filename:dirname(code:which(iommap)),
                                                "-pa", filename:dirname(code:which(?MODULE))]}),
        Self = self(),
        N = 100000,
        spawn_link(fun() -> Self ! {peer, peer:call(Peer, ?MODULE, work, [Path, N, 2], 120000)} end),
        Mine = work(Path, N, 1),
        Theirs = receive {peer, R} -> R after 120000 -> error(peer_timeout) end,
        peer:stop(Peer),
        {ok, Got} = iommap_counters:read_all(C),
        ?assertEqual([wrap(A + B) || {A, B} <- lists:zip(element(1, Mine), element(1, Theirs))], lists:sublist(Got, 3)),
        ?assertEqual({ok, element(2, Mine) bxor element(2, Theirs)}, iommap_counters:read(C, 3)),
        ok = iommap_counters:close(C)
    end).

%% @private The work of one VM: N operations on counters 0-2 (inc, dec)
%% and word 3 (bit_xor through the raw API); returns what it added to
%% each, and the xor of what it flipped.
-spec work(file:filename(), pos_integer(), integer()) -> {[integer()], integer()}.
work(Path, N, Seed) ->
    rand:seed(exsss, {Seed, Seed, Seed}),
    {ok, C} = iommap_counters:open(Path),
    {ok, H} = iommap:open(Path, read_write, []),
    Result = work(C, H, N, {0, 0, 0}, 0),
    ok = iommap:close(H),
    ok = iommap_counters:close(C),
    Result.

work(_, _, 0, {A, B, D}, X) ->
    {[A, B, D], X};
work(C, H, K, Sums, X) ->
    I = rand:uniform(3) - 1,
    By = rand:uniform(1000),
    case rand:uniform(3) of
        1 ->
            {ok, _} = iommap_counters:inc(C, I, By),
            work(C, H, K - 1, setelement(I + 1, Sums, element(I + 1, Sums) + By), X);
        2 ->
            {ok, _} = iommap_counters:dec(C, I, By),
            work(C, H, K - 1, setelement(I + 1, Sums, element(I + 1, Sums) - By), X);
        3 ->
            Bits = rand:uniform(1 bsl 40),
            {ok, _} = iommap:bit_xor(H, 32 + 8 * 3, Bits),
            work(C, H, K - 1, Sums, X bxor Bits)
    end.

%% The atomics against a concurrent truncate and close: each answer is the
%% old value or one of the documented errors, and the engine is the same.
atomics_race_truncate_and_close_test_() ->
    with_dir(fun(Dir) ->
        Path = filename:join(Dir, "race"),
        Engine = iommap_test_lib:engine_os_pid(),
        [begin
             {ok, H} = iommap:open(Path, read_write, [create, {size, 8192}]),
             Self = self(),
             Workers = [spawn_monitor(fun() -> Self ! {self(), hammer(H, Op, 300, [])} end)
                        || Op <- [sub, bit_and, bit_or, bit_xor, exchange]],
             ok = iommap:truncate(H, 64),
             ok = iommap:truncate(H, 8192),
             ok = iommap:close(H),
             Answers = lists:append([receive {Pid, A} -> A end || {Pid, _} <- Workers]),
             Bad = [A || A <- Answers, not allowed(A)],
             ?assertEqual([], Bad),
             ?assert(lists:member({error, closed}, Answers) orelse length(Answers) =:= 1500)
         end || _ <- lists:seq(1, 5)],
        ?assertEqual(Engine, iommap_test_lib:engine_os_pid())
    end).

hammer(_, _, 0, Acc) -> Acc;
hammer(H, Op, N, Acc) -> hammer(H, Op, N - 1, [iommap:Op(H, 8 * (N rem 1024), N) | Acc]).

allowed({ok, V}) -> is_integer(V);
allowed({error, R}) -> lists:member(R, [closed, out_of_bounds, sigbus]);
allowed(_) -> false.
