%% Fixed-size records in a memory-mapped file: the kind of thing iommap is
%% for. No start call: iommap starts itself on first use.
-module(record_file).
-export([open/3, put/3, get/2, close/1]).

-record(rf, {h :: iommap:handle(), size :: pos_integer(), count :: pos_integer()}).

-spec open(file:filename_all(), pos_integer(), pos_integer()) -> {ok, #rf{}} | {error, term()}.
open(Path, RecSize, Count) ->
    case iommap:open(Path, read_write, [create, {size, RecSize * Count}]) of
        {ok, H} -> {ok, #rf{h = H, size = RecSize, count = Count}};
        Error -> Error
    end.

-spec put(#rf{}, non_neg_integer(), binary()) -> ok | {error, term()}.
put(#rf{size = S}, _, Bin) when byte_size(Bin) > S -> {error, too_big};
put(#rf{h = H, size = S}, I, Bin) ->
    iommap:pwrite(H, I * S, [Bin, binary:copy(<<0>>, S - byte_size(Bin))]).

-spec get(#rf{}, non_neg_integer()) -> {ok, binary()} | {error, term()}.
get(#rf{h = H, size = S}, I) ->
    iommap:pread(H, I * S, S).

-spec close(#rf{}) -> ok | {error, term()}.
close(#rf{h = H}) -> iommap:close(H).
