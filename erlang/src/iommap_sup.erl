%% @private
%% @doc Restarts the engine server (and so the engine) when it dies.
-module(iommap_sup).
-behaviour(supervisor).

-include("iommap_int.hrl").

-export([start_link/0, init/1]).

%% @private
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

%% @private
-spec init([]) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
%% An engine killed from outside is restarted at once; the intensity is high
%% because such a kill costs only the calls in flight, and an engine that
%% keeps dying is restarted more and more slowly (iommap_engine's back-off,
%% whose table this process owns so that it outlives each engine). The
%% application's start waits for the first engine (iommap_app), so one that
%% cannot start at all fails the start; one that stops starting later is
%% tried again after each back-off, with an error logged each time.
%%
%% The stage table is this process's too: a process's stage must outlive the
%% engine it came from, until the process closes it (iommap_client). So is
%% the table of direct readers' descriptors, for the same reason
%% (iommap_direct).
init([]) ->
    ?RESTARTS = ets:new(?RESTARTS, [named_table, public, set]),
    ?STAGES = ets:new(?STAGES, [named_table, public, set,
                                {read_concurrency, true}, {write_concurrency, true}]),
    %% written only when a process opens its descriptor; its size is the
    %% node's bound, so one exact counter (no write_concurrency)
    ?READERS = ets:new(?READERS, [named_table, public, set, {read_concurrency, true}]),
    Engine = #{id => iommap_engine,
               start => {iommap_engine, start_link, []},
               restart => permanent,
               shutdown => 5000,
               type => worker,
               modules => [iommap_engine]},
    %% before the engine server, which tells it of closing handles
    Files = #{id => iommap_direct_files,
              start => {iommap_direct_files, start_link, []},
              restart => permanent,
              shutdown => 5000,
              type => worker,
              modules => [iommap_direct_files]},
    {ok, {#{strategy => one_for_one, intensity => 50, period => 10}, [Files, Engine]}}.
