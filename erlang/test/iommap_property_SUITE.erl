%% Property-style tests with hand-rolled generators (no hex packages here):
%% random and hostile calls on the public API, each result checked against a
%% simple model of the file, and the file's bytes checked against the model
%% at the end. Every run prints what it did and what came back.
-module(iommap_property_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_testcase/2, end_per_testcase/2, handle_calls_match_the_model/1, handle_calls_match_the_model_staged/1,
         handle_calls_match_the_model_file_stages/1,
         hostile_paths_and_options/1]).

-define(RUNS, 40).
-define(OPS, 250).

all() -> [handle_calls_match_the_model, handle_calls_match_the_model_staged,
          handle_calls_match_the_model_file_stages,
          hostile_paths_and_options].

%% Each case makes its files in a directory of its own, removed when it
%% ends, and finds the engine running, whichever cases ran before it.
init_per_testcase(Case, Config) ->
    {ok, _} = application:ensure_all_started(iommap),
    iommap_test_lib:init_case_dir(Case, Config).

end_per_testcase(_, Config) ->
    iommap_test_lib:end_case_dir(Config).

%% The model of one handle on one file.
-record(m, {h, path, mode, open = true, closed_for = 0, bytes}).

handle_calls_match_the_model(Config) ->
    Seed = erlang:phash2(erlang:monotonic_time()),
    rand:seed(exsss, Seed),
    ct:pal("seed ~p (rand:seed(exsss, Seed) reproduces a run)", [Seed]),
    Counts = lists:foldl(
               fun(Run, Acc) ->
                       Mode = lists:nth(rand:uniform(3), [read, write, read_write]),
                       run(Config, Run, Mode, Acc)
               end, #{}, lists:seq(1, ?RUNS)),
    ct:pal("~p runs x ~p calls, results by kind: ~p", [?RUNS, ?OPS, lists:sort(maps:to_list(Counts))]).

%% The same with stage_min at 64 bytes, so most reads and writes of the
%% model go through the caller's stage instead of the pipe, and must give
%% the same answers, truncation and all.
handle_calls_match_the_model_staged(Config) ->
    iommap_test_lib:with_env(stage_min, 64, fun() ->
                                    handle_calls_match_the_model(Config),
                                    %% and the stage was there to use
                                    {ok, #{stages := 1}} = iommap:engine_info()
                            end).

%% The same with the stages of systems without memfd: files in a private
%% directory, named only until the first transfer.
handle_calls_match_the_model_file_stages(Config) ->
    iommap_test_lib:with_env(stage_kind, file, fun() ->
        iommap_test_lib:with_env(stage_min, 64, fun() ->
            handle_calls_match_the_model(Config),
            {ok, #{stages := 1, os_pid := OsPid}} = iommap:engine_info(),
            Fds = "/proc/" ++ integer_to_list(OsPid) ++ "/fd/",
            {ok, Names} = file:list_dir(Fds),
            Targets = [T || N <- Names, {ok, T} <- [file:read_link(Fds ++ N)]],
            %% the engine's descriptor of the stage: a removed file
            [_] = [T || T <- Targets, string:find(T, "iommap-stages-") =/= nomatch,
                        string:find(T, "(deleted)") =/= nomatch],
            [] = [T || T <- Targets, string:find(T, "memfd:") =/= nomatch]
        end)
    end).

run(Config, Run, Mode, Counts0) ->
    Init = rand:bytes(rand:uniform(3 * 4096)),
    P = iommap_test_lib:file_in(?config(case_dir, Config), "model" ++ integer_to_list(Run), Init),
    {ok, H} = iommap:open(P, Mode, []),
    {M, Counts} = lists:foldl(fun(_, {M0, C}) -> step(H, M0, C) end,
                              {#m{h = H, path = P, mode = Mode, bytes = Init}, Counts0}, lists:seq(1, ?OPS)),
    {ok, Disk} = file:read_file(P),
    ?assertEqual(byte_size(M#m.bytes), byte_size(Disk)),
    ?assert(M#m.bytes =:= Disk),
    _ = iommap:close(M#m.h),
    Counts.

%% A few calls after a close, the model opens the file again, so most calls
%% meet an open handle.
step(_, #m{open = false, closed_for = 5} = M, Counts) ->
    {ok, H} = iommap:open(M#m.path, M#m.mode, []),
    {M#m{h = H, open = true, closed_for = 0}, Counts};
step(_, #m{open = false, closed_for = N} = M, Counts) ->
    step1(M#m.h, M#m{closed_for = N + 1}, Counts);
step(_, M, Counts) ->
    step1(M#m.h, M, Counts).

step1(H, M, Counts) ->
    {Call, Args} = gen_call(H, M),
    Got = try apply(iommap, Call, Args) catch error:badarg -> {raised, badarg} end,
    {Want, M1} = expect(Call, Args, M),
    case Got =:= Want of
        true -> ok;
        false -> ct:fail({mismatch, Call, show(Args), {got, show(Got)}, {want, show(Want)}})
    end,
    {M1, maps:update_with(kind(Got), fun(X) -> X + 1 end, 1, Counts)}.

show(B) when is_binary(B), byte_size(B) > 16 -> {binary, byte_size(B)};
show(T) when is_tuple(T) -> list_to_tuple([show(E) || E <- tuple_to_list(T)]);
show(L) when is_list(L) -> [show(E) || E <- L];
show(X) -> X.

kind(ok) -> ok;
kind({ok, _}) -> ok;
kind({error, E}) -> E;
kind({raised, E}) -> {raised, E}.

%% Generators

gen_call(H, M) ->
    S = byte_size(M#m.bytes),
    Hd = pick([{9, H}, {1, make_ref()}, {1, not_a_handle}]),
    case rand:uniform(20) of
        N when N =< 6 -> {pread, [Hd, int(S), int(S)]};
        N when N =< 8 -> {region_binary, [Hd, int(S), int(S)]};
        N when N =< 13 -> {pwrite, [Hd, int(S), data()]};
        14 -> {truncate, [Hd, pick([{3, rand:uniform(4 * 4096)}, {1, 0}, {1, -1}, {1, 1.0}, {1, 1 bsl (63 + rand:uniform(60))}])]};
        15 -> {position, [Hd]};
        16 -> {sync, [Hd, pick([{3, sync}, {3, async}, {1, later}])]};
        17 -> {advise, [Hd, pick([{2, 0}, {2, 4096 * rand:uniform(3)}, {1, 1}, {1, -4096}, {1, x}]),
                        int(S), pick([{5, willneed}, {1, normal}, {1, nonsense}])]};
        18 -> {close, [Hd]};
        _ -> {pread, [Hd, int(S), int(S)]}
    end.

%% An offset or length: mostly around the edges of the mapping, sometimes hostile.
int(S) ->
    pick([{4, rand:uniform(S + 1) - 1}, {2, 0}, {2, S}, {2, max(0, S - 1)}, {2, S + 1},
          {1, -1}, {1, -(1 bsl 70)}, {1, big()}, {1, 1 bsl 64}, {1, (1 bsl 64) - 1},
          {1, 1.5}, {1, foo}, {1, "1"}]).

big() -> 1 bsl (32 + rand:uniform(100)).

data() ->
    pick([{4, rand:bytes(rand:uniform(300) - 1)},
          {3, deep(rand:uniform(4))},
          {1, []},
          {1, [256]}, {1, [foo]}, {1, an_atom}, {1, <<1:1>>}, {1, [<<1:3>>]}, {1, [1 | 2]}]).

deep(0) -> rand:bytes(rand:uniform(20) - 1);
deep(D) ->
    [case rand:uniform(3) of
         1 -> rand:uniform(256) - 1;
         2 -> rand:bytes(rand:uniform(10));
         3 -> deep(D - 1)
     end || _ <- lists:seq(1, rand:uniform(4))].

pick(Weighted) ->
    Total = lists:sum([W || {W, _} <- Weighted]),
    pick(rand:uniform(Total), Weighted).
pick(N, [{W, V} | _]) when N =< W -> V;
pick(N, [{W, _} | T]) -> pick(N - W, T).

%% The model: docs/API.md's check order, then the effect.

expect(_, [Hd | _], M) when not is_reference(Hd) -> {{raised, badarg}, M};
expect(Call, [Hd | Args], M) ->
    Known = M#m.open andalso Hd =:= M#m.h, % make_ref() is foreign: closed
    expect(Call, Args, M, Known).

expect(Read, [Off, Len], M, Known) when Read =:= pread; Read =:= region_binary ->
    S = byte_size(M#m.bytes),
    R = if
            not is_integer(Off); not is_integer(Len) -> {raised, badarg};
            Off < 0; Len < 0 -> {error, badarg};
            not Known -> {error, closed};
            M#m.mode =:= write -> {error, eacces};
            Off > S; Len > S - Off -> {error, out_of_bounds};
            true -> {ok, binary:part(M#m.bytes, Off, Len)}
        end,
    {R, M};
expect(pwrite, [Off, Data], M, Known) ->
    S = byte_size(M#m.bytes),
    case iodata(Data) of
        _ when not is_integer(Off) -> {{raised, badarg}, M};
        error -> {{raised, badarg}, M};
        _ when Off < 0 -> {{error, badarg}, M};
        _ when not Known -> {{error, closed}, M};
        _ when M#m.mode =:= read -> {{error, eacces}, M};
        Bin when Off > S; byte_size(Bin) > S - Off -> {{error, out_of_bounds}, M};
        Bin ->
            <<Pre:Off/binary, _:(byte_size(Bin))/binary, Post/binary>> = M#m.bytes,
            {ok, M#m{bytes = <<Pre/binary, Bin/binary, Post/binary>>}}
    end;
expect(truncate, [N], M, Known) ->
    S = byte_size(M#m.bytes),
    if
        not is_integer(N) -> {{raised, badarg}, M};
        N < 0 -> {{error, badarg}, M};
        not Known -> {{error, closed}, M};
        M#m.mode =:= read -> {{error, eacces}, M};
        N =:= 0 -> {{error, einval}, M};
        N >= 1 bsl 63 -> {{error, efbig}, M}; % no file can be that large
        N >= S -> {ok, M#m{bytes = <<(M#m.bytes)/binary, 0:((N - S) * 8)>>}};
        true -> {ok, M#m{bytes = binary:part(M#m.bytes, 0, N)}}
    end;
expect(position, [], M, Known) ->
    {case Known of true -> {ok, byte_size(M#m.bytes)}; false -> {error, closed} end, M};
expect(sync, [Mode], M, Known) ->
    {if
         Mode =/= sync, Mode =/= async -> {raised, badarg};
         not Known -> {error, closed};
         true -> ok
     end, M};
expect(advise, [Off, Len, Hint], M, Known) ->
    S = byte_size(M#m.bytes),
    Hints = [normal, random, sequential, willneed, dontneed],
    {if
         not is_integer(Off); not is_integer(Len) -> {raised, badarg};
         true ->
             case lists:member(Hint, Hints) of
                 false -> {raised, badarg};
                 true when Off < 0; Len < 0 -> {error, badarg};
                 true when not Known -> {error, closed};
                 true when Off > S; Len > S - Off -> {error, out_of_bounds};
                 true when Off rem 4096 =/= 0 -> {error, einval};
                 true -> ok
             end
     end, M};
expect(close, [], M, true) -> {ok, M#m{open = false}};
expect(close, [], M, false) -> {{error, closed}, M}.

iodata(D) ->
    try iolist_to_binary(D) catch error:badarg -> error end.

%% Paths and options: hostile ones raise or return as docs/API.md says, and
%% nothing is left on disk by a failed open.
hostile_paths_and_options(Config) ->
    Dir = ?config(case_dir, Config),
    Cases =
        [{<<"a", 0, "b">>, [], {raised, badarg}},
         {"a\0b", [], {raised, badarg}},
         {[Dir, "/", <<"x", 0>>], [], {raised, badarg}},
         {some_atom, [], {error, badarg}},
         {42, [], {error, badarg}},
         {{tuple}, [], {error, badarg}},
         {[16#110000], [], {error, badarg}},
         {[-1], [], {error, badarg}},
         {[Dir, "/", foo], [], {error, badarg}},
         {filename:join(Dir, "ok-ünï"), [create, {size, 10}], ok},
         {filename:join(Dir, "nope"), [], {error, enoent}},
         {filename:join(Dir, "sz"), [{size, -1}], {raised, badarg}},
         {filename:join(Dir, "sz"), [{size, 1.0}], {raised, badarg}},
         {filename:join(Dir, "sz"), [{size, 1 bsl 64}, create], {error, efbig}},
         {filename:join(Dir, "sz"), [{size, 1 bsl 62}, create], {error, efbig}},
         {filename:join(Dir, "sz"), [create | improper], {raised, badarg}},
         {filename:join(Dir, "sz"), create, {raised, badarg}},
         {filename:join(Dir, "sz"), [create], {error, einval}},
         {filename:join(Dir, "sz"), [{size, 0}, create], {error, einval}}],
    [begin
         Got = try iommap:open(Path, read_write, Opts) of
                   {ok, H} -> ok = iommap:close(H), ok;
                   Other -> Other
               catch error:badarg -> {raised, badarg}
               end,
         ?assertEqual({Path, Opts, Want}, {Path, Opts, Got})
     end || {Path, Opts, Want} <- Cases],
    ?assertNot(filelib:is_file(filename:join(Dir, "sz"))),
    ct:pal("~p hostile open calls, each as docs/API.md says", [length(Cases)]).
