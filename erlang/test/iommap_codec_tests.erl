%% The frames iommap_codec builds by hand must be the bytes term_to_binary
%% gives for the same term: the engine reads them with a hand decoder
%% that expects exactly those shapes (port/fast.go), and with erlang_go.
-module(iommap_codec_tests).

-include_lib("eunit/include/eunit.hrl").

%% Offsets at each edge of SMALL_INTEGER_EXT, INTEGER_EXT and SMALL_BIG_EXT.
-define(OFFSETS, [0, 1, 255, 256, 16#7FFFFFFF, 16#80000000, 1 bsl 40,
                  (1 bsl 64) - 1, 1 bsl 64]).

pwrite_frame_is_term_to_binary_test() ->
    [?assertEqual(term_to_binary({Id, pwrite, 3, Off, <<"abc">>}),
                  iolist_to_binary(iommap_codec:encode(Id, {3, {pwrite, Off, [<<"a">>, $b, [<<"c">>]], 3}})))
     || Id <- [1, 255, 256, 16#7FFFFFFF], Off <- ?OFFSETS].

pwrite_many_frame_is_term_to_binary_test() ->
    Ws = [{Off, [<<"x">>, <<>>, $y]} || Off <- ?OFFSETS] ++ [{7, <<>>}, {8, []}],
    Flat = [{Off, iolist_to_binary(D)} || {Off, D} <- Ws],
    ?assertEqual(term_to_binary({70000, pwrite_many, 3, Flat}),
                 iolist_to_binary(iommap_codec:encode(70000, {3, {pwrite_many, Ws}}))).

%% An empty list is sent as a list of length 0 (LIST_EXT then NIL_EXT), which
%% binary_to_term reads as [] all the same.
empty_pwrite_many_frame_reads_as_the_term_test() ->
    ?assertEqual({5, pwrite_many, 3, []},
                 binary_to_term(iolist_to_binary(iommap_codec:encode(5, {3, {pwrite_many, []}})))).

int_size_is_the_size_of_the_encoding_test() ->
    [?assertEqual(byte_size(term_to_binary(I)) - 1, iommap_codec:int_size(I)) || I <- ?OFFSETS].
