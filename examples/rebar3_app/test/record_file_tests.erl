-module(record_file_tests).
-include_lib("eunit/include/eunit.hrl").

records_round_trip_test() ->
    Path = filename:join("/tmp", "rebar3_app-" ++ os:getpid() ++ ".dat"),
    _ = file:delete(Path),
    {ok, RF} = record_file:open(Path, 32, 100),
    ok = record_file:put(RF, 7, <<"seven">>),
    ?assertEqual({ok, <<"seven", 0:(27 * 8)>>}, record_file:get(RF, 7)),
    ?assertEqual({error, out_of_bounds}, record_file:get(RF, 100)),
    ?assertEqual({error, too_big}, record_file:put(RF, 1, binary:copy(<<1>>, 33))),
    ok = record_file:close(RF),
    ?assertEqual(3200, filelib:file_size(Path)),
    ok = file:delete(Path).

engine_came_from_the_dependency_build_test() ->
    Engine = filename:join(code:priv_dir(iommap), "iommap_port"),
    ?assert(filelib:is_regular(Engine)).
