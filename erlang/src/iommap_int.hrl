%% Internal: what a caller needs to talk to the running engine. The engine
%% server publishes it in persistent_term so a call costs no message to it.
-record(engine, {
    server  :: pid(),
    port    :: port(),
    pending :: ets:tid(),   %% request id -> reply alias (or the server's own work)
    handles :: ets:tid(),   %% handle ref -> {Ref, EngineHandleId, OwnerPid}
    ids     :: atomics:atomics_ref(),
    version :: binary()             %% the engine's, from its hello
}).

-define(ENGINE_KEY, {iommap, engine}).
-define(PROTOCOL_VERSION, 2).
