%% @private
%% @doc The engine protocol's frames (port/PROTOCOL.md): request ids, the
%% encoding of requests and the decoding of replies. Pure functions, shared
%% by the calling side (iommap_client) and the engine server
%% (iommap_engine), so neither calls the other for them.
-module(iommap_codec).

-export([new_id/3, encode/2, decode/1, int_size/1]).

%% @doc Takes a request id that is free in Pending and registers Value
%% under it. Ids are 31-bit and never 0 (0 is the engine's "no id").
-spec new_id(ets:tid(), atomics:atomics_ref(), term()) -> pos_integer().
new_id(Pending, Ids, Value) ->
    Id = atomics:add_get(Ids, 1, 1) band 16#7FFFFFFF,
    case Id =/= 0 andalso ets:insert_new(Pending, {Id, Value}) of
        true -> Id;
        false -> new_id(Pending, Ids, Value)
    end.

%% @doc The frame of a request. pwrite is not run through term_to_binary:
%% its data goes last in the tuple, so the frame is the encoding of the
%% tuple with an empty binary, cut before that binary, then the BINARY_EXT
%% header and the caller's iodata as it is. The port writes the iolist
%% without the data ever being copied into one binary on this side.
-spec encode(pos_integer(), {non_neg_integer(), iommap_client:request()} | tuple()) -> iodata().
encode(Id, {HId, {pwrite, Off, Data, Size}}) ->
    Pre = term_to_binary({Id, pwrite, HId, Off, <<>>}),
    [binary_part(Pre, 0, byte_size(Pre) - 5), <<109, Size:32>> | Data];
encode(Id, {HId, {pwrite_many, Ws}}) ->
    %% the same trick as pwrite, for a list of {Off, Data}: the list is last
    Pre = term_to_binary({Id, pwrite_many, HId, []}),
    [binary_part(Pre, 0, byte_size(Pre) - 1), <<108, (length(Ws)):32>>,
     [[<<104, 2>>, int_ext(Off), <<109, (iolist_size(D)):32>> | D] || {Off, D} <- Ws],
     <<106>>];
encode(Id, {HId, {pread_many, Rs}}) ->
    term_to_binary({Id, pread_many, HId, Rs});
encode(Id, {HId, {Atomic, Off, Vals}}) when Atomic =:= add; Atomic =:= load;
                                             Atomic =:= store; Atomic =:= compare_exchange ->
    term_to_binary(list_to_tuple([Id, Atomic, HId, Off | Vals]));
encode(Id, {HId, {sync_range, Off, Len, Mode}}) ->
    term_to_binary({Id, sync_range, HId, Off, Len, Mode});
encode(Id, {HId, {resident, Off, Len}}) ->
    term_to_binary({Id, resident, HId, Off, Len});
encode(Id, {HId, {Staged, Off, Len, SId}}) when Staged =:= pread_staged;
                                                 Staged =:= pwrite_staged ->
    term_to_binary({Id, Staged, HId, Off, Len, SId});
encode(Id, {HId, {pread, Off, Len}}) ->
    term_to_binary({Id, pread, HId, Off, Len});
encode(Id, {HId, {sync, Mode}}) ->
    term_to_binary({Id, sync, HId, Mode});
encode(Id, {HId, {truncate, N}}) ->
    term_to_binary({Id, truncate, HId, N});
encode(Id, {HId, {advise, Off, Len, Hint}}) ->
    term_to_binary({Id, advise, HId, Off, Len, Hint});
encode(Id, {HId, position}) ->
    term_to_binary({Id, position, HId});
encode(Id, {HId, info}) ->
    term_to_binary({Id, info, HId});
encode(Id, Req) when is_tuple(Req) ->
    term_to_binary(list_to_tuple([Id | tuple_to_list(Req)])).

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

%% @doc The bytes of a non-negative integer's encoding without the version
%% byte, as int_ext/1 writes it: SMALL_INTEGER_EXT, INTEGER_EXT or
%% SMALL_BIG_EXT. The caller sizes a frame with it before building one.
-spec int_size(non_neg_integer()) -> pos_integer().
int_size(I) when I < 256 -> 2;
int_size(I) when I < 16#80000000 -> 5;
int_size(I) -> 3 + byte_size(binary:encode_unsigned(I)).
