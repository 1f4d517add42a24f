%% Helpers shared by the suites and the soak: what the engine holds, read
%% from /proc, and waiting for a condition.
-module(iommap_test_lib).
-export([fds/1, rss_kib/1, wait_until/1, wait_until/2, with_env/3, engine_os_pid/0, file_in/3]).

%% A file Dir/Name holding Bytes; its path.
-spec file_in(file:filename(), string(), iodata()) -> file:filename().
file_in(Dir, Name, Bytes) ->
    P = filename:join(Dir, Name),
    ok = file:write_file(P, Bytes),
    P.

%% The OS pid of the running engine.
-spec engine_os_pid() -> pos_integer().
engine_os_pid() ->
    {ok, #{os_pid := P}} = iommap:engine_info(),
    P.

%% Open file descriptors of an OS process.
-spec fds(pos_integer()) -> non_neg_integer().
fds(Pid) ->
    {ok, L} = file:list_dir("/proc/" ++ integer_to_list(Pid) ++ "/fd"),
    length(L).

%% Resident set size of an OS process, in KiB.
-spec rss_kib(pos_integer()) -> non_neg_integer().
rss_kib(Pid) ->
    {ok, B} = file:read_file("/proc/" ++ integer_to_list(Pid) ++ "/status"),
    {match, [K]} = re:run(B, "VmRSS:\\s+(\\d+)", [{capture, [1], list}]),
    list_to_integer(K).

%% Polls F every 10 ms, up to Tries times; fails if it never holds.
-spec wait_until(fun(() -> boolean())) -> ok.
wait_until(F) -> wait_until(F, 500).

-spec wait_until(fun(() -> boolean()), non_neg_integer()) -> ok.
wait_until(F, 0) ->
    true = F(),
    ok;
wait_until(F, N) ->
    case F() of
        true -> ok;
        false -> timer:sleep(10), wait_until(F, N - 1)
    end.

%% Runs F with the application restarted under Key = Value, then restarts
%% it with the old setting.
-spec with_env(atom(), term(), fun(() -> T)) -> T.
with_env(Key, Value, F) ->
    _ = application:load(iommap), % else loading would overwrite the setting
    Old = application:get_env(iommap, Key),
    _ = application:stop(iommap),
    ok = application:set_env(iommap, Key, Value),
    {ok, _} = application:ensure_all_started(iommap),
    try F()
    after
        _ = application:stop(iommap),
        case Old of
            {ok, V} -> application:set_env(iommap, Key, V);
            undefined -> application:unset_env(iommap, Key)
        end,
        {ok, _} = application:ensure_all_started(iommap)
    end.
