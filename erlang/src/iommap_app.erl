%% @private
%% @doc The iommap application: a supervisor over the engine server.
-module(iommap_app).
-behaviour(application).

-export([start/2, stop/1]).

%% @private
-spec start(application:start_type(), term()) -> {ok, pid()} | {error, term()}.
start(_Type, _Args) ->
    case iommap_env:validate() of
        ok -> iommap_sup:start_link();
        {error, Reason} -> {error, Reason}
    end.

%% @private
-spec stop(term()) -> ok.
stop(_State) ->
    ok.
