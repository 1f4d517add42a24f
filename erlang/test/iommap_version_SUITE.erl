%% The engine must be of the application's own version (it is stamped with
%% the vsn when it is built): another version fails the start with an error
%% naming both; a development build ("dev") is let in; the engine the build
%% made is of our version.
-module(iommap_version_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-include("../src/iommap_int.hrl").

-export([all/0, end_per_testcase/2]).
-export([another_version_fails_the_start/1, a_dev_build_is_let_in/1,
         the_built_engine_is_of_our_version/1]).

all() -> [another_version_fails_the_start, a_dev_build_is_let_in,
          the_built_engine_is_of_our_version].

end_per_testcase(_, _) ->
    _ = application:stop(iommap),
    application:unset_env(iommap, engine_path),
    ok.

another_version_fails_the_start(Config) ->
    Own = own_vsn(),
    Other = <<Own/binary, "-other">>,
    ?assertEqual({error, {iommap, {{engine_version_mismatch, [{expected, Own}, {engine, Other}]},
                                   {iommap_app, start, [normal, []]}}}},
                 start_with_fake(Config, Other)),
    ?assertError({iommap_not_started, _}, iommap:open("/tmp/x", read, [])).

a_dev_build_is_let_in(Config) ->
    ?assertMatch({ok, _}, start_with_fake(Config, <<"dev">>)),
    ?assertMatch({ok, #{engine_version := <<"dev">>}}, iommap:engine_info()).

the_built_engine_is_of_our_version(_Config) ->
    {ok, _} = application:ensure_all_started(iommap),
    Own = own_vsn(),
    ?assertMatch({ok, #{engine_version := Own}}, iommap:engine_info()).

own_vsn() ->
    _ = application:load(iommap),
    {ok, Vsn} = application:get_key(iommap, vsn),
    list_to_binary(Vsn).

%% Starts the application with a stand-in engine that answers hello with
%% our protocol version and Vsn, then reads its input to the end.
start_with_fake(Config, Vsn) ->
    Reply = term_to_binary({1, {ok, {?PROTOCOL_VERSION, Vsn}}}),
    Frame = <<(byte_size(Reply)):32, Reply/binary>>,
    Octal = lists:flatten([io_lib:format("\\~3.8.0b", [B]) || <<B>> <= Frame]),
    Fake = filename:join(?config(priv_dir, Config), "engine_" ++ binary_to_list(Vsn)),
    ok = file:write_file(Fake, ["#!/bin/sh\nprintf '", Octal, "'\nexec cat >/dev/null\n"]),
    ok = file:change_mode(Fake, 8#755),
    _ = application:stop(iommap),
    _ = application:load(iommap),
    ok = application:set_env(iommap, engine_path, Fake),
    application:ensure_all_started(iommap).
