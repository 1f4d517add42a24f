%% The block store (iommap_blocks) against a model, its file format as
%% another program reads it, corrupted blocks, refused files, and the
%% errors of each call.
-module(iommap_blocks_tests).

-include_lib("eunit/include/eunit.hrl").

blocks_test_() ->
    iommap_test_lib:in_tmp_dirs(
      [fun matches_a_model/1, fun the_format_is_as_documented/1, fun a_flipped_byte_is_ebadmsg/1,
       fun other_files_are_refused_unchanged/1, fun create_opens_an_existing_store/1,
       fun errors_of_each_call/1, fun durable_store_answers_the_same/1]).

%% Random operations through two values of one file, one reopened now and
%% then, against a map: every answer (full exactly when every block is
%% live; einval for a free block, out_of_bounds past the last), and fold
%% equal to the map.
matches_a_model(Dir) ->
    [run_model(Dir, Seed) || Seed <- lists:seq(1, 5)].

run_model(Dir, Seed) ->
    rand:seed(exsss, {Seed, 3, 5}),
    Size = rand:uniform(50),
    Cap = rand:uniform(140),
    Path = filename:join(Dir, "model" ++ integer_to_list(Seed)),
    {ok, B0} = iommap_blocks:create(Path, Size, Cap),
    {ok, B1} = iommap_blocks:open(Path),
    {Bs, Stats} = model_ops(1500, {B0, B1}, Path, Size, Cap, #{}, #{}),
    [ok = iommap_blocks:close(B) || B <- tuple_to_list(Bs)],
    ?assertMatch({true, true}, {maps:get(full, Stats, 0) > 0, maps:get(freed, Stats, 0) > 0}).

model_ops(0, Bs, _, _, _, _, Stats) ->
    {Bs, Stats};
model_ops(K, Bs, Path, Size, Cap, M, Stats) ->
    B = element(rand:uniform(2), Bs),
    Addr = case maps:size(M) > 0 andalso rand:uniform(3) > 1 of
               true -> lists:nth(rand:uniform(maps:size(M)), maps:keys(M));
               false -> rand:uniform(Cap + 2) - 1
           end,
    Expect = fun(Ok) ->
                     case {Addr >= Cap, maps:is_key(Addr, M)} of
                         {true, _} -> {error, out_of_bounds};
                         {false, false} -> {error, einval};
                         {false, true} -> Ok
                     end
             end,
    Bump = fun(Key) -> maps:update_with(Key, fun(V) -> V + 1 end, 1, Stats) end,
    case rand:uniform(8) of
        N when N =< 3 ->
            Bin = rand:bytes(Size),
            case iommap_blocks:store(B, Bin) of
                {ok, A} ->
                    ?assert(A >= 0 andalso A < Cap andalso not maps:is_key(A, M)),
                    model_ops(K - 1, Bs, Path, Size, Cap, M#{A => Bin}, Stats);
                {error, full} ->
                    ?assertEqual(Cap, maps:size(M)),
                    model_ops(K - 1, Bs, Path, Size, Cap, M, Bump(full))
            end;
        4 ->
            ?assertEqual({error, badarg}, iommap_blocks:store(B, rand:bytes(Size + 1))),
            model_ops(K - 1, Bs, Path, Size, Cap, M, Stats);
        N when N =< 6 ->
            ?assertEqual(Expect(ok), iommap_blocks:free(B, Addr)),
            model_ops(K - 1, Bs, Path, Size, Cap, maps:remove(Addr, M), Bump(freed));
        7 ->
            ?assertEqual(Expect({ok, maps:get(Addr, M, none)}), iommap_blocks:read(B, Addr)),
            model_ops(K - 1, Bs, Path, Size, Cap, M, Stats);
        _ ->
            I = rand:uniform(2),
            ok = iommap_blocks:close(element(I, Bs)),
            {ok, New} = iommap_blocks:open(Path),
            {ok, Folded} = iommap_blocks:fold(fun(A, Bin, Acc) -> [{A, Bin} | Acc] end, [], New),
            ?assertEqual(lists:sort(maps:to_list(M)), lists:reverse(Folded)),
            model_ops(K - 1, setelement(I, Bs, New), Path, Size, Cap, M, Stats)
    end.

%% The file as a C program reads it: header, bitmap, slots.
the_format_is_as_documented(Dir) ->
    Path = filename:join(Dir, "b"),
    {ok, B} = iommap_blocks:create(Path, 5, 70),
    {ok, 0} = iommap_blocks:store(B, <<"zero!">>),
    {ok, 1} = iommap_blocks:store(B, <<"one!!">>),
    {ok, 2} = iommap_blocks:store(B, <<"two!!">>),
    ok = iommap_blocks:free(B, 1),
    {ok, F} = file:read_file(Path),
    ?assertEqual(4096 + 70 * 16, byte_size(F)),
    <<Fixed:52/binary, Crc:32/little, _Hint:64, _:64/binary, Bitmap:16/binary, _/binary>> = F,
    ?assertEqual(<<"IOMMAPBK", 1:32/little, 128:32/little, 5:64/little, 70:64/little,
                   16:64/little, 4096:64/little, 0:32>>, Fixed),
    ?assertEqual(iommap_queue_tests:crc32c(Fixed), Crc),
    ?assertEqual(<<2#101:64/little, 0:64>>, Bitmap),
    Slot = fun(A) -> binary:part(F, 4096 + 16 * A, 16) end,
    ?assertEqual(<<(iommap_queue_tests:crc32c(<<0:64/little, 5:64/little, "zero!">>)):32/little, 0:32,
                   "zero!", 0:24>>, Slot(0)),
    ?assertEqual(<<(iommap_queue_tests:crc32c(<<2:64/little, 5:64/little, "two!!">>)):32/little, 0:32,
                   "two!!", 0:24>>, Slot(2)),
    ok = iommap_blocks:close(B).

a_flipped_byte_is_ebadmsg(Dir) ->
    Path = filename:join(Dir, "b"),
    {ok, B} = iommap_blocks:create(Path, 100, 10),
    [{ok, A} = iommap_blocks:store(B, binary:copy(<<A>>, 100)) || A <- [0, 1, 2]],
    {ok, F} = file:open(Path, [read, write, raw, binary]),
    At = 4096 + 112 + 8 + 50, % block 1's data
    {ok, <<X>>} = file:pread(F, At, 1),
    ok = file:pwrite(F, At, <<(X bxor 4)>>),
    ok = file:close(F),
    ?assertEqual({error, ebadmsg}, iommap_blocks:read(B, 1)),
    ?assertEqual({error, ebadmsg}, iommap_blocks:fold(fun(_, _, Acc) -> Acc end, 0, B)),
    ?assertEqual({ok, binary:copy(<<2>>, 100)}, iommap_blocks:read(B, 2)),
    ?assertEqual(ok, iommap_blocks:free(B, 1)),
    ?assertEqual({ok, 2}, iommap_blocks:fold(fun(_, _, Acc) -> Acc + 1 end, 0, B)),
    ok = iommap_blocks:close(B).

other_files_are_refused_unchanged(Dir) ->
    {ok, B} = iommap_blocks:create(filename:join(Dir, "good"), 8, 8),
    ok = iommap_blocks:close(B),
    {ok, G} = file:read_file(filename:join(Dir, "good")),
    {ok, Q} = iommap_queue:create(filename:join(Dir, "queue"), 8192),
    ok = iommap_queue:close(Q),
    {ok, QueueBytes} = file:read_file(filename:join(Dir, "queue")),
    Reseal = fun(Fixed) -> <<Fixed/binary, (iommap_queue_tests:crc32c(Fixed)):32/little,
                             (binary:part(G, 56, byte_size(G) - 56))/binary>> end,
    Cases = [{"text", <<"not a block store, not at all, no......................................">>},
             {"queue", QueueBytes},
             {"zeros", binary:copy(<<0>>, byte_size(G))},
             {"version_2", Reseal(<<"IOMMAPBK", 2:32/little, 128:32/little, 8:64/little, 8:64/little,
                                    16:64/little, 4096:64/little, 0:32>>)},
             {"another_slot", Reseal(<<"IOMMAPBK", 1:32/little, 128:32/little, 8:64/little, 8:64/little,
                                       24:64/little, 4096:64/little, 0:32>>)},
             {"header_only", binary:part(G, 0, 128)},
             {"longer", <<G/binary, 0>>}],
    [begin
         Path = iommap_test_lib:file_in(Dir, Name, Bytes),
         ?assertEqual({Name, {error, einval}}, {Name, iommap_blocks:open(Path)}),
         ?assertEqual({Name, {error, einval}}, {Name, iommap_blocks:create(Path, 8, 8)}),
         ?assertEqual({Name, {ok, Bytes}}, {Name, file:read_file(Path)})
     end || {Name, Bytes} <- Cases].

create_opens_an_existing_store(Dir) ->
    Path = filename:join(Dir, "b"),
    {ok, B} = iommap_blocks:create(Path, 16, 4),
    {ok, A} = iommap_blocks:store(B, binary:copy(<<"x">>, 16)),
    {ok, B2} = iommap_blocks:create(Path, 16, 4),
    ?assertEqual({ok, binary:copy(<<"x">>, 16)}, iommap_blocks:read(B2, A)),
    ?assertEqual({error, einval}, iommap_blocks:create(Path, 16, 5)),
    ?assertEqual({error, einval}, iommap_blocks:create(Path, 8, 4)),
    ok = iommap_blocks:close(B),
    ok = iommap_blocks:close(B2),
    ?assertEqual([], [F || F <- element(2, file:list_dir(Dir)), lists:suffix(".tmp", F)]).

errors_of_each_call(Dir) ->
    {ok, B} = iommap_blocks:create(filename:join(Dir, "b"), 4, 2),
    ?assertEqual({error, badarg}, iommap_blocks:store(B, <<"abc">>)),
    ?assertEqual({error, badarg}, iommap_blocks:store(B, <<>>)),
    ?assertError(badarg, iommap_blocks:store(B, "abcd")),
    ?assertError(badarg, iommap_blocks:read(B, 1.0)),
    ?assertError(badarg, iommap_blocks:create("x", 0, 1)),
    ?assertError(badarg, iommap_blocks:create("x", 1, 0)),
    ?assertEqual({error, einval}, iommap_blocks:create(filename:join(Dir, "huge"), (1 bsl 30) + 1, 1)),
    ?assertEqual({error, badarg}, iommap_blocks:read(B, -1)),
    ?assertEqual({error, badarg}, iommap_blocks:free(B, -1)),
    ?assertEqual({error, out_of_bounds}, iommap_blocks:read(B, 2)),
    ?assertEqual({error, out_of_bounds}, iommap_blocks:free(B, 1 bsl 70)),
    ?assertEqual({error, einval}, iommap_blocks:read(B, 0)),
    ?assertEqual({error, einval}, iommap_blocks:free(B, 1)),
    {ok, 0} = iommap_blocks:store(B, <<"abcd">>),
    {ok, 1} = iommap_blocks:store(B, <<"efgh">>),
    ?assertEqual({error, full}, iommap_blocks:store(B, <<"ijkl">>)),
    ok = iommap_blocks:free(B, 0),
    ?assertEqual({error, einval}, iommap_blocks:free(B, 0)),
    ?assertEqual({ok, 0}, iommap_blocks:store(B, <<"ijkl">>)),
    ok = iommap_blocks:sync(B),
    ok = iommap_blocks:close(B),
    [?assertEqual({error, closed}, R)
     || R <- [iommap_blocks:store(B, <<"mnop">>), iommap_blocks:read(B, 0), iommap_blocks:free(B, 0),
              iommap_blocks:sync(B), iommap_blocks:close(B),
              iommap_blocks:fold(fun(_, _, A) -> A end, 0, B)]].

durable_store_answers_the_same(Dir) ->
    Path = filename:join(Dir, "b"),
    {ok, B} = iommap_blocks:create(Path, 5000, 8, [durable]),
    Addrs = [begin {ok, A} = iommap_blocks:store(B, binary:copy(<<I>>, 5000)), A end || I <- lists:seq(1, 8)],
    [ok = iommap_blocks:free(B, A) || A <- lists:sublist(Addrs, 4)],
    ok = iommap_blocks:close(B),
    {ok, B2} = iommap_blocks:open(Path, [durable]),
    ?assertEqual({ok, [{A, binary:copy(<<(A + 1)>>, 5000)} || A <- lists:seq(4, 7)]},
                 iommap_blocks:fold(fun(A, Bin, Acc) -> Acc ++ [{A, Bin}] end, [], B2)),
    ok = iommap_blocks:close(B2).
