%% Internal: what a caller needs to talk to the running engine. The engine
%% server publishes it in ?ENGINE_TAB so a call costs no message to it.
-record(engine, {
    server  :: pid(),
    port    :: port(),
    pending :: ets:tid(),   %% request id -> reply alias (or the server's own work)
    handles :: ets:tid(),   %% handle ref -> {Ref, EngineHandleId, OwnerPid}
    ids     :: atomics:atomics_ref(),
    version :: binary(),            %% the engine's, from its hello
    os_pid  :: non_neg_integer(),   %% the engine's
    stage_min :: pos_integer() | infinity, %% reads and writes this big go through a stage
    %% Lanes (iommap_lanes): sockets small calls use instead of the port,
    %% once the engine has opened them; undefined when off.
    lanes = undefined :: iommap_lanes:pool() | undefined
}).

%% The running engine: {engine, #engine{}} in this named table of the engine
%% server, present only while the engine is up (see iommap_engine:up/2).
-define(ENGINE_TAB, iommap_engine_tab).
%% Start times of the engine, for its restart back-off; owned by iommap_sup.
-define(RESTARTS, iommap_restarts).
%% The stage of each process that has one (see iommap_client:stage_get/1):
%% {Pid, EnginePort, iommap_client:stage()}. Owned by iommap_sup, so a
%% process's stage outlives the engine it came from until the process
%% closes it (see iommap_client:stage/1).
-define(STAGES, iommap_stages).
%% Direct reads (iommap_direct): where each shared mapping of the running
%% engine lies, {H, Mode, Atomics}; owned by the engine server, so it goes
%% with its engine's handles.
-define(REGIONS, iommap_regions).
%% The descriptor each reading process holds on /proc/<engine>/mem:
%% {Pid, EnginePort, {fd, Fd} | {none, RetryAt}}. Owned by iommap_sup, like
%% ?STAGES, so a process's row outlives the engine it came from.
-define(READERS, iommap_readers).
%% The descriptors of mapped files held for direct reads
%% (iommap_direct_files): {H, ReaderPid, EnginePort, Fd | {closing, Fd},
%% ReadsUnderWay}, a bag keyed by handle; owned by that module's process.
-define(FILES, iommap_direct_files).
-define(PROTOCOL_VERSION, 9).
