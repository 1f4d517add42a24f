%% The persistent queue (iommap_queue) against a model, its file format as
%% another program reads it, a full ring that wraps many times, corrupted
%% records, refused files, and the errors of each call.
-module(iommap_queue_tests).

-include_lib("eunit/include/eunit.hrl").

-export([crc32c/1, frame/1]).

queue_test_() ->
    iommap_test_lib:in_tmp_dirs(
      [fun matches_a_model/1, fun the_format_is_as_documented/1, fun a_full_ring_wraps_many_times/1,
       fun push_many_is_all_or_nothing/1, fun a_flipped_byte_is_ebadmsg_at_pop/1,
       fun other_files_are_refused_unchanged/1, fun create_opens_an_existing_queue/1,
       fun errors_of_each_call/1, fun at_least_once_with_peek_ref_and_ack/1,
       fun durable_queue_answers_the_same/1, fun fold_reads_in_chunks/1]).

%% The bytes a record of N bytes takes in the ring.
-spec frame(non_neg_integer()) -> pos_integer().
frame(N) -> 16 + ((N + 7) band (bnot 7)).

%% Random operations through two queue values of one file (two open file
%% descriptions in the engine), one reopened now and then, against a model
%% (the records and the bytes their frames take): every answer, and full
%% exactly when the model says the frames do not fit.
matches_a_model(Dir) ->
    [run_model(Dir, Seed) || Seed <- lists:seq(1, 6)].

