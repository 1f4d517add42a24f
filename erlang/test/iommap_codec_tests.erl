%% The frames iommap_codec builds must be the bytes term_to_binary gives for
%% the request of port/PROTOCOL.md's table: the engine reads them with a
%% hand decoder that expects exactly those shapes (port/fast.go), and with
%% erlang_go. pwrite and pwrite_many are built by hand, the others by one
%% generic clause.
-module(iommap_codec_tests).

-include_lib("eunit/include/eunit.hrl").

%% Offsets at each edge of SMALL_INTEGER_EXT, INTEGER_EXT and SMALL_BIG_EXT.
-define(OFFSETS, [0, 1, 255, 256, 16#7FFFFFFF, 16#80000000, 1 bsl 40,
                  (1 bsl 64) - 1, 1 bsl 64]).
-define(IDS, [1, 255, 256, 16#7FFFFFFF]).

frame(Id, HId, Req) ->
    iolist_to_binary(iommap_codec:encode(Id, HId, Req)).

pwrite_frame_is_term_to_binary_test() ->
    [?assertEqual(term_to_binary({Id, pwrite, HId, Off, <<"abc">>}),
                  frame(Id, HId, {pwrite, Off, [<<"a">>, $b, [<<"c">>]], 3}))
     || Id <- ?IDS, HId <- [0, 3, 300], Off <- ?OFFSETS].

pwrite_of_a_large_binary_is_term_to_binary_test() ->
    Data = binary:copy(<<"0123456789abcdef">>, 4096),
    ?assertEqual(term_to_binary({9, pwrite, 2, 100, Data}),
                 frame(9, 2, {pwrite, 100, [Data], byte_size(Data)})).

pwrite_many_frame_is_term_to_binary_test() ->
    Ws = [{Off, [<<"x">>, <<>>, $y]} || Off <- ?OFFSETS] ++ [{7, <<>>}, {8, []}],
    Pieces = [{Off, D, iolist_size(D)} || {Off, D} <- Ws],
    Flat = [{Off, iolist_to_binary(D)} || {Off, D} <- Ws],
    [?assertEqual(term_to_binary({Id, pwrite_many, HId, Flat}),
                  frame(Id, HId, {pwrite_many, Pieces}))
     || Id <- ?IDS, HId <- [0, 3, 300]].

%% An empty list is sent as a list of length 0 (LIST_EXT then NIL_EXT), which
%% binary_to_term reads as [] all the same.
empty_pwrite_many_frame_reads_as_the_term_test() ->
    ?assertEqual({5, pwrite_many, 3, []}, binary_to_term(frame(5, 3, {pwrite_many, []}))).

%% Every other request on a handle: {Id, Op, HId, Args...}, in wire order.
requests_on_a_handle_are_in_wire_order_test() ->
    Reqs = [{pread, 1 bsl 64, 7}, {sync, async}, {truncate, 4096},
            {advise, 0, 4096, willneed}, {position}, {info},
            {check, write, 1 bsl 65}, {pread_many, [{0, 1}, {1 bsl 40, 2}]},
            {pread_many, []}, {add, 8, -1}, {compare_exchange, 16, 1, -(1 bsl 63)},
            {load, 24}, {store, 32, (1 bsl 63) - 1}, {sync_range, 0, 10, sync},
            {resident, 0, 1 bsl 30}, {pread_staged, 5, 1 bsl 20, 2},
            {pwrite_staged, 5, 1 bsl 20, 2}],
    [?assertEqual(term_to_binary(list_to_tuple([Id, element(1, Req), HId | tl(tuple_to_list(Req))])),
                  frame(Id, HId, Req))
     || Id <- ?IDS, HId <- [0, 300], Req <- Reqs].

%% The server's own requests name no handle first.
server_requests_are_in_wire_order_test() ->
    ?assertEqual(term_to_binary({1, hello}), iommap_codec:encode(1, {hello})),
    ?assertEqual(term_to_binary({7, open, <<"/tmp/x">>, read, shared, undefined, 8#600, [create]}),
                 iommap_codec:encode(7, {open, <<"/tmp/x">>, read, shared, undefined, 8#600, [create]})),
    ?assertEqual(term_to_binary({8, close, 3}), iommap_codec:encode(8, {close, 3})),
    ?assertEqual(term_to_binary({9, stage_open}), iommap_codec:encode(9, {stage_open})),
    ?assertEqual(term_to_binary({10, stage_close, 4}), iommap_codec:encode(10, {stage_close, 4})).

%% pieces_size/1 is what the pieces add to a pwrite_many's frame, which is
%% what the client holds against the frame limit.
pieces_size_is_what_the_pieces_take_in_the_frame_test() ->
    Empty = byte_size(frame(5, 3, {pwrite_many, []})),
    [begin
         Pieces = [{Off, D, iolist_size(D)}],
         ?assertEqual(byte_size(frame(5, 3, {pwrite_many, Pieces})) - Empty,
                      iommap_codec:pieces_size(Pieces))
     end || Off <- ?OFFSETS, D <- [<<>>, <<"abc">>, [<<"x">>, $y]]],
    All = [{Off, <<"ab">>, 2} || Off <- ?OFFSETS],
    ?assertEqual(byte_size(frame(5, 3, {pwrite_many, All})) - Empty, iommap_codec:pieces_size(All)).

%% The replies matched as bytes give what binary_to_term gives.
replies_decode_as_binary_to_term_test() ->
    Frame = fun(R) -> <<131, 104, 2, 98, 77:32, (binary:part(term_to_binary(R), 1, byte_size(term_to_binary(R)) - 1))/binary>> end,
    [?assertEqual(R, iommap_codec:decode(Frame(R)))
     || R <- [ok, {ok, <<>>}, {ok, <<"data">>}, {ok, [<<"a">>, <<>>, <<"bc">>]},
              {error, out_of_bounds}, {ok, 4096}, {error, {mismatch, -1}}]].
