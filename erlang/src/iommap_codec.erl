%% @private
%% @doc The engine protocol's frames (port/PROTOCOL.md): request ids, the
%% encoding of requests and the decoding of replies. Pure functions, shared
%% by the calling side (iommap_client) and the engine server
%% (iommap_engine), so neither calls the other for them.
%%
%% A request is the frame's tuple without its id, in wire order: `{Op,
%% Arg1, ...}' for a request on a handle (the frame is `{Id, Op, HId, Arg1,
%% ...}', see encode/3), `{Op, Arg1, ...}' for the others (`{Id, Op, Arg1,
%% ...}', see encode/2). iommap builds each request, and only pwrite and
%% pwrite_many carry more than goes on the wire: the byte size of their
%% data, counted once, for the frame built around it without a copy.
-module(iommap_codec).

-export([new_id/3, encode/2, encode/3, decode/1, pieces_size/1]).

-type piece() :: {Off :: non_neg_integer(), iodata(), Size :: non_neg_integer()}.
-type request() :: {pread, non_neg_integer(), non_neg_integer()}
                 | {pwrite, non_neg_integer(), iodata(), Size :: non_neg_integer()}
                 | {pwrite_many, [piece()]}
                 | {pread_many, [{non_neg_integer(), non_neg_integer()}]}
                 | {atom()}
                 | {atom(), term()}
                 | {atom(), term(), term()}
                 | {atom(), term(), term(), term()}.
-export_type([piece/0, request/0]).

%% @doc Takes a request id that is free in Pending and registers Value
%% under it. Ids are 31-bit and never 0 (0 is the engine's "no id").
-spec new_id(ets:tid(), atomics:atomics_ref(), term()) -> pos_integer().
new_id(Pending, Ids, Value) ->
    Id = atomics:add_get(Ids, 1, 1) band 16#7FFFFFFF,
    case Id =/= 0 andalso ets:insert_new(Pending, {Id, Value}) of
        true -> Id;
        false -> new_id(Pending, Ids, Value)
    end.

%% @doc The frame of a request on the engine's handle HId: `{Id, Op, HId,
%% Arg1, ...}'. pwrite and pwrite_many are not run through term_to_binary:
%% their data goes last in the tuple, so the frame is the encoding of the
%% tuple with an empty binary (list), cut before it, then the header and the
%% caller's iodata as it is. The port writes the iolist without the data
%% ever being copied into one binary on this side.
-spec encode(pos_integer(), non_neg_integer(), request()) -> iodata().
encode(Id, HId, {pwrite, Off, Data, Size}) ->
    Pre = term_to_binary({Id, pwrite, HId, Off, <<>>}),
    [binary_part(Pre, 0, byte_size(Pre) - 5), <<109, Size:32>> | Data];
encode(Id, HId, {pwrite_many, Pieces}) ->
    Pre = term_to_binary({Id, pwrite_many, HId, []}),
    [binary_part(Pre, 0, byte_size(Pre) - 1), <<108, (length(Pieces)):32>>,
     [[<<104, 2>>, int_ext(Off), <<109, Size:32>> | D] || {Off, D, Size} <- Pieces],
     <<106>>];
encode(Id, HId, Req) ->
    encode(Id, erlang:insert_element(2, Req, HId)).

%% @doc The frame of a request that names no handle first (hello, open,
%% close, stage_open, stage_close, stats): `{Id, Op, Arg1, ...}'.
-spec encode(pos_integer(), tuple()) -> binary().
encode(Id, Req) ->
    term_to_binary(erlang:insert_element(1, Req, Id)).

%% @doc The bytes the pieces of a pwrite_many take in its frame, exactly as
%% encode/3 writes them: per piece a 2-tuple header, the offset, the
%% BINARY_EXT header and the data.
-spec pieces_size([piece()]) -> non_neg_integer().
pieces_size(Pieces) ->
    lists:foldl(fun({Off, _, Size}, Acc) -> Acc + 2 + int_size(Off) + 5 + Size end, 0, Pieces).

%% @doc The result in a reply frame {Id, Result}. The two commonest shapes
%% are matched as bytes: a data reply becomes a sub-binary of the frame, so
%% the data is not copied again here.
-spec decode(binary()) -> term().
decode(<<131, 104, 2, 98, _:32, 104, 2, 119, 2, "ok", 109, Len:32, Data:Len/binary>>) ->
    {ok, Data};
decode(<<131, 104, 2, 98, _:32, 119, 2, "ok">>) ->
    ok;
decode(<<131, 104, 2, 98, _:32, 104, 2, 119, 2, "ok", 108, N:32, Rest/binary>>) ->
    {ok, binaries(N, Rest, [])};
decode(Frame) ->
    {_, Result} = binary_to_term(Frame),
    Result.

%% The elements of a list of binaries, as sub-binaries of the frame.
binaries(0, <<106>>, Acc) -> lists:reverse(Acc);
binaries(N, <<109, Len:32, B:Len/binary, Rest/binary>>, Acc) -> binaries(N - 1, Rest, [B | Acc]).

%% The encoding of a non-negative integer without the version byte, as
%% term_to_binary/1 writes it (built here: term_to_binary and a
%% binary_part for each piece were most of a pwrite_many's encoding time).
int_ext(I) when I < 256 -> <<97, I>>;
int_ext(I) when I < 16#80000000 -> <<98, I:32>>;
int_ext(I) ->
    Digits = binary:encode_unsigned(I, little),
    <<110, (byte_size(Digits)), 0, Digits/binary>>.

%% The size of int_ext(I): SMALL_INTEGER_EXT, INTEGER_EXT or SMALL_BIG_EXT.
int_size(I) when I < 256 -> 2;
int_size(I) when I < 16#80000000 -> 5;
int_size(I) -> 3 + byte_size(binary:encode_unsigned(I)).
