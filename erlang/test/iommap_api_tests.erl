%% One test per row and rule of docs/API.md, through the public API.
-module(iommap_api_tests).
-include_lib("eunit/include/eunit.hrl").
-include_lib("kernel/include/file.hrl").

%% helpers: each test gets a directory of its own, D, removed after it

path(D, Name) ->
    filename:join(D, Name).

file_with(D, Name, Bytes) ->
    iommap_test_lib:file_in(D, Name, Bytes).

open_rw(D, Bytes) ->
    {ok, H} = iommap:open(file_with(D, "rw" ++ integer_to_list(erlang:unique_integer([positive])), Bytes),
                          read_write, []),
    H.

size_of(P) ->
    {ok, #file_info{size = S}} = file:read_file_info(P),
    S.

%% One test per function below, each in a directory of its own (see
%% iommap_test_lib:in_tmp_dirs/1), removed after it however it ends.
api_test_() ->
    iommap_test_lib:in_tmp_dirs(
      [fun open_returns_a_reference/1,
       fun open2_is_read_write/1,
       fun mode_atoms_in_options_are_ignored/1,
       fun close_twice/1,
       fun pread_reads_the_mapping_at_each_call/1,
       fun pwrite_takes_iodata/1,
       fun region_binary_has_the_bytes_of_pread/1,
       fun region_binary_is_a_copy_made_at_the_call/1,
       fun sync/1,
       fun truncate_and_position/1,
       fun truncate_private_rereads_the_file/1,
       fun truncate_needs_write/1,
       fun advise/1,
       fun position_is_the_mapping_size/1,
       fun any_process_may_use_and_close/1,
       fun binary_path_is_raw_bytes/1,
       fun unicode_chardata_path/1,
       fun nul_in_path_raises/1,
       fun path_of_wrong_type_is_error/1,
       fun unknown_mode_raises/1,
       fun options/1,
       fun shared_private_last_wins_and_default_shared/1,
       fun huge_sizes_are_efbig/1,
       fun repeated_size_last_wins/1,
       fun modes/1,
       fun files_are_cloexec_and_created_0644/1,
       fun read_with_create_or_truncate_is_einval_and_touches_nothing/1,
       fun size_grows_never_shrinks/1,
       fun size_allocates_blocks/1,
       fun truncate_option_cuts_then_grows/1,
       fun zero_size_mapping_is_einval_and_leaves_disk/1,
       fun create_keeps_an_existing_file/1,
       fun missing_file_is_enoent/1,
       fun bad_types_raise/1,
       fun negative_is_error_badarg_even_when_closed/1,
       fun closed_before_mode_before_bounds/1,
       fun a_foreign_reference_is_closed/1,
       fun bounds/1,
       fun no_partial_writes_and_no_growth/1,
       fun huge_read_is_refused_without_allocating/1,
       fun errors_are_posix_atoms/1,
       fun permission_denied_is_eacces/1,
       fun sigbus_after_external_truncation/1,
       fun sigbus_from_another_handle_truncating/1,
       fun more_than_a_frame_is_enomem/1,
       fun info/1,
       fun engine_version_is_the_application_vsn/1
      ]).

%% Types and functions

open_returns_a_reference(D) ->
    {ok, H} = iommap:open(file_with(D, "ref", <<"abc">>), read, []),
    ?assert(is_reference(H)),
    ok = iommap:close(H).

open2_is_read_write(D) ->
    P = file_with(D, "open2", <<"abcd">>),
    {ok, H} = iommap:open(P, []),
    ?assertEqual(ok, iommap:pwrite(H, 0, <<"X">>)),
    ?assertEqual({ok, <<"Xbcd">>}, iommap:pread(H, 0, 4)),
    {ok, #{mode := read_write, path := PBin, size := 4, options := [shared], owner := Owner}} = iommap:info(H),
    ?assertEqual({list_to_binary(P), self()}, {PBin, Owner}),
    ok = iommap:close(H).

mode_atoms_in_options_are_ignored(D) ->
    P = file_with(D, "modeopt", <<"abcd">>),
    {ok, H} = iommap:open(P, read, [read_write, write]),
    ?assertEqual({error, eacces}, iommap:pwrite(H, 0, <<"X">>)),
    ok = iommap:close(H).

close_twice(D) ->
    H = open_rw(D, <<"abc">>),
    ?assertEqual(ok, iommap:close(H)),
    ?assertEqual({error, closed}, iommap:close(H)).

%% pread answers with the bytes of the mapping at the moment of the call:
%% each write, through this handle, through another handle of the file or
%% through the file itself, is seen by the next pread.
pread_reads_the_mapping_at_each_call(D) ->
    P = file_with(D, "now", <<"hello world">>),
    {ok, H} = iommap:open(P, read_write, []),
    {ok, Other} = iommap:open(P, read_write, []),
    ?assertEqual({ok, <<"world">>}, iommap:pread(H, 6, 5)),
    ok = iommap:pwrite(H, 6, <<"WORLD">>),
    ?assertEqual({ok, <<"WORLD">>}, iommap:pread(H, 6, 5)),
    ok = iommap:pwrite(Other, 6, <<"there">>),
    ?assertEqual({ok, <<"there">>}, iommap:pread(H, 6, 5)),
    {ok, F} = file:open(P, [read, write, raw, binary]),
    ok = file:pwrite(F, 0, <<"HELLO">>),
    ok = file:close(F),
    ?assertEqual({ok, <<"HELLO there">>}, iommap:pread(H, 0, 11)),
    ok = iommap:close(Other),
    ok = iommap:close(H).

pwrite_takes_iodata(D) ->
    H = open_rw(D, <<0:80>>),
    ?assertEqual(ok, iommap:pwrite(H, 1, [<<"ab">>, $c, [<<"d">>, "ef"], <<>>])),
    ?assertEqual({ok, <<0, "abcdef", 0, 0, 0>>}, iommap:pread(H, 0, 10)),
    ?assertEqual(ok, iommap:pwrite(H, 0, [])),
    ok = iommap:close(H).

region_binary_has_the_bytes_of_pread(D) ->
    Bytes = crypto:strong_rand_bytes(70000),
    H = open_rw(D, Bytes),
    [begin
         ?assertEqual({ok, binary:part(Bytes, O, L)}, iommap:pread(H, O, L)),
         ?assertEqual({ok, binary:part(Bytes, O, L)}, iommap:region_binary(H, O, L))
     end || {O, L} <- [{0, 0}, {0, 1}, {123, 4000}, {0, 70000}, {70000, 0}, {69999, 1}]],
    ?assertEqual({error, out_of_bounds}, iommap:region_binary(H, 69999, 2)),
    ok = iommap:close(H).

%% region_binary is a copy made at the call, not a view of the mapping: the
%% next call sees a write made since, a range the file has lost under the
%% mapping is sigbus (as for pread) and crashes nothing, and after a
%% truncate and a close the binary still has the bytes of its moment.
region_binary_is_a_copy_made_at_the_call(D) ->
    P = file_with(D, "region", binary:copy(<<"z">>, 8192)),
    {ok, H} = iommap:open(P, read_write, []),
    OsPid = iommap_test_lib:engine_os_pid(),
    {ok, R} = iommap:region_binary(H, 4096, 100),
    ?assertEqual(binary:copy(<<"z">>, 100), R),
    ok = iommap:pwrite(H, 4096, <<"new">>),
    ?assertEqual({ok, <<"newzz">>}, iommap:region_binary(H, 4096, 5)),
    %% another writer cuts the file to one page; the mapping keeps its size
    {ok, F} = file:open(P, [read, write, raw]),
    {ok, 4096} = file:position(F, 4096),
    ok = file:truncate(F),
    ok = file:close(F),
    ?assertEqual(4096, size_of(P)),
    ?assertEqual({ok, 8192}, iommap:position(H)),
    ?assertEqual({error, sigbus}, iommap:region_binary(H, 4096, 100)),
    ?assertEqual({error, sigbus}, iommap:pread(H, 4096, 100)),
    ?assertEqual({ok, binary:copy(<<"z">>, 100)}, iommap:region_binary(H, 3996, 100)), % up to the new end
    %% the handle's own truncate remaps to the file's new size
    ok = iommap:truncate(H, 4096),
    ?assertEqual({ok, 4096}, iommap:position(H)),
    ?assertEqual({error, out_of_bounds}, iommap:region_binary(H, 4096, 1)),
    ok = iommap:close(H),
    ?assertEqual({error, closed}, iommap:region_binary(H, 0, 1)),
    ?assertEqual(OsPid, iommap_test_lib:engine_os_pid()),
    ?assertEqual(binary:copy(<<"z">>, 100), R).

sync(D) ->
    P = file_with(D, "sync", <<0:64>>),
    {ok, H} = iommap:open(P, read_write, []),
    ok = iommap:pwrite(H, 0, <<"durable!">>),
    ?assertEqual(ok, iommap:sync(H)),
    ?assertEqual(ok, iommap:sync(H, sync)),
    ?assertEqual(ok, iommap:sync(H, async)),
    ?assertEqual({ok, <<"durable!">>}, file:read_file(P)),
    ok = iommap:close(H).

truncate_and_position(D) ->
    P = file_with(D, "trunc", <<"abcdef">>),
    {ok, H} = iommap:open(P, read_write, []),
    ?assertEqual({ok, 6}, iommap:position(H)),
    ?assertEqual(ok, iommap:truncate(H, 10)),
    ?assertEqual({ok, 10}, iommap:position(H)),
    ?assertEqual(10, size_of(P)),
    ?assertEqual({ok, <<"abcdef", 0, 0, 0, 0>>}, iommap:pread(H, 0, 10)),
    ?assertEqual(ok, iommap:truncate(H, 3)),
    ?assertEqual({ok, 3}, iommap:position(H)),
    ?assertEqual({ok, <<"abc">>}, file:read_file(P)),
    ?assertEqual({error, out_of_bounds}, iommap:pread(H, 0, 4)),
    ?assertEqual({error, einval}, iommap:truncate(H, 0)),
    ok = iommap:close(H).

truncate_private_rereads_the_file(D) ->
    P = file_with(D, "tpriv", <<"abcd">>),
    {ok, H} = iommap:open(P, read_write, [private]),
    ok = iommap:pwrite(H, 0, <<"XY">>),
    ?assertEqual({ok, <<"XYcd">>}, iommap:pread(H, 0, 4)),
    ok = iommap:truncate(H, 4),
    ?assertEqual({ok, <<"abcd">>}, iommap:pread(H, 0, 4)),
    ok = iommap:close(H).

truncate_needs_write(D) ->
    {ok, H} = iommap:open(file_with(D, "tro", <<"abcd">>), read, []),
    ?assertEqual({error, eacces}, iommap:truncate(H, 8)),
    {ok, W} = iommap:open(file_with(D, "two", <<"abcd">>), write, []),
    ?assertEqual(ok, iommap:truncate(W, 8)),
    ?assertEqual({ok, 8}, iommap:position(W)),
    ok = iommap:close(H), ok = iommap:close(W).

advise(D) ->
    H = open_rw(D, <<0:(3 * 4096 * 8)>>),
    [?assertEqual(ok, iommap:advise(H, 0, 4096, Hint))
     || Hint <- [normal, random, sequential, willneed, dontneed]],
    ?assertEqual(ok, iommap:advise(H, 4096, 0, willneed)),
    ?assertEqual(ok, iommap:advise(H, 3 * 4096, 0, normal)),
    ?assertEqual({error, einval}, iommap:advise(H, 1, 100, willneed)),
    ?assertEqual({error, out_of_bounds}, iommap:advise(H, 4096, 3 * 4096, willneed)),
    ?assertError(badarg, iommap:advise(H, 0, 4096, sometimes)),
    ok = iommap:close(H).

position_is_the_mapping_size(D) ->
    H = open_rw(D, <<0:(5000 * 8)>>),
    ok = iommap:pwrite(H, 100, <<"x">>),
    {ok, _} = iommap:pread(H, 200, 10),
    ?assertEqual({ok, 5000}, iommap:position(H)),
    ok = iommap:close(H).

any_process_may_use_and_close(D) ->
    H = open_rw(D, <<"abcdef">>),
    Self = self(),
    spawn(fun() ->
                  R1 = iommap:pwrite(H, 0, <<"Q">>),
                  R2 = iommap:pread(H, 0, 2),
                  R3 = iommap:close(H),
                  Self ! {other, R1, R2, R3}
          end),
    receive {other, A, B, C} -> ?assertEqual({ok, {ok, <<"Qb">>}, ok}, {A, B, C}) end,
    ?assertEqual({error, closed}, iommap:pread(H, 0, 1)).

%% open/3: paths

binary_path_is_raw_bytes(D) ->
    Name = <<"raw-", 16#e9, ".dat">>, % latin-1 byte, not valid UTF-8
    P = <<(list_to_binary(D))/binary, "/", Name/binary>>,
    ok = file:write_file(P, <<"raw">>),
    {ok, H} = iommap:open(P, read, []),
    ?assertEqual({ok, <<"raw">>}, iommap:pread(H, 0, 3)),
    ok = iommap:close(H).

unicode_chardata_path(D) ->
    P = filename:join(D, "ünïcødé-файл.dat"),
    ok = file:write_file(P, <<"uni">>),
    {ok, H} = iommap:open(P, read, []),
    ?assertEqual({ok, <<"uni">>}, iommap:pread(H, 0, 3)),
    ok = iommap:close(H),
    {ok, H2} = iommap:open([D, "/", <<"ünïcødé-"/utf8>>, "файл.dat"], read, []),
    ok = iommap:close(H2).

nul_in_path_raises(_D) ->
    ?assertError(badarg, iommap:open(<<"/tmp/a", 0, "b">>, read, [])),
    ?assertError(badarg, iommap:open("/tmp/a\0b", read, [])).

path_of_wrong_type_is_error(_D) ->
    ?assertEqual({error, badarg}, iommap:open(some_atom, read, [])),
    ?assertEqual({error, badarg}, iommap:open(42, read, [])),
    ?assertEqual({error, badarg}, iommap:open([-1], read, [])).

unknown_mode_raises(D) ->
    P = file_with(D, "mode", <<"abc">>),
    ?assertError(badarg, iommap:open(P, append, [])),
    ?assertError(badarg, iommap:open(P, "read", [])).

options(D) ->
    P = file_with(D, "opts", <<"abcd">>),
    {ok, H} = iommap:open(P, read_write, [whatever, {other, 1}, lock, populate, nocache]),
    ?assertEqual({ok, <<"abcd">>}, iommap:pread(H, 0, 4)),
    ok = iommap:close(H),
    ?assertError(badarg, iommap:open(P, read_write, [{size, -1}])),
    ?assertError(badarg, iommap:open(P, read_write, [{size, foo}])),
    ?assertError(badarg, iommap:open(P, read_write, [{size, 1.5}])),
    ?assertError(badarg, iommap:open(P, read_write, not_a_list)).

shared_private_last_wins_and_default_shared(D) ->
    Cases = [{[], shared}, {[private], private}, {[private, shared], shared},
             {[shared, private], private}],
    [begin
         P = file_with(D, "share", <<"aaaa">>),
         {ok, H} = iommap:open(P, read_write, Opts),
         ok = iommap:pwrite(H, 0, <<"b">>),
         {ok, File} = file:read_file(P),
         ?assertEqual({Opts, case Want of shared -> <<"baaa">>; private -> <<"aaaa">> end},
                      {Opts, File}),
         {ok, #{options := [Want]}} = iommap:info(H),
         ok = iommap:close(H)
     end || {Opts, Want} <- Cases].

huge_sizes_are_efbig(D) ->
    P = path(D, "huge"),
    ?assertEqual({error, efbig}, iommap:open(P, read_write, [create, {size, 1 bsl 20000}])),
    ?assertNot(filelib:is_file(P)),
    H = open_rw(D, <<"abcd">>),
    ?assertEqual({error, efbig}, iommap:truncate(H, 1 bsl 20000)),
    ok = iommap:close(H).

repeated_size_last_wins(D) ->
    P = path(D, "size2"),
    {ok, H} = iommap:open(P, read_write, [create, {size, 100}, {size, 300}]),
    ?assertEqual({ok, 300}, iommap:position(H)),
    ok = iommap:close(H).

modes(D) ->
    P = file_with(D, "modes", <<"abcd">>),
    {ok, R} = iommap:open(P, read, []),
    {ok, W} = iommap:open(P, write, []),
    {ok, RW} = iommap:open(P, read_write, []),
    ?assertEqual({error, eacces}, iommap:pwrite(R, 0, <<"x">>)),
    ?assertEqual({ok, <<"ab">>}, iommap:pread(R, 0, 2)),
    ?assertEqual({error, eacces}, iommap:pread(W, 0, 1)),
    ?assertEqual({error, eacces}, iommap:region_binary(W, 0, 1)),
    ?assertEqual(ok, iommap:pwrite(W, 0, <<"W">>)),
    ?assertEqual({ok, <<"Wbcd">>}, iommap:pread(RW, 0, 4)),
    ?assertEqual({ok, <<"Wb">>}, iommap:pread(R, 0, 2)),
    [ok = iommap:close(H) || H <- [R, W, RW]].

files_are_cloexec_and_created_0644(D) ->
    P = path(D, "cloexec"),
    {ok, H} = iommap:open(P, read_write, [create, {size, 10}]),
    {ok, #file_info{mode = Mode}} = file:read_file_info(P),
    ?assertEqual(8#644, Mode band 8#777),
    {ok, #{os_pid := Pid}} = iommap:engine_info(),
    Fd = engine_fd_of(Pid, P),
    {ok, Info} = file:read_file("/proc/" ++ integer_to_list(Pid) ++ "/fdinfo/" ++ Fd),
    [FlagsOct] = [F || Line <- string:split(binary_to_list(Info), "\n", all),
                       ["flags:", F] <- [string:lexemes(Line, " \t")]],
    ?assert(list_to_integer(FlagsOct, 8) band 8#2000000 =/= 0), % O_CLOEXEC
    ok = iommap:close(H).

engine_fd_of(Pid, P) ->
    D = "/proc/" ++ integer_to_list(Pid) ++ "/fd",
    {ok, Fds} = file:list_dir(D),
    [Fd] = [Fd || Fd <- Fds, file:read_link(filename:join(D, Fd)) =:= {ok, P}],
    Fd.

read_with_create_or_truncate_is_einval_and_touches_nothing(D) ->
    Missing = path(D, "rc-missing"),
    ?assertEqual({error, einval}, iommap:open(Missing, read, [create, {size, 10}])),
    ?assertNot(filelib:is_file(Missing)),
    P = file_with(D, "rt", <<"keep">>),
    ?assertEqual({error, einval}, iommap:open(P, read, [truncate, {size, 10}])),
    ?assertEqual({ok, <<"keep">>}, file:read_file(P)).

size_grows_never_shrinks(D) ->
    P = file_with(D, "grow", <<"abc">>),
    {ok, H} = iommap:open(P, read_write, [{size, 4096}]),
    ?assertEqual({ok, 4096}, iommap:position(H)),
    ?assertEqual(4096, size_of(P)),
    ?assertEqual({ok, <<"abc", 0>>}, iommap:pread(H, 0, 4)),
    ok = iommap:close(H),
    {ok, H2} = iommap:open(P, read_write, [{size, 10}]),
    ?assertEqual({ok, 4096}, iommap:position(H2)),
    ?assertEqual(4096, size_of(P)),
    ok = iommap:close(H2).

size_allocates_blocks(D) ->
    P = path(D, "alloc"),
    {ok, H} = iommap:open(P, read_write, [create, {size, 1 bsl 20}]),
    Blocks = list_to_integer(string:trim(os:cmd("stat -c %b " ++ P))),
    ?assert(Blocks * 512 >= 1 bsl 20),
    ok = iommap:close(H).

truncate_option_cuts_then_grows(D) ->
    P = file_with(D, "topt", binary:copy(<<"x">>, 8192)),
    {ok, H} = iommap:open(P, read_write, [truncate, {size, 100}]),
    ?assertEqual({ok, 100}, iommap:position(H)),
    ?assertEqual({ok, <<0:800>>}, iommap:pread(H, 0, 100)),
    ok = iommap:close(H).

zero_size_mapping_is_einval_and_leaves_disk(D) ->
    Empty = file_with(D, "empty", <<>>),
    ?assertEqual({error, einval}, iommap:open(Empty, read_write, [])),
    Missing = path(D, "nosize"),
    ?assertEqual({error, einval}, iommap:open(Missing, read_write, [create])),
    ?assertNot(filelib:is_file(Missing)),
    ?assertEqual({error, einval}, iommap:open(Missing, read_write, [create, {size, 0}])),
    ?assertNot(filelib:is_file(Missing)),
    Full = file_with(D, "full", <<"data">>),
    ?assertEqual({error, einval}, iommap:open(Full, read_write, [{size, 0}])),
    ?assertEqual({error, einval}, iommap:open(Full, read_write, [truncate])),
    ?assertEqual({ok, <<"data">>}, file:read_file(Full)).

create_keeps_an_existing_file(D) ->
    P = file_with(D, "exists", <<"data">>),
    {ok, H} = iommap:open(P, read_write, [create]),
    ?assertEqual({ok, <<"data">>}, iommap:pread(H, 0, 4)),
    ok = iommap:close(H).

missing_file_is_enoent(D) ->
    ?assertEqual({error, enoent}, iommap:open(path(D, "missing"), read_write, [])),
    ?assertEqual({error, enoent}, iommap:open(path(D, "missing"), read, [{size, 10}])).

%% Check order and bounds

bad_types_raise(D) ->
    H = open_rw(D, <<"abcd">>),
    ?assertError(badarg, iommap:close(not_a_ref)),
    ?assertError(badarg, iommap:pread(self(), 0, 1)),
    ?assertError(badarg, iommap:pread(H, 0.0, 1)),
    ?assertError(badarg, iommap:pread(H, 0, "1")),
    ?assertError(badarg, iommap:region_binary(H, a, 1)),
    ?assertError(badarg, iommap:pwrite(H, 0, atom)),
    ?assertError(badarg, iommap:pwrite(H, 0, [256])),
    ?assertError(badarg, iommap:pwrite(H, 0, [<<1:1>>])),
    ?assertError(badarg, iommap:pwrite(H, x, <<>>)),
    ?assertError(badarg, iommap:sync(H, maybe)),
    ?assertError(badarg, iommap:sync(x)),
    ?assertError(badarg, iommap:truncate(H, 1.0)),
    ?assertError(badarg, iommap:advise(H, 0, x, normal)),
    ?assertError(badarg, iommap:position(123)),
    ?assertError(badarg, iommap:controlling_process(H, not_a_pid)),
    ok = iommap:close(H).

negative_is_error_badarg_even_when_closed(D) ->
    H = open_rw(D, <<"abcd">>),
    ok = iommap:close(H),
    ?assertEqual({error, badarg}, iommap:pread(H, -1, 1)),
    ?assertEqual({error, badarg}, iommap:pread(H, 0, -1)),
    ?assertEqual({error, badarg}, iommap:region_binary(H, -1, 0)),
    ?assertEqual({error, badarg}, iommap:pwrite(H, -5, <<"x">>)),
    ?assertEqual({error, badarg}, iommap:truncate(H, -1)),
    ?assertEqual({error, badarg}, iommap:advise(H, -4096, 0, normal)),
    ?assertEqual({error, badarg}, iommap:advise(H, 0, -1, normal)).

closed_before_mode_before_bounds(D) ->
    P = file_with(D, "order", <<"abcd">>),
    {ok, R} = iommap:open(P, read, []),
    {ok, W} = iommap:open(P, write, []),
    ?assertEqual({error, eacces}, iommap:pwrite(R, 100, <<"x">>)),
    ?assertEqual({error, eacces}, iommap:pread(W, 100, 1)),
    ?assertEqual({error, eacces}, iommap:truncate(R, 0)),
    ok = iommap:close(R), ok = iommap:close(W),
    ?assertEqual({error, closed}, iommap:pwrite(R, 100, <<"x">>)),
    ?assertEqual({error, closed}, iommap:pread(W, 100, 1)),
    ?assertEqual({error, closed}, iommap:truncate(R, 8)),
    ?assertEqual({error, closed}, iommap:sync(R)),
    ?assertEqual({error, closed}, iommap:advise(R, 0, 0, normal)),
    ?assertEqual({error, closed}, iommap:position(R)),
    ?assertEqual({error, closed}, iommap:region_binary(R, 0, 1)).

a_foreign_reference_is_closed(_D) ->
    ?assertEqual({error, closed}, iommap:pread(make_ref(), 0, 1)),
    ?assertEqual({error, closed}, iommap:close(make_ref())).

bounds(D) ->
    S = 4096,
    H = open_rw(D, <<0:(S * 8)>>),
    ?assertEqual({ok, <<>>}, iommap:pread(H, S, 0)),
    ?assertEqual({error, out_of_bounds}, iommap:pread(H, S + 1, 0)),
    ?assertEqual({error, out_of_bounds}, iommap:pread(H, S - 1, 2)),
    ?assertEqual({error, out_of_bounds}, iommap:pread(H, 0, S + 1)),
    ?assertEqual({error, out_of_bounds}, iommap:pread(H, 1 bsl 64, 1)),
    ?assertEqual({error, out_of_bounds}, iommap:pread(H, 1, (1 bsl 64) - 1)), % no overflow
    ?assertEqual({error, out_of_bounds}, iommap:pread(H, 1 bsl 100, 0)),
    ?assertEqual({error, out_of_bounds}, iommap:pread(H, 1 bsl 5000, 0)), % LARGE_BIG_EXT
    ?assertEqual({error, out_of_bounds}, iommap:pwrite(H, 1 bsl 5000, <<>>)),
    ?assertEqual({error, out_of_bounds}, iommap:region_binary(H, 0, 1 bsl 3000)),
    %% past the engine's 1 KiB cap on big integers: sent as 2^64
    ?assertEqual({error, out_of_bounds}, iommap:pread(H, 1 bsl 20000, 0)),
    ?assertEqual({error, out_of_bounds}, iommap:advise(H, 0, 1 bsl 20000, normal)),
    ?assertEqual({ok, <<0>>}, iommap:pread(H, S - 1, 1)),
    ?assertEqual(ok, iommap:pwrite(H, S, <<>>)),
    ?assertEqual({error, out_of_bounds}, iommap:pwrite(H, S + 1, <<>>)),
    ok = iommap:close(H).

no_partial_writes_and_no_growth(D) ->
    P = file_with(D, "nogrow", <<"abcd">>),
    {ok, H} = iommap:open(P, read_write, []),
    ?assertEqual({error, out_of_bounds}, iommap:pwrite(H, 2, <<"XYZ">>)),
    ?assertEqual({ok, <<"abcd">>}, file:read_file(P)),
    ?assertEqual({ok, 4}, iommap:position(H)),
    ok = iommap:close(H).

huge_read_is_refused_without_allocating(D) ->
    H = open_rw(D, <<"abcd">>),
    ?assertEqual({error, out_of_bounds}, iommap:pread(H, 0, 1 bsl 40)),
    ok = iommap:close(H).

%% Errors

errors_are_posix_atoms(D) ->
    ?assertEqual({error, eisdir}, iommap:open(D, read_write, [])),
    ?assertEqual({error, eisdir}, iommap:open(D, read, [])),
    ?assertEqual({error, enoent}, iommap:open(filename:join(path(D, "nodir"), "f"), read_write, [create, {size, 1}])),
    ?assertEqual({error, enodev}, iommap:open("/dev/null", read, [])).

permission_denied_is_eacces(D) ->
    case string:trim(os:cmd("id -u")) of
        "0" ->
            %% Root passes file modes, but not those of sysctl files
            %% (0444 here), which the kernel checks even for root; where
            %% /proc/sys is mounted read-only (containers) the open is
            %% refused as erofs first.
            Sysctl = "/proc/sys/kernel/osrelease",
            Want = case read_only_mount(Sysctl) of
                       true -> erofs;
                       false -> eacces
                   end,
            ?assertEqual({error, Want}, iommap:open(Sysctl, read_write, []));
        _ ->
            P = file_with(D, "noperm", <<"abc">>),
            ok = file:change_mode(P, 8#000),
            ?assertEqual({error, eacces}, iommap:open(P, read, []))
    end.

%% Whether the mount that holds Path is read-only: the longest mount point
%% in /proc/self/mountinfo that is a prefix of Path.
read_only_mount(Path) ->
    {ok, Info} = file:read_file("/proc/self/mountinfo"),
    Mounts = [{Point, lists:member("ro", string:lexemes(Opts, ","))}
              || Line <- string:lexemes(binary_to_list(Info), "\n"),
                 [_, _, _, _, Point, Opts | _] <- [string:lexemes(Line, " ")],
                 lists:prefix(Point, Path)],
    [{_, Ro} | _] = lists:reverse(lists:keysort(1, [{length(Pt), Ro} || {Pt, Ro} <- Mounts])),
    Ro.

%% Faults

sigbus_after_external_truncation(D) ->
    P = file_with(D, "sigbus", binary:copy(<<"s">>, 3 * 4096)),
    {ok, H} = iommap:open(P, read_write, []),
    Other = open_rw(D, <<"other">>),
    ok = file:write_file(P, binary:copy(<<"s">>, 4096)), % another writer cuts it to one page
    ?assertEqual({error, sigbus}, iommap:pread(H, 2 * 4096, 10)),
    ?assertEqual({error, sigbus}, iommap:pwrite(H, 2 * 4096, <<"x">>)),
    ?assertEqual({error, sigbus}, iommap:region_binary(H, 4096, 10)),
    ?assertEqual({ok, <<"ssss">>}, iommap:pread(H, 0, 4)),
    ?assertEqual({ok, <<"other">>}, iommap:pread(Other, 0, 5)),
    ?assertEqual(ok, iommap:close(H)),
    ok = iommap:close(Other).

sigbus_from_another_handle_truncating(D) ->
    P = file_with(D, "sigbus2", binary:copy(<<"t">>, 2 * 4096)),
    {ok, A} = iommap:open(P, read_write, []),
    {ok, B} = iommap:open(P, read_write, []),
    ok = iommap:truncate(B, 4096),
    ?assertEqual({error, sigbus}, iommap:pread(A, 4096, 1)),
    ?assertEqual({ok, 2 * 4096}, iommap:position(A)),
    ?assertEqual(ok, iommap:close(A)),
    ok = iommap:close(B).

more_than_a_frame_is_enomem(D) ->
    %% 2 GiB + 1 MiB of iodata, built from one binary: nothing is sent.
    %% Bounds come first, so the mapping must be large enough: a sparse
    %% file of 3 GiB costs no disk.
    Big = lists:duplicate(2049, binary:copy(<<0>>, 1 bsl 20)),
    Small = open_rw(D, <<"abcd">>),
    ?assertEqual({error, out_of_bounds}, iommap:pwrite(Small, 0, Big)),
    ok = iommap:close(Small),
    P = path(D, "sparse"),
    {ok, F} = file:open(P, [write, raw]),
    {ok, _} = file:position(F, 3 bsl 30),
    ok = file:truncate(F),
    ok = file:close(F),
    {ok, H} = iommap:open(P, read_write, []),
    ?assertEqual({error, enomem}, iommap:pwrite(H, 0, Big)),
    ok = iommap:close(H),
    ok = file:delete(P).

info(D) ->
    P = file_with(D, "info", <<0:(8192 * 8)>>),
    {ok, H} = iommap:open(P, read, [private, lock, populate, nocache, unknown]),
    ?assertEqual({ok, #{path => list_to_binary(P), mode => read, size => 8192,
                        options => [private, lock, populate, nocache], owner => self()}},
                 iommap:info(H)),
    ok = iommap:close(H),
    ?assertEqual({error, closed}, iommap:info(H)).

engine_version_is_the_application_vsn(_D) ->
    {ok, _} = application:ensure_all_started(iommap),
    {ok, Vsn} = application:get_key(iommap, vsn),
    {ok, #{engine_version := EV, protocol := 9}} = iommap:engine_info(),
    ?assertEqual(list_to_binary(Vsn), EV).
