%% @private
%% @doc The application environment of iommap, checked once at start so a
%% wrong setting fails with a message that names it, not later in the engine.
-module(iommap_env).

-export([validate/0, get/1, engine_path/0]).

-type key() :: engine_path | spin_us | pipe_size | engine_threads | stage_min | stage_max | stage_kind
             | direct_reads | direct_readers_max | direct_files_max | lanes.

%% {Key, Default, Check, what a valid value is}
specs() ->
    [{spin_us, 50, fun(V) -> is_integer(V) andalso V >= 0 andalso V =< 1000000 end,
      "an integer of microseconds, 0..1000000"},
     {pipe_size, 1048576, fun(V) -> is_integer(V) andalso V >= 0 end,
      "a non-negative integer of bytes (0: leave the pipes as they are)"},
     {engine_threads, 1, fun(V) -> is_integer(V) andalso V >= 1 andalso V =< 1024 end,
      "an integer 1..1024 (GOMAXPROCS of the engine)"},
     {stage_min, 131072, fun(V) -> V =:= infinity orelse (is_integer(V) andalso V >= 1) end,
      "a positive integer of bytes, or infinity (never stage)"},
     {stage_max, 64, fun(V) -> is_integer(V) andalso V >= 0 end,
      "a non-negative integer: how many processes may hold a stage at once"},
     {stage_kind, auto, fun(V) -> lists:member(V, [auto, memfd, file, none]) end,
      "auto (memfd on Linux, file elsewhere), memfd, file or none"},
     {direct_reads, true, fun is_boolean/1,
      "true (read shared mappings on Linux through /proc/<engine>/mem, see iommap_direct) or false"},
     %% One VM descriptor per reading process: 256 stays well inside a
     %% default soft limit of 1024 descriptors, next to the 64 stages.
     {direct_readers_max, 256, fun(V) -> is_integer(V) andalso V >= 0 end,
      "a non-negative integer: how many processes may hold a descriptor for direct reads at once"},
     %% One VM descriptor per reading process and handle, for reads of
     %% 16 KiB and more; the readers' 256 and these 256 together stay
     %% within half of a default soft limit of 1024.
     {direct_files_max, 256, fun(V) -> is_integer(V) andalso V >= 0 end,
      "a non-negative integer: how many descriptors of mapped files direct reads may hold at once"},
     {lanes, 0, fun(V) -> is_integer(V) andalso V >= 0 andalso V =< 256 end,
      "an integer 0..256: the lanes (sockets for small calls, see iommap_lanes) in the pool; 0 turns them off"}].

%% @doc Checks every key; the first wrong one is the error.
-spec validate() -> ok | {error, {invalid_env, key(), term(), string()}}.
validate() ->
    Bad = [{invalid_env, K, V, Want}
           || {K, Default, Check, Want} <- specs(),
              V <- [application:get_env(iommap, K, Default)],
              not Check(V)],
    case Bad of
        [] -> check_path();
        [First | _] -> {error, First}
    end.

check_path() ->
    case engine_path() of
        {ok, P} ->
            case file:read_file_info(P) of
                {ok, _} -> ok;
                {error, Why} -> {error, {invalid_env, engine_path, P, "an engine binary: " ++ atom_to_list(Why)}}
            end;
        {error, _} = E -> E
    end.

%% @doc The value of a key, or its default.
-spec get(spin_us | pipe_size | engine_threads | stage_min | stage_max | stage_kind
          | direct_reads | direct_readers_max | direct_files_max | lanes) ->
          non_neg_integer() | infinity | atom().
get(K) ->
    {K, Default, _, _} = lists:keyfind(K, 1, specs()),
    application:get_env(iommap, K, Default).

%% @doc The engine binary: the engine_path key, or priv/iommap_port.
-spec engine_path() -> {ok, file:filename_all()} | {error, term()}.
%% Made absolute here: the engine is started in "/", so a relative name
%% (a relative -pa puts priv_dir there) would be looked for from there.
engine_path() ->
    case application:get_env(iommap, engine_path) of
        {ok, Path} when is_list(Path); is_binary(Path) ->
            {ok, filename:absname(Path)};
        {ok, Other} ->
            {error, {invalid_env, engine_path, Other, "a file name"}};
        undefined ->
            case code:priv_dir(iommap) of
                {error, bad_name} -> {error, {no_priv_dir, iommap}};
                Dir -> {ok, filename:absname(filename:join(Dir, "iommap_port"))}
            end
    end.
