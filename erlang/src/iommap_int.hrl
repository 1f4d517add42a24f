%% Internal: what a caller needs to talk to the running engine. The engine
%% server publishes it in persistent_term so a call costs no message to it.
-record(engine, {
    server  :: pid(),
    port    :: port(),
    pending :: ets:tid(),   %% request id -> reply alias (or the server's own work)
    handles :: ets:tid(),   %% handle ref -> {Ref, EngineHandleId, OwnerPid}
    ids     :: atomics:atomics_ref(),
    version :: binary(),            %% the engine's, from its hello
    os_pid  :: non_neg_integer(),   %% the engine's
    stage_min :: pos_integer() | infinity, %% reads and writes this big go through a stage
    wait_spin :: non_neg_integer()         %% yields before blocking on a long request's reply
}).

-define(ENGINE_KEY, {iommap, engine}).
%% Start times of the engine, for its restart back-off; owned by iommap_sup.
-define(RESTARTS, iommap_restarts).
-define(PROTOCOL_VERSION, 4).

%% The calling process's stage (see iommap_client), in its process
%% dictionary: {Port, {StageId, Fd} | none}.
-define(STAGE_KEY, '$iommap_stage').
