%% Helpers shared by the suites and the soak: the files a test makes and
%% the directories that hold them, what the engine holds, read from /proc,
%% and waiting for a condition.
%%
%% Every file a test makes goes into a directory of that test's own, which
%% is removed when the test ends, passed or failed: in EUnit, in_tmp_dirs/1
%% (under $TMPDIR or /tmp); in Common Test, init_case_dir/2 in
%% init_per_testcase and end_case_dir/1 in end_per_testcase (under
%% priv_dir, so suites sharing one priv_dir cannot clash).
-module(iommap_test_lib).
-export([fds/1, rss_kib/1, wait_until/1, wait_until/2, with_env/3, engine_os_pid/0, file_in/3]).
-export([sparse_file_in/3, tmp_dir/0, remove_dir/1, in_tmp_dirs/1,
         init_case_dir/2, end_case_dir/1, case_dir/1, free_kib/1]).
-export([pattern_file/4, pattern/3, with_lanes/2, lanes_pool/0, lanes_pool_up/0]).

-include("../src/iommap_int.hrl").

%% A file of Bytes / 8 words, word I holding Tag * 2^40 + I * 8 (its own
%% offset): a read from anywhere else, or of another file, shows.
-spec pattern_file(file:filename(), string(), non_neg_integer(), pos_integer()) -> file:filename().
pattern_file(Dir, Name, Tag, Bytes) ->
    file_in(Dir, Name, pattern(Tag, 0, Bytes)).

%% The bytes of such a file from Off on.
-spec pattern(non_neg_integer(), non_neg_integer(), pos_integer()) -> binary().
pattern(Tag, Off, Bytes) ->
    << <<(Tag bsl 40 + O):64/little>> || O <- lists:seq(Off, Off + Bytes - 8, 8) >>.

%% Runs F with a pool of N lanes, and direct reads off so that reads take
%% the lanes too.
-spec with_lanes(non_neg_integer(), fun(() -> T)) -> T.
with_lanes(N, F) ->
    with_env(direct_reads, false, fun() -> with_env(lanes, N, F) end).

%% The running engine's pool of lanes, once it is open: the engine is asked
%% for its socket once it is up, then the lanes connect.
-spec lanes_pool_up() -> iommap_lanes:pool().
lanes_pool_up() ->
    wait_until(fun() -> lanes_pool() =/= none end),
    lanes_pool().

%% The running engine's pool of lanes, or none.
-spec lanes_pool() -> iommap_lanes:pool() | none.
lanes_pool() ->
    case iommap_client:engine() of
        #engine{lanes = Pool} when Pool =/= undefined -> Pool;
        _ -> none
    end.

%% A file Dir/Name holding Bytes; its path.
-spec file_in(file:filename(), string(), iodata()) -> file:filename().
file_in(Dir, Name, Bytes) ->
    P = filename:join(Dir, Name),
    ok = file:write_file(P, Bytes),
    P.

%% A file Dir/Name of Size bytes that is all hole: a mapping this big costs
%% no disk and no memory until it is touched. Its path.
-spec sparse_file_in(file:filename(), string(), non_neg_integer()) -> file:filename().
sparse_file_in(Dir, Name, Size) ->
    P = filename:join(Dir, Name),
    {ok, F} = file:open(P, [write, raw]),
    try
        {ok, _} = file:position(F, Size),
        ok = file:truncate(F)
    after
        ok = file:close(F)
    end,
    P.

%% A new, empty directory under $TMPDIR (or /tmp), named
%% iommap-test-<OS pid>-<n>; remove it with remove_dir/1.
-spec tmp_dir() -> file:filename().
tmp_dir() ->
    Parent = case os:getenv("TMPDIR") of
                 Dir when is_list(Dir), Dir =/= "" -> Dir;
                 _ -> "/tmp"
             end,
    D = filename:join(Parent, "iommap-test-" ++ os:getpid() ++ "-" ++
                          integer_to_list(erlang:unique_integer([positive]))),
    ok = file:make_dir(D),
    D.

%% Removes Dir and everything in it; a Dir already gone is fine.
-spec remove_dir(file:filename()) -> ok.
remove_dir(Dir) ->
    case file:del_dir_r(Dir) of
        ok -> ok;
        {error, enoent} -> ok
    end.

%% EUnit: each test, a fun of one argument, runs with a directory of its
%% own (tmp_dir/0), removed after it however it ends. Each is named after
%% its function.
-spec in_tmp_dirs([fun((file:filename()) -> term())]) -> tuple().
in_tmp_dirs(Tests) ->
    {foreach, fun tmp_dir/0, fun remove_dir/1,
     [fun(Dir) -> {atom_to_list(element(2, erlang:fun_info(T, name))), fun() -> T(Dir) end} end
      || T <- Tests]}.

%% Common Test: a new directory for test case Case under priv_dir, added to
%% Config; case_dir/1 gives it, end_case_dir/1 removes it.
-spec init_case_dir(atom(), list()) -> list().
init_case_dir(Case, Config) ->
    {priv_dir, Priv} = lists:keyfind(priv_dir, 1, Config),
    D = filename:join(Priv, atom_to_list(Case)),
    ok = remove_dir(D), % left by a run that was killed
    ok = file:make_dir(D),
    [{case_dir, D} | lists:keydelete(case_dir, 1, Config)].

-spec end_case_dir(list()) -> ok.
end_case_dir(Config) ->
    case lists:keyfind(case_dir, 1, Config) of
        {case_dir, D} -> remove_dir(D);
        false -> ok
    end.

-spec case_dir(list()) -> file:filename().
case_dir(Config) ->
    {case_dir, D} = lists:keyfind(case_dir, 1, Config),
    D.

%% KiB free for an unprivileged writer on the file system that holds Path
%% (df's avail), or 0 if df cannot tell.
-spec free_kib(file:filename()) -> non_neg_integer().
free_kib(Path) ->
    Out = os:cmd("df -kP -- '" ++ Path ++ "' 2>/dev/null"),
    case [string:lexemes(L, " ") || L <- string:split(Out, "\n", all)] of
        [_Header, [_Fs, _Size, _Used, Avail | _] | _] ->
            try list_to_integer(Avail) catch error:badarg -> 0 end;
        _ ->
            0
    end.

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
