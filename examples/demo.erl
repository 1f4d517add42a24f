%% make demo: a short tour of iommap on a real file.
-module(demo).
-export([main/0]).

main() ->
    Dir = filename:join(os:getenv("TMPDIR", "/tmp"), "iommap-demo-" ++ os:getpid()),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Path = filename:join(Dir, "records.dat"),
    say("file: ~s", [Path]),

    {ok, H} = iommap:open(Path, read_write, [create, {size, 1 bsl 20}]),
    {ok, Size} = iommap:position(H),
    say("open(~p, read_write, [create, {size, 1 MiB}]) -> mapping of ~w bytes", [filename:basename(Path), Size]),

    %% 1000 fixed-size records written from 4 processes at once
    Parent = self(),
    Writers = [spawn_link(fun() ->
                                  [ok = iommap:pwrite(H, I * 64, record(I)) || I <- lists:seq(W, 999, 4)],
                                  Parent ! {done, self()}
                          end) || W <- lists:seq(0, 3)],
    [receive {done, W} -> ok end || W <- Writers],
    say("4 processes wrote 1000 records of 64 bytes with pwrite/3", []),
    {ok, R} = iommap:pread(H, 500 * 64, 64),
    say("pread(H, 500*64, 64) -> ~p", [string:trim(R, trailing, [0])]),
    ok = iommap:sync(H),
    say("sync(H) -> ok: the records are on disk", []),
    {ok, OnDisk} = file:read_file(Path),
    say("file:read_file sees the same bytes: ~p", [binary:part(OnDisk, 500 * 64, 64) =:= R]),

    say("pread(H, ~w, 1) -> ~p (no partial reads)", [Size, iommap:pread(H, Size, 1)]),

    ok = iommap:truncate(H, 8192),
    say("truncate(H, 8192) -> ok, position -> ~p", [iommap:position(H)]),

    %% Another OS process shrinks the file under the live mapping. With a
    %% NIF this is a SIGBUS that kills the VM; here it is an error value.
    os:cmd("truncate -s 4096 " ++ Path),
    say("another OS process ran: truncate -s 4096 ~s", [filename:basename(Path)]),
    say("pread(H, 6000, 10) -> ~p", [iommap:pread(H, 6000, 10)]),
    say("pread(H, 0, 16) -> ~p (the VM and the engine are fine)", [iommap:pread(H, 0, 16)]),
    ok = iommap:close(H),
    say("close(H) -> ok; close(H) again -> ~p", [iommap:close(H)]),
    {ok, Engine} = iommap:engine_info(),
    say("engine: ~p", [Engine]),
    ok = file:delete(Path),
    ok = file:del_dir(Dir).

record(I) ->
    B = iolist_to_binary(io_lib:format("record ~4..0w written by ~p", [I, self()])),
    <<B/binary, 0:((64 - byte_size(B)) * 8)>>.

say(Fmt, Args) ->
    io:format("  " ++ Fmt ++ "~n", Args).
