%% Beyond the NIF: vectored I/O, atomics, range sync, residency.
-module(iommap_beyond_tests).
-include_lib("eunit/include/eunit.hrl").

%% One test per function below, each in a directory of its own (see
%% iommap_test_lib:in_tmp_dirs/1), removed after it however it ends.
beyond_test_() ->
    iommap_test_lib:in_tmp_dirs(
      [fun pread_many/1,
       fun pread_many_modes_and_limits/1,
       fun pread_many_equals_pread/1,
       fun pwrite_many/1,
       fun pwrite_many_sigbus/1,
       fun atomics/1,
       fun atomics_modes/1,
       fun atomics_from_many_processes/1,
       fun sync_range/1,
       fun resident_and_populate/1
      ]).

%% A read_write handle of the file D/Name holding Bytes, and the file's path.
open_with(D, Name, Bytes) ->
    P = iommap_test_lib:file_in(D, Name, Bytes),
    {ok, H} = iommap:open(P, read_write, []),
    {H, P}.

pread_many(D) ->
    {H, _} = open_with(D, "f", <<"0123456789">>),
    ?assertEqual({ok, [<<"01">>, <<"89">>, <<>>, <<"5">>]},
                 iommap:pread_many(H, [{0, 2}, {8, 2}, {10, 0}, {5, 1}])),
    ?assertEqual({ok, []}, iommap:pread_many(H, [])),
    ?assertEqual({error, out_of_bounds}, iommap:pread_many(H, [{0, 2}, {9, 2}])),
    ?assertEqual({error, badarg}, iommap:pread_many(H, [{0, 2}, {-1, 2}])),
    ?assertEqual({error, badarg}, iommap:pread_many(H, [{0, -2}])),
    ?assertError(badarg, iommap:pread_many(H, [{0, 2} | bad])),
    ?assertError(badarg, iommap:pread_many(H, [{0, x}])),
    ?assertError(badarg, iommap:pread_many(H, [{0, 1, 2}])),
    ?assertError(badarg, iommap:pread_many(H, not_a_list)),
    ok = iommap:close(H),
    ?assertEqual({error, closed}, iommap:pread_many(H, [{0, 1}])).

pread_many_modes_and_limits(D) ->
    P = iommap_test_lib:file_in(D, "f", <<"0123456789">>),
    {ok, W} = iommap:open(P, write, []),
    ?assertEqual({error, eacces}, iommap:pread_many(W, [{0, 1}])),
    ?assertEqual({error, eacces}, iommap:pread_many(W, [{1 bsl 20000, 0}])), % mode before bounds
    ok = iommap:close(W),
    {ok, H} = iommap:open(P, read_write, []),
    ?assertEqual({error, out_of_bounds}, iommap:pread_many(H, [{0, 1}, {1 bsl 20000, 0}])),
    MiB = binary:copy(<<0>>, 1 bsl 20),
    %% 2 GiB + 1 MiB of iodata from one binary: refused before sending,
    %% bounds first (iommap_attack_SUITE has the enomem of one in bounds)
    ?assertEqual({error, out_of_bounds}, iommap:pwrite_many(H, [{0, lists:duplicate(2049, MiB)}])),
    ?assertEqual({error, out_of_bounds}, iommap:pwrite_many(H, [{1 bsl 20000, <<>>}])),
    ok = iommap:close(H).

pread_many_equals_pread(D) ->
    Bytes = crypto:strong_rand_bytes(200000),
    {H, _} = open_with(D, "f", Bytes),
    Rs = [{rand:uniform(190000), rand:uniform(10000)} || _ <- lists:seq(1, 64)],
    Want = [binary:part(Bytes, O, L) || {O, L} <- Rs],
    ?assertEqual({ok, Want}, iommap:pread_many(H, Rs)),
    ?assertEqual([{ok, B} || B <- Want], [iommap:pread(H, O, L) || {O, L} <- Rs]),
    ok = iommap:close(H).

pwrite_many(D) ->
    {H, P} = open_with(D, "f", <<"0123456789">>),
    ?assertEqual(ok, iommap:pwrite_many(H, [{0, <<"ab">>}, {1, [$Z]}, {9, [[<<"!">>]]}])),
    ?assertEqual({ok, <<"aZ2345678!">>}, file:read_file(P)),
    ?assertEqual(ok, iommap:pwrite_many(H, [])),
    %% all or nothing on bounds
    ?assertEqual({error, out_of_bounds}, iommap:pwrite_many(H, [{0, <<"xx">>}, {9, <<"yy">>}])),
    ?assertEqual({ok, <<"aZ2345678!">>}, file:read_file(P)),
    ?assertEqual({error, badarg}, iommap:pwrite_many(H, [{-1, <<"x">>}])),
    ?assertError(badarg, iommap:pwrite_many(H, [{0, atom}])),
    ?assertError(badarg, iommap:pwrite_many(H, [{0, [256]}])),
    ok = iommap:close(H),
    {ok, R} = iommap:open(P, read, []),
    ?assertEqual({error, eacces}, iommap:pwrite_many(R, [{0, <<"x">>}])),
    ok = iommap:close(R).

