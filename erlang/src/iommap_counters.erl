%% @doc A file of signed 64-bit counters, shared between Erlang processes,
%% nodes and OS processes that map the same file.
%%
%% Each update is one atomic instruction of the engine on the mapped word
%% (see {@link iommap:add/3}), so counters are exact across every process
%% that maps the file `shared', whatever language it is written in.
%%
%% The file format (little-endian), so that a C or Go program can share it:
%% ```
%% offset  size  field
%%      0     8  magic: "IOMMAPCT"
%%      8     4  version: 1
%%     12     4  header size: 32 (the first counter's offset)
%%     16     8  N: the number of counters
%%     24     8  reserved: 0
%%     32   8*N  counter I (0 =< I < N) at 32 + 8*I, a signed 64-bit integer
%% '''
%% The file is exactly 32 + 8*N bytes. Anything else is not a counters file.
%%
%% ```
%% {ok, C} = iommap_counters:create("/tmp/hits", 4),
%% {ok, 0} = iommap_counters:inc(C, 2, 10),
%% {ok, 10} = iommap_counters:read(C, 2),
%% {ok, [0, 0, 10, 0]} = iommap_counters:read_all(C),
%% ok = iommap_counters:close(C).
%% '''
%%
%% A counters value belongs to the process that created or opened it, as
%% an iommap handle does: it is closed when that process dies.
-module(iommap_counters).

-export([create/2, open/1, inc/3, dec/3, set/3, read/2, read_all/1, close/1]).

-record(counters, {handle :: iommap:handle(), n :: pos_integer()}).
-opaque counters() :: #counters{}.
-export_type([counters/0]).

-define(MAGIC, "IOMMAPCT").
-define(VERSION, 1).
-define(HEADER, 32).

%% @doc Creates a file of `N' counters, all 0, and opens it. The file is
%% written whole under a temporary name and then linked into place, so no
%% process ever sees a half-made one. If `Path' exists already and is a
%% counters file of `N' counters, it is opened as it is (two processes may
%% both create it); if it is anything else, the answer is `{error, einval}'
%% and the file is not changed.
-spec create(file:filename_all(), pos_integer()) -> {ok, counters()} | {error, iommap:reason()}.
create(Path, N) when is_integer(N), N > 0 ->
    Write = fun(Tmp) -> file:write_file(Tmp, [header(N), <<0:(64 * N)>>], [raw]) end,
    iommap_file:create_whole(Path, Write, fun() -> open(Path, N) end);
create(_, _) ->
    erlang:error(badarg).

%% @doc Opens an existing counters file.
-spec open(file:filename_all()) -> {ok, counters()} | {error, iommap:reason()}.
open(Path) ->
    open(Path, any).

open(Path, Want) ->
    case iommap:open(Path, read_write, []) of
        {ok, H} ->
            case check(H, Want) of
                {ok, N} ->
                    {ok, #counters{handle = H, n = N}};
                {error, _} = E ->
                    _ = iommap:close(H),
                    E
            end;
        {error, _} = E ->
            E
    end.

check(H, Want) ->
    case {iommap:pread(H, 0, ?HEADER), iommap:position(H)} of
        {{ok, <<?MAGIC, ?VERSION:32/little, ?HEADER:32/little, N:64/little, _:64>>}, {ok, Size}}
          when N > 0, Size =:= ?HEADER + 8 * N, (Want =:= any orelse Want =:= N) ->
            {ok, N};
        {{error, out_of_bounds}, _} ->
            {error, einval}; % shorter than a header
        {{ok, _}, _} ->
            {error, einval};
        {{error, _} = E, _} ->
            E
    end.

%% @doc Adds `By' to counter `I' (wrapping at 64 bits) and returns its old
%% value.
-spec inc(counters(), non_neg_integer(), integer()) -> {ok, integer()} | {error, iommap:reason()}.
inc(C, I, By) when is_integer(I), is_integer(By) ->
    word(C, I, fun(H, Off) -> iommap:add(H, Off, By) end);
inc(_, _, _) ->
    erlang:error(badarg).

%% @doc Subtracts `By' from counter `I' and returns its old value.
-spec dec(counters(), non_neg_integer(), integer()) -> {ok, integer()} | {error, iommap:reason()}.
dec(C, I, By) when is_integer(I), is_integer(By) ->
    word(C, I, fun(H, Off) -> iommap:sub(H, Off, By) end);
dec(_, _, _) ->
    erlang:error(badarg).

%% @doc Sets counter `I' to `V' and returns its old value.
-spec set(counters(), non_neg_integer(), integer()) -> {ok, integer()} | {error, iommap:reason()}.
set(C, I, V) when is_integer(I), is_integer(V) ->
    word(C, I, fun(H, Off) -> iommap:exchange(H, Off, V) end);
set(_, _, _) ->
    erlang:error(badarg).

%% @doc The value of counter `I'.
-spec read(counters(), non_neg_integer()) -> {ok, integer()} | {error, iommap:reason()}.
read(C, I) when is_integer(I) ->
    word(C, I, fun iommap:load/2);
read(_, _) ->
    erlang:error(badarg).

%% @doc The values of all counters, in index order. Each value is read
%% atomically, but they are not a snapshot of one instant.
-spec read_all(counters()) -> {ok, [integer()]} | {error, iommap:reason()}.
read_all(#counters{handle = H, n = N}) ->
    read_all(H, 0, N, []);
read_all(_) ->
    erlang:error(badarg).

%% One word a range, so each is one aligned 8-byte copy in the engine: a
%% whole-area pread could be copied in pieces that tear a word. A request
%% carries at most 65,536 ranges: read in chunks.
-define(CHUNK, 4096).

read_all(_, I, N, Acc) when I >= N ->
    {ok, lists:append(lists:reverse(Acc))};
read_all(H, I, N, Acc) ->
    Last = min(N, I + ?CHUNK) - 1,
    case iommap:pread_many(H, [{?HEADER + 8 * J, 8} || J <- lists:seq(I, Last)]) of
        {ok, Words} -> read_all(H, Last + 1, N, [[V || <<V:64/signed-little>> <- Words] | Acc]);
        {error, _} = E -> E
    end.

%% @doc Closes the counters file.
-spec close(counters()) -> ok | {error, iommap:reason()}.
close(#counters{handle = H}) ->
    iommap:close(H);
close(_) ->
    erlang:error(badarg).

word(#counters{handle = H, n = N}, I, F) when I >= 0, I < N ->
    F(H, ?HEADER + 8 * I);
word(#counters{}, _, _) ->
    {error, out_of_bounds};
word(_, _, _) ->
    erlang:error(badarg).

header(N) ->
    <<?MAGIC, ?VERSION:32/little, ?HEADER:32/little, N:64/little, 0:64>>.
