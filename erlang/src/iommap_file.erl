%% @private
%% @doc Files the persistent structures (iommap_counters, iommap_queue,
%% iommap_blocks) create: made whole under a temporary name, then linked
%% into place.
-module(iommap_file).

-export([create_whole/3, engine_format/2]).

%% @doc Creates Path whole: Write(Tmp) writes it under a temporary name
%% beside Path, and it is then linked into place, so no process ever sees
%% a half-made file; a Path that exists already is left as it is (two
%% processes may both create it). Either way Open() then opens Path, and
%% says whether it is the file that was asked for.
-spec create_whole(file:filename_all(), fun((file:filename_all()) -> ok | {error, term()}),
                   fun(() -> Result)) -> Result | {error, term()}.
create_whole(Path, Write, Open) ->
    Tmp = tmp_name(Path),
    try Write(Tmp) of
        ok ->
            case file:make_link(Tmp, Path) of
                ok -> Open();
                {error, eexist} -> Open();
                {error, _} = E -> E
            end;
        {error, _} = E ->
            E
    after
        _ = file:delete(Tmp, [raw])
    end.

%% @doc A Write for create_whole/3: the file made Size zero bytes long, then
%% formatted by the engine's request Req on it.
-spec engine_format(pos_integer(), tuple()) -> fun((file:filename_all()) -> term()).
engine_format(Size, Req) ->
    fun(Tmp) ->
            case iommap:open(Tmp, read_write, [create, truncate, {size, Size}]) of
                {ok, H} ->
                    Result = iommap_client:call(H, Req),
                    _ = iommap:close(H),
                    Result;
                {error, _} = E ->
                    E
            end
    end.

%% Beside Path, so the link stays in one file system.
tmp_name(Path) when is_binary(Path) ->
    <<(filename:absname(Path))/binary, (tmp_suffix())/binary>>;
tmp_name(Path) ->
    filename:absname(Path) ++ binary_to_list(tmp_suffix()).

tmp_suffix() ->
    iolist_to_binary([".", os:getpid(), ".", integer_to_list(erlang:unique_integer([positive])), ".tmp"]).