pwrite_many_sigbus(D) ->
    {H, P} = open_with(D, "f", <<0:(3 * 4096 * 8)>>),
    ok = file:write_file(P, <<0:(4096 * 8)>>),
    ?assertEqual({error, sigbus}, iommap:pwrite_many(H, [{0, <<"kept">>}, {2 * 4096, <<"lost">>}])),
    ?assertEqual({ok, <<"kept">>}, iommap:pread(H, 0, 4)),
    ok = iommap:close(H).

atomics(D) ->
    {H, P} = open_with(D, "f", <<0:(64 * 8)>>),
    ?assertEqual({ok, 0}, iommap:add(H, 8, 5)),
    ?assertEqual({ok, 5}, iommap:add(H, 8, -7)),
    ?assertEqual({ok, -2}, iommap:load(H, 8)),
    {ok, Raw} = file:read_file(P),
    ?assertEqual(<<-2:64/little-signed>>, binary:part(Raw, 8, 8)),
    ?assertEqual({error, {mismatch, -2}}, iommap:compare_exchange(H, 8, 0, 1)),
    ?assertEqual(ok, iommap:compare_exchange(H, 8, -2, 1 bsl 62)),
    ?assertEqual({ok, 1 bsl 62}, iommap:load(H, 8)),
    ?assertEqual(ok, iommap:store(H, 8, -(1 bsl 63))),
    ?assertEqual({ok, -(1 bsl 63)}, iommap:load(H, 8)),
    ?assertEqual({ok, -(1 bsl 63)}, iommap:add(H, 8, -1)), % wraps
    ?assertEqual({ok, (1 bsl 63) - 1}, iommap:load(H, 8)),
    ?assertEqual({error, einval}, iommap:load(H, 4)),
    ?assertEqual({error, einval}, iommap:add(H, 12, 1)),
    ?assertEqual({error, out_of_bounds}, iommap:store(H, 64, 1)),
    ?assertEqual(ok, iommap:store(H, 56, 1)),
    ?assertEqual({error, badarg}, iommap:store(H, 8, 1 bsl 63)),
    ?assertEqual({error, badarg}, iommap:add(H, -8, 1)),
    ?assertError(badarg, iommap:add(H, 8, 1.0)),
    ?assertError(badarg, iommap:load(H, x)),
    ok = iommap:close(H),
    ?assertEqual({error, closed}, iommap:load(H, 0)).

atomics_modes(D) ->
    P = iommap_test_lib:file_in(D, "f", <<0:(16 * 8)>>),
    {ok, R} = iommap:open(P, read, []),
    {ok, W} = iommap:open(P, write, []),
    ?assertEqual({ok, 0}, iommap:load(R, 0)),
    ?assertEqual({error, eacces}, iommap:store(R, 0, 1)),
    ?assertEqual({error, eacces}, iommap:add(R, 0, 1)),
    ?assertEqual({error, eacces}, iommap:compare_exchange(R, 0, 0, 1)),
    ?assertEqual(ok, iommap:store(W, 0, 7)),
    ?assertEqual({error, eacces}, iommap:load(W, 0)),
    ?assertEqual({error, eacces}, iommap:add(W, 0, 1)),
    ?assertEqual({ok, 7}, iommap:load(R, 0)),
    ok = iommap:close(R), ok = iommap:close(W).

atomics_from_many_processes(D) ->
    {H, _} = open_with(D, "f", <<0:(16 * 8)>>),
    Self = self(),
    Ps = [spawn_link(fun() -> [{ok, _} = iommap:add(H, 8, 1) || _ <- lists:seq(1, 2000)], Self ! done end)
          || _ <- lists:seq(1, 8)],
    [receive done -> ok end || _ <- Ps],
    ?assertEqual({ok, 16000}, iommap:load(H, 8)),
    ok = iommap:close(H).

sync_range(D) ->
    {H, P} = open_with(D, "f", <<0:(4 * 4096 * 8)>>),
    ok = iommap:pwrite(H, 5000, <<"record">>),
    ?assertEqual(ok, iommap:sync(H, 5000, 6, sync)),
    ?assertEqual(ok, iommap:sync(H, 4095, 2, async)),
    ?assertEqual(ok, iommap:sync(H, 0, 0, sync)),
    ?assertEqual({error, out_of_bounds}, iommap:sync(H, 4 * 4096, 1, sync)),
    ?assertEqual({error, badarg}, iommap:sync(H, -1, 1, sync)),
    ?assertError(badarg, iommap:sync(H, 0, 1, later)),
    {ok, Disk} = file:read_file(P),
    ?assertEqual(<<"record">>, binary:part(Disk, 5000, 6)),
    ok = iommap:close(H).

resident_and_populate(D) ->
    {H, _} = open_with(D, "f", <<0:(8 * 4096 * 8)>>),
    ?assertEqual(ok, iommap:advise(H, 0, 4 * 4096, populate_read)),
    ?assertEqual({ok, 4 * 4096}, iommap:resident(H, 0, 4 * 4096)),
    ?assertEqual({ok, 100}, iommap:resident(H, 10, 100)),
    ?assertEqual({ok, 0}, iommap:resident(H, 8 * 4096, 0)),
    ?assertEqual({error, out_of_bounds}, iommap:resident(H, 0, 8 * 4096 + 1)),
    ?assertEqual(ok, iommap:advise(H, 0, 4096, populate_write)),
    ?assertEqual({error, einval}, iommap:advise(H, 1, 4096, populate_read)),
    ok = iommap:close(H).