run_model(Dir, Seed) ->
    rand:seed(exsss, {Seed, 17, 42}),
    Cap = 8 * (8 + rand:uniform(150)),
    Path = filename:join(Dir, "model" ++ integer_to_list(Seed)),
    {ok, Q0} = iommap_queue:create(Path, Cap),
    {ok, Q1} = iommap_queue:open(Path),
    {Qs, Stats} = model_ops(1500, {Q0, Q1}, Path, Cap, {[], 0}, #{}),
    [ok = iommap_queue:close(Q) || Q <- tuple_to_list(Qs)],
    %% the run filled the ring, and went round it
    ?assertMatch({true, true, true}, {maps:get(full, Stats, 0) > 0, maps:get(acked, Stats, 0) > 0,
                                      maps:get(popped_bytes, Stats, 0) > 3 * Cap}).

model_ops(0, Qs, _, _, _, Stats) ->
    {Qs, Stats};
model_ops(K, Qs, Path, Cap, {Recs, Used} = M, Stats) ->
    Q = element(rand:uniform(2), Qs),
    Rec = fun() -> rand:bytes(rand:uniform(Cap div 3 + 1) - 1) end,
    Fits = fun(Bins) -> Used + lists:sum([frame(byte_size(B)) || B <- Bins]) =< Cap end,
    Popped = fun(N) ->
                     {Out, Rest} = lists:split(min(N, length(Recs)), Recs),
                     {Out, {Rest, Used - lists:sum([frame(byte_size(B)) || B <- Out])}}
             end,
    Bump = fun(Key, By) -> maps:update_with(Key, fun(V) -> V + By end, By, Stats) end,
    case rand:uniform(10) of
        N when N =< 2 ->
            B = Rec(),
            case Fits([B]) of
                true ->
                    ?assertEqual(ok, iommap_queue:push(Q, B)),
                    model_ops(K - 1, Qs, Path, Cap, {Recs ++ [B], Used + frame(byte_size(B))}, Stats);
                false ->
                    ?assertEqual({error, full}, iommap_queue:push(Q, B)),
                    model_ops(K - 1, Qs, Path, Cap, M, Bump(full, 1))
            end;
        3 ->
            Bs = [Rec() || _ <- lists:seq(1, rand:uniform(5) - 1)],
            case Fits(Bs) of
                true ->
                    ?assertEqual(ok, iommap_queue:push_many(Q, Bs)),
                    model_ops(K - 1, Qs, Path, Cap,
                              {Recs ++ Bs, Used + lists:sum([frame(byte_size(B)) || B <- Bs])}, Stats);
                false ->
                    ?assertEqual({error, full}, iommap_queue:push_many(Q, Bs)),
                    model_ops(K - 1, Qs, Path, Cap, M, Bump(full, 1))
            end;
        4 ->
            {Out, M1} = Popped(1),
            ?assertEqual(case Out of [B] -> {ok, B}; [] -> empty end, iommap_queue:pop(Q)),
            model_ops(K - 1, Qs, Path, Cap, M1, Bump(popped_bytes, Used - element(2, M1)));
        5 ->
            N = rand:uniform(5) - 1,
            {Out, M1} = Popped(N),
            ?assertEqual({ok, Out}, iommap_queue:pop_many(Q, N)),
            model_ops(K - 1, Qs, Path, Cap, M1, Bump(popped_bytes, Used - element(2, M1)));
        6 ->
            ?assertEqual(case Recs of [B | _] -> {ok, B}; [] -> empty end, iommap_queue:peek(Q)),
            model_ops(K - 1, Qs, Path, Cap, M, Stats);
        7 ->
            case iommap_queue:peek_ref(Q) of
                empty ->
                    ?assertEqual([], Recs),
                    model_ops(K - 1, Qs, Path, Cap, M, Stats);
                {ok, Ref, B} ->
                    ?assertEqual(hd(Recs), B),
                    ?assertEqual(ok, iommap_queue:ack(element(rand:uniform(2), Qs), Ref)),
                    ?assertEqual(ok, iommap_queue:ack(Q, Ref)), % gone already: ok
                    {_, M1} = Popped(1),
                    model_ops(K - 1, Qs, Path, Cap, M1, Bump(acked, 1))
            end;
        8 ->
            ?assertEqual({ok, length(Recs)}, iommap_queue:len(Q)),
            ?assertEqual({ok, lists:reverse(Recs)}, iommap_queue:fold(fun(B, A) -> [B | A] end, [], Q)),
            model_ops(K - 1, Qs, Path, Cap, M, Stats);
        _ ->
            I = rand:uniform(2),
            ok = iommap_queue:close(element(I, Qs)),
            {ok, New} = iommap_queue:open(Path),
            model_ops(K - 1, setelement(I, Qs, New), Path, Cap, M, Stats)
    end.

%% The file as a C program reads it: the header, the commit words and a
%% record's frame.
the_format_is_as_documented(Dir) ->
    Path = filename:join(Dir, "q"),
    {ok, Q} = iommap_queue:create(Path, 61), % rounded up to 64
    ok = iommap_queue:push_many(Q, [<<"abc">>, <<>>]),
    {ok, <<"abc">>} = iommap_queue:pop(Q),
    {ok, F} = file:read_file(Path),
    ?assertEqual(4096 + 64, byte_size(F)),
    <<Fixed:28/binary, Crc:32/little, _/binary>> = F,
    ?assertEqual(<<"IOMMAPQU", 1:32/little, 4096:32/little, 64:64/little, 0:32>>, Fixed),
    ?assertEqual(crc32c(Fixed), Crc),
    %% head, tail, count, and no intent left
    ?assertEqual(<<24:64/little, 40:64/little, 1:64/little, 0:64/little>>, binary:part(F, 64, 32)),
    <<_:4096/binary, Frame1:24/binary, Frame2:16/binary, _/binary>> = F,
    ?assertEqual(<<3:64/little, (crc32c(<<0:64/little, 3:64/little, "abc">>)):32/little, 0:32, "abc", 0:40>>,
                 Frame1),
    ?assertEqual(<<0:64/little, (crc32c(<<24:64/little, 0:64/little>>)):32/little, 0:32>>, Frame2),
    ok = iommap_queue:close(Q).

%% CRC32C (Castagnoli), bit by bit, as another program would compute it.
-spec crc32c(binary()) -> non_neg_integer().
crc32c(Bin) -> crc32c(Bin, 16#FFFFFFFF) bxor 16#FFFFFFFF.

crc32c(<<B, Rest/binary>>, C) -> crc32c(Rest, crc_bits(C bxor B, 8));
crc32c(<<>>, C) -> C.

crc_bits(C, 0) -> C;
crc_bits(C, K) when C band 1 =:= 1 -> crc_bits((C bsr 1) bxor 16#82F63B78, K - 1);
crc_bits(C, K) -> crc_bits(C bsr 1, K - 1).

%% Pushed until full, popped until empty, 300 times round a ring of 1000
%% bytes, with records of every length mod 8 so frames straddle its end at
%% every offset.
a_full_ring_wraps_many_times(Dir) ->
    Path = filename:join(Dir, "ring"),
    {ok, Q} = iommap_queue:create(Path, 1000),
    Rec = fun(I) -> binary:copy(<<I:8>>, 1 + I rem 45) end,
    Fill = fun Fill(I) ->
                   case iommap_queue:push(Q, Rec(I)) of
                       ok -> Fill(I + 1);
                       {error, full} -> I
                   end
           end,
    Drain = fun Drain(I, Max) ->
                    case iommap_queue:pop_many(Q, Max) of
                        {ok, []} -> I;
                        {ok, Bins} ->
                            ?assertEqual([Rec(J) || J <- lists:seq(I, I + length(Bins) - 1)], Bins),
                            Drain(I + length(Bins), Max)
                    end
            end,
    Laps = lists:foldl(fun(Lap, I) ->
                               Pushed = Fill(I),
                               ?assert(Pushed > I),
                               ?assertEqual(Pushed, Drain(I, 1 + Lap rem 7)),
                               Pushed
                       end, 0, lists:seq(1, 300)),
    {ok, F} = file:open(Path, [read, raw, binary]),
    {ok, <<Head:64/little>>} = file:pread(F, 64, 8),
    ok = file:close(F),
    ?assert(Head >= 250 * 1000), % the ring went round that many times
    ?assert(Laps > 300 * 10),
    ok = iommap_queue:close(Q).

push_many_is_all_or_nothing(Dir) ->
    {ok, Q} = iommap_queue:create(filename:join(Dir, "q"), 64),
    ?assertEqual({error, full}, iommap_queue:push_many(Q, [<<1>>, <<2>>, <<3>>])), % 3 x 24 bytes
    ?assertEqual({ok, 0}, iommap_queue:len(Q)),
    ?assertEqual(ok, iommap_queue:push_many(Q, [<<1>>, <<2>>, <<>>])), % 24 + 24 + 16
    ?assertEqual({error, full}, iommap_queue:push(Q, <<>>)),
    ?assertEqual({ok, [<<1>>, <<2>>, <<>>]}, iommap_queue:pop_many(Q, 5)),
    ?assertEqual({error, full}, iommap_queue:push(Q, binary:copy(<<0>>, 49))), % larger than the ring
    ?assertEqual(ok, iommap_queue:push(Q, binary:copy(<<0>>, 48))),
    ?assertEqual(ok, iommap_queue:push_many(Q, [])),
    ok = iommap_queue:close(Q).

%% A byte flipped in the second record on the disk: the first pops, the
%% second gives ebadmsg at pop, peek and fold, and stays; nothing changes.
a_flipped_byte_is_ebadmsg_at_pop(Dir) ->
    Path = filename:join(Dir, "q"),
    {ok, Q} = iommap_queue:create(Path, 4096),
    ok = iommap_queue:push_many(Q, [<<"first">>, <<"second record">>, <<"third">>]),
    {ok, F} = file:open(Path, [read, write, raw, binary]),
    {ok, <<B>>} = file:pread(F, 4096 + 24 + 16 + 3, 1),
    ok = file:pwrite(F, 4096 + 24 + 16 + 3, <<(B bxor 1)>>),
    ok = file:close(F),
    ?assertEqual({ok, [<<"first">>]}, iommap_queue:pop_many(Q, 3)),
    ?assertEqual({error, ebadmsg}, iommap_queue:pop(Q)),
    ?assertEqual({error, ebadmsg}, iommap_queue:pop_many(Q, 3)),
    ?assertEqual({error, ebadmsg}, iommap_queue:peek(Q)),
    ?assertEqual({error, ebadmsg}, iommap_queue:fold(fun(X, A) -> [X | A] end, [], Q)),
    ?assertEqual({ok, 2}, iommap_queue:len(Q)),
    ok = iommap_queue:close(Q).

other_files_are_refused_unchanged(Dir) ->
    Good = filename:join(Dir, "good"),
    {ok, Q} = iommap_queue:create(Good, 64),
    ok = iommap_queue:close(Q),
    {ok, G} = file:read_file(Good),
    {ok, Blk} = iommap_blocks:create(filename:join(Dir, "blocks"), 8, 8),
    ok = iommap_blocks:close(Blk),
    {ok, BlocksBytes} = file:read_file(filename:join(Dir, "blocks")),
    Reseal = fun(Fixed) -> <<Fixed/binary, (crc32c(Fixed)):32/little, (binary:part(G, 32, byte_size(G) - 32))/binary>> end,
    Cases = [{"text", <<"hello, this is not a queue file at all.......">>},
             {"zeros", <<0:(8 * (4096 + 64))>>},
             {"short", binary:part(G, 0, 100)},
             {"blocks", BlocksBytes},
             {"version_2", Reseal(<<"IOMMAPQU", 2:32/little, 4096:32/little, 64:64/little, 0:32>>)},
             {"capacity_not_the_size", Reseal(<<"IOMMAPQU", 1:32/little, 4096:32/little, 72:64/little, 0:32>>)},
             {"flags", Reseal(<<"IOMMAPQU", 1:32/little, 4096:32/little, 64:64/little, 1:32>>)},
             {"bad_header_crc", <<"IOMMAPQU", 1:32/little, 4096:32/little, 64:64/little, 0:32, 0:32,
                                  (binary:part(G, 32, byte_size(G) - 32))/binary>>},
             {"longer", <<G/binary, 0:64>>}],
    [begin
         Path = iommap_test_lib:file_in(Dir, Name, Bytes),
         ?assertEqual({Name, {error, einval}}, {Name, iommap_queue:open(Path)}),
         ?assertEqual({Name, {error, einval}}, {Name, iommap_queue:create(Path, 64)}),
         ?assertEqual({Name, {ok, Bytes}}, {Name, file:read_file(Path)})
     end || {Name, Bytes} <- Cases],
    ?assertEqual({error, enoent}, iommap_queue:open(filename:join(Dir, "none"))),
    ?assertEqual({error, eisdir}, iommap_queue:open(Dir)).

create_opens_an_existing_queue(Dir) ->
    Path = filename:join(Dir, "q"),
    {ok, Q} = iommap_queue:create(Path, 100), % rounded up to 104
    ok = iommap_queue:push(Q, <<"kept">>),
    {ok, Q2} = iommap_queue:create(Path, 104),
    ?assertEqual({ok, <<"kept">>}, iommap_queue:peek(Q2)),
    ?assertEqual({error, einval}, iommap_queue:create(Path, 200)),
    ok = iommap_queue:close(Q),
    ok = iommap_queue:close(Q2),
    ?assertEqual([], [F || F <- element(2, file:list_dir(Dir)), lists:suffix(".tmp", F)]).

errors_of_each_call(Dir) ->
    {ok, Q} = iommap_queue:create(filename:join(Dir, "q"), 256),
    ?assertError(badarg, iommap_queue:push(Q, [<<"iodata">>])),
    ?assertError(badarg, iommap_queue:push(Q, <<1:3>>)),
    ?assertError(badarg, iommap_queue:push_many(Q, [<<"a">>, b])),
    ?assertError(badarg, iommap_queue:pop_many(Q, 1.0)),
    ?assertError(badarg, iommap_queue:fold(fun(_) -> ok end, [], Q)),
    ?assertError(badarg, iommap_queue:len(not_a_queue)),
    ?assertError(badarg, iommap_queue:create("x", 0)),
    ?assertEqual({error, badarg}, iommap_queue:pop_many(Q, -1)),
    ?assertEqual({ok, []}, iommap_queue:pop_many(Q, 0)),
    ?assertEqual({error, e2big}, iommap_queue:push_many(Q, lists:duplicate(65537, <<>>))),
    ?assertEqual({ok, 0}, iommap_queue:len(Q)),
    ?assertEqual(empty, iommap_queue:pop(Q)),
    ?assertEqual(empty, iommap_queue:peek(Q)),
    ?assertEqual(empty, iommap_queue:peek_ref(Q)),
    ok = iommap_queue:push_many(Q, [<<"a">>, <<"b">>]),
    {ok, Ref, <<"a">>} = iommap_queue:peek_ref(Q),
    ?assertEqual({error, einval}, iommap_queue:ack(Q, Ref + 24)), % not the front
    ?assertEqual({error, einval}, iommap_queue:ack(Q, Ref + 1000)), % past the back
    ok = iommap_queue:sync(Q),
    ok = iommap_queue:close(Q),
    [?assertEqual({error, closed}, R)
     || R <- [iommap_queue:push(Q, <<>>), iommap_queue:push_many(Q, [<<>>]), iommap_queue:pop(Q),
              iommap_queue:pop_many(Q, 1), iommap_queue:peek(Q), iommap_queue:peek_ref(Q),
              iommap_queue:ack(Q, Ref), iommap_queue:len(Q), iommap_queue:sync(Q), iommap_queue:close(Q),
              iommap_queue:fold(fun(_, A) -> A end, 0, Q)]].

%% Two consumers peek the same front; the first to ack removes it, the
%% other's ack is ok (it is gone) and the next front is the next record.
at_least_once_with_peek_ref_and_ack(Dir) ->
    Path = filename:join(Dir, "q"),
    {ok, A} = iommap_queue:create(Path, 4096),
    {ok, B} = iommap_queue:open(Path),
    ok = iommap_queue:push_many(A, [<<"job1">>, <<"job2">>]),
    {ok, RefA, <<"job1">>} = iommap_queue:peek_ref(A),
    {ok, RefB, <<"job1">>} = iommap_queue:peek_ref(B),
    ?assertEqual(RefA, RefB),
    ?assertEqual(ok, iommap_queue:ack(B, RefB)),
    ?assertEqual(ok, iommap_queue:ack(A, RefA)),
    ?assertEqual({ok, [<<"job2">>]}, iommap_queue:pop_many(A, 5)),
    %% a consumer that dies before its ack leaves the record for the next
    ok = iommap_queue:push(A, <<"job3">>),
    Self = self(),
    {Pid, Mon} = spawn_monitor(fun() ->
                                       {ok, Q} = iommap_queue:open(Path),
                                       {ok, _, Job} = iommap_queue:peek_ref(Q),
                                       Self ! {took, Job},
                                       exit(crashed_while_working)
                               end),
    receive {took, <<"job3">>} -> ok end,
    receive {'DOWN', Mon, process, Pid, crashed_while_working} -> ok end,
    ?assertEqual({ok, <<"job3">>}, iommap_queue:pop(B)),
    ok = iommap_queue:close(A),
    ok = iommap_queue:close(B).

durable_queue_answers_the_same(Dir) ->
    Path = filename:join(Dir, "q"),
    {ok, Q} = iommap_queue:create(Path, 3 * 4096, [durable]),
    [begin
         Rec = binary:copy(<<I>>, 1000), % some straddle the ring's end
         ok = iommap_queue:push(Q, Rec),
         ok = iommap_queue:push_many(Q, [Rec, Rec]),
         {ok, [Rec, Rec]} = iommap_queue:pop_many(Q, 2),
         {ok, Ref, Rec} = iommap_queue:peek_ref(Q),
         ok = iommap_queue:ack(Q, Ref)
     end || I <- lists:seq(1, 30)],
    ok = iommap_queue:close(Q),
    {ok, Q2} = iommap_queue:open(Path, [durable]),
    ?assertEqual({ok, 0}, iommap_queue:len(Q2)),
    ok = iommap_queue:close(Q2).

%% fold goes past its chunk of 1,024 records, in order, and removes none.
fold_reads_in_chunks(Dir) ->
    {ok, Q} = iommap_queue:create(filename:join(Dir, "q"), 1 bsl 20),
    Recs = [integer_to_binary(I) || I <- lists:seq(1, 5000)],
    ok = iommap_queue:push_many(Q, Recs),
    ?assertEqual({ok, lists:reverse(Recs)}, iommap_queue:fold(fun(B, A) -> [B | A] end, [], Q)),
    ?assertEqual({ok, 5000}, iommap_queue:len(Q)),
    ok = iommap_queue:close(Q).
