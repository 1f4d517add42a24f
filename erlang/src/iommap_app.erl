%% @private
%% @doc The iommap application: a supervisor over the engine server.
-module(iommap_app).
-behaviour(application).

-export([start/2, stop/1]).

%% @private
-spec start(application:start_type(), term()) -> {ok, pid()} | {error, term()}.
start(_Type, _Args) ->
    case iommap_env:validate() of
        ok -> start_sup();
        {error, Reason} -> {error, Reason}
    end.

%% The engine server returns from its init at once and starts the engine
%% after, so a start waits here for the first engine: one that cannot start
%% (a binary of another protocol version, say) fails the start with its
%% reason instead of being tried again and again.
start_sup() ->
    case iommap_sup:start_link() of
        {ok, Sup} ->
            case iommap_engine:await_up() of
                ok ->
                    {ok, Sup};
                {error, Reason} ->
                    ok = gen_server:stop(Sup),
                    {error, Reason}
            end;
        Error ->
            Error
    end.

%% @private
-spec stop(term()) -> ok.
stop(_State) ->
    ok.
