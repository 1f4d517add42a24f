%% The persistent structures across OS processes and crashes: two VMs
%% sharing a queue and a block store, and queues whose engine, or whose
%% whole VM, is killed (SIGKILL) in the middle of pushes and pops.
-module(iommap_queue_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_testcase/2, end_per_testcase/2]).
-export([two_vms_share_a_queue/1, two_vms_share_a_block_store/1,
         engine_kills_keep_every_committed_record/1, vm_kills_keep_every_committed_record/1]).
%% Run in the peer VMs.
-export([producer/4, consumer/3, blocks_worker/4, crash_worker/3]).

all() ->
    [two_vms_share_a_queue, two_vms_share_a_block_store,
     engine_kills_keep_every_committed_record, vm_kills_keep_every_committed_record].

init_per_testcase(Case, Config) ->
    iommap_test_lib:init_case_dir(Case, Config).

end_per_testcase(_, Config) ->
    iommap_test_lib:end_case_dir(Config).

%% A second VM on this machine, with this code; not linked, so that a test
%% may kill it.
start_peer() ->
    case peer:start(#{connection => standard_io,
                      args => ["-pa", filename:dirname(code:which(iommap)),
                               "-pa", filename:dirname(code:which(?MODULE))]}) of
        {ok, Peer} -> Peer;
        {ok, Peer, _Node} -> Peer
    end.

%% Runs M:F(A) in Peer, or here if Peer is local, in a process of its own;
%% the result comes as {Tag, Result}.
run_in(local, Tag, M, F, A) ->
    Self = self(),
    spawn_link(fun() -> Self ! {Tag, apply(M, F, A)} end);
run_in(Peer, Tag, M, F, A) ->
    Self = self(),
    spawn_link(fun() -> Self ! {Tag, peer:call(Peer, M, F, A, 300000)} end).

collect(Tag) ->
    receive {Tag, R} -> R after 300000 -> error({timeout, Tag}) end.

%% A record: its producer, its number, and bytes made from them.
record(P, Seq) ->
    <<P:8, Seq:32, (binary:copy(<<(Seq band 255)>>, Seq rem 40))/binary>>.

%% Two producers and two consumers in each of two VMs on one queue of 16
%% KiB, which fills and wraps many times: every record is popped exactly
%% once, and every consumer gets each producer's records in order.
two_vms_share_a_queue(Config) ->
    Dir = iommap_test_lib:case_dir(Config),
    Path = filename:join(Dir, "q"),
    Count = filename:join(Dir, "popped"),
    N = 20000,
    {ok, Q} = iommap_queue:create(Path, 16384),
    {ok, C} = iommap_counters:create(Count, 1),
    Peer = start_peer(),
    Total = 4 * N,
    Where = [{local, 1}, {local, 2}, {Peer, 3}, {Peer, 4}],
    [run_in(W, {consumer, I}, ?MODULE, consumer, [Path, Count, Total]) || {W, I} <- Where],
    [run_in(W, {producer, I}, ?MODULE, producer, [Path, I, N, I]) || {W, I} <- Where],
    [ok = collect({producer, I}) || {_, I} <- Where],
    Got = [collect({consumer, I}) || {_, I} <- Where],
    peer:stop(Peer),
    %% in order per producer, for each consumer
    [[?assertEqual(lists:sort(Seqs), Seqs) || {_, Seqs} <- maps:to_list(by_producer(G))] || G <- Got],
    %% exactly once
    All = lists:sort(lists:append(Got)),
    ?assertEqual(lists:sort([record(P, S) || P <- [1, 2, 3, 4], S <- lists:seq(1, N)]), All),
    ?assertEqual({ok, [Total]}, iommap_counters:read_all(C)),
    ?assertEqual({ok, 0}, iommap_queue:len(Q)),
    ct:log("records popped by each consumer: ~p", [[length(G) || G <- Got]]),
    ok = iommap_counters:close(C),
    ok = iommap_queue:close(Q).

by_producer(Records) ->
    lists:foldr(fun(<<P:8, Seq:32, _/binary>>, M) -> maps:update_with(P, fun(L) -> [Seq | L] end, [Seq], M) end,
                #{}, Records).

%% @private Pushes records 1..N of producer P, a few at a time, waiting
%% while the queue is full.
-spec producer(file:filename(), pos_integer(), pos_integer(), integer()) -> ok.
producer(Path, P, N, Seed) ->
    rand:seed(exsss, {Seed, Seed, 7}),
    {ok, Q} = iommap_queue:open(Path),
    produce(Q, P, 1, N),
    iommap_queue:close(Q).

produce(_, _, Seq, N) when Seq > N ->
    ok;
produce(Q, P, Seq, N) ->
    K = min(rand:uniform(8), N - Seq + 1),
    Recs = [record(P, S) || S <- lists:seq(Seq, Seq + K - 1)],
    Result = case Recs of
                 [R] -> iommap_queue:push(Q, R);
                 _ -> iommap_queue:push_many(Q, Recs)
             end,
    case Result of
        ok -> produce(Q, P, Seq + K, N);
        {error, full} -> timer:sleep(1), produce(Q, P, Seq, N)
    end.

%% @private Pops until the consumers, counted together in the counters
%% file Count, have popped Total records; gives what it popped, in order.
-spec consumer(file:filename(), file:filename(), pos_integer()) -> [binary()].
consumer(Path, Count, Total) ->
    {ok, Q} = iommap_queue:open(Path),
    {ok, C} = iommap_counters:open(Count),
    Got = consume(Q, C, Total, []),
    ok = iommap_counters:close(C),
    ok = iommap_queue:close(Q),
    Got.

consume(Q, C, Total, Acc) ->
    case iommap_queue:pop_many(Q, rand:uniform(16)) of
        {ok, []} ->
            case iommap_counters:read(C, 0) of
                {ok, Total} -> lists:reverse(Acc);
                {ok, _} -> timer:sleep(1), consume(Q, C, Total, Acc)
            end;
        {ok, Recs} ->
            {ok, _} = iommap_counters:inc(C, 0, length(Recs)),
            consume(Q, C, Total, lists:reverse(Recs, Acc))
    end.

%% Two VMs each store, read and free blocks of their own on one store that
%% fills: no address is ever given to both, every block reads back as it
%% was stored, and at the end the store holds exactly what each kept.
two_vms_share_a_block_store(Config) ->
    Path = filename:join(iommap_test_lib:case_dir(Config), "b"),
    {ok, B} = iommap_blocks:create(Path, 100, 150),
    Peer = start_peer(),
    run_in(local, {blocks, 1}, ?MODULE, blocks_worker, [Path, 1, 2000, 90]),
    run_in(Peer, {blocks, 2}, ?MODULE, blocks_worker, [Path, 2, 2000, 90]),
    {Live1, Full1} = collect({blocks, 1}),
    {Live2, Full2} = collect({blocks, 2}),
    peer:stop(Peer),
    ?assertEqual([], maps:keys(maps:with(maps:keys(Live1), Live2))),
    {ok, All} = iommap_blocks:fold(fun(A, Bin, M) -> M#{A => Bin} end, #{}, B),
    ?assertEqual(maps:merge(Live1, Live2), All),
    ct:log("full answered ~p and ~p times; ~p and ~p blocks kept", [Full1, Full2, map_size(Live1), map_size(Live2)]),
    ?assert(Full1 + Full2 > 0),
    ok = iommap_blocks:close(B).

%% @private Ms milliseconds of operations of worker W: store (while it
%% holds fewer than Keep), read back, or free one of its own blocks. Gives
%% its live blocks and how often the store was full.
-spec blocks_worker(file:filename(), pos_integer(), pos_integer(), pos_integer()) ->
          {#{non_neg_integer() => binary()}, non_neg_integer()}.
blocks_worker(Path, W, Ms, Keep) ->
    rand:seed(exsss, {W, 1, 1}),
    {ok, B} = iommap_blocks:open(Path),
    Result = blocks_work(B, W, erlang:monotonic_time(millisecond) + Ms, Keep, #{}, 0),
    ok = iommap_blocks:close(B),
    Result.

blocks_work(B, W, Tend, Keep, Live, Full) ->
    case erlang:monotonic_time(millisecond) >= Tend of
        true -> {Live, Full};
        false -> blocks_step(B, W, Tend, Keep, Live, Full)
    end.

%% Stores twice as often as it frees, up to Keep blocks: the two workers
%% together want more than the store holds.
blocks_step(B, W, Tend, Keep, Live, Full) ->
    Mine = maps:keys(Live),
    case rand:uniform(4) of
        N when N =< 2, map_size(Live) < Keep ->
            Bin = <<W:8, (rand:bytes(99))/binary>>,
            case iommap_blocks:store(B, Bin) of
                {ok, A} ->
                    false = maps:is_key(A, Live),
                    blocks_work(B, W, Tend, Keep, Live#{A => Bin}, Full);
                {error, full} ->
                    blocks_work(B, W, Tend, Keep, Live, Full + 1)
            end;
        3 when Mine =/= [] ->
            A = lists:nth(rand:uniform(length(Mine)), Mine),
            {ok, Bin} = iommap_blocks:read(B, A),
            Bin = maps:get(A, Live),
            blocks_work(B, W, Tend, Keep, Live, Full);
        4 when Mine =/= [] ->
            A = lists:nth(rand:uniform(length(Mine)), Mine),
            ok = iommap_blocks:free(B, A),
            blocks_work(B, W, Tend, Keep, maps:remove(A, Live), Full);
        _ ->
            blocks_work(B, W, Tend, Keep, Live, Full)
    end.

%% The crash worker: pushes (one or a few) and pops (a few, or one by
%% peek_ref and ack) in a loop on a queue of 4 KiB, and logs each operation
%% once it is answered, until it is killed or its engine dies. Records are
%% numbered from Base on.
-define(MAX_PUSH, 4).
-define(MAX_POP, 5).

payload(Id) ->
    <<Id:64, (binary:copy(<<(Id band 255)>>, Id rem 60))/binary>>.

id_of(<<Id:64, _/binary>> = B) ->
    ?assertEqual(payload(Id), B),
    Id.

%% @private Logs to Log (a file, when the VM is the one killed) or to a
%% process, as {ready} | {pushed, Ids} | {popped, Ids} | {stopped, Reason}.
-spec crash_worker(file:filename(), file:filename() | pid(), pos_integer()) -> no_return() | ok.
crash_worker(Path, Log, Base) ->
    rand:seed(exsss, {Base, 3, 3}),
    Say = case Log of
              Pid when is_pid(Pid) ->
                  fun(E) -> Pid ! {log, self(), E} end;
              File ->
                  {ok, F} = file:open(File, [append, raw, binary]),
                  fun(E) -> B = term_to_binary(E), ok = file:write(F, [<<(byte_size(B)):32>>, B]) end
          end,
    {ok, Q} = iommap_queue:open(Path),
    Say({ready}),
    crash_work(Q, Say, Base).

crash_work(Q, Say, Next) ->
    case rand:uniform(10) of
        N when N =< 5 ->
            K = case N of 5 -> rand:uniform(?MAX_PUSH); _ -> 1 end,
            Ids = lists:seq(Next, Next + K - 1),
            case iommap_queue:push_many(Q, [payload(Id) || Id <- Ids]) of
                ok -> Say({pushed, Ids}), crash_work(Q, Say, Next + K);
                {error, full} -> crash_work(Q, Say, Next);
                {error, R} -> Say({stopped, R})
            end;
        N when N =< 9 ->
            case iommap_queue:pop_many(Q, rand:uniform(?MAX_POP)) of
                {ok, []} -> crash_work(Q, Say, Next);
                {ok, Recs} -> Say({popped, [id_of(B) || B <- Recs]}), crash_work(Q, Say, Next);
                {error, R} -> Say({stopped, R})
            end;
        _ ->
            case iommap_queue:peek_ref(Q) of
                empty ->
                    crash_work(Q, Say, Next);
                {ok, Ref, B} ->
                    case iommap_queue:ack(Q, Ref) of
                        ok -> Say({popped, [id_of(B)]}), crash_work(Q, Say, Next);
                        {error, R} -> Say({stopped, R})
                    end;
                {error, R} ->
                    Say({stopped, R})
            end
    end.

%% What the queue may hold after a crash, from what it held before (Model,
%% front first) and the worker's log: every record whose push was answered
%% and whose pop was not; then the one operation that may have been in
%% flight, unanswered: a push of up to ?MAX_PUSH records numbered from Next
%% on (they may be there), or a pop of up to ?MAX_POP (they may be gone).
%% Gives what was found, so: lost | extra | none.
explain(Model, Events, Got, Base) ->
    Pushed = lists:append([Ids || {pushed, Ids} <- Events]),
    Popped = lists:append([Ids || {popped, Ids} <- Events]),
    Expect = Model ++ Pushed,
    ?assertEqual(Popped, lists:sublist(Expect, length(Popped))),
    Rest = lists:nthtail(length(Popped), Expect),
    Next = case Pushed of [] -> Base; _ -> lists:last(Pushed) + 1 end,
    Lost = [L || L <- lists:seq(0, min(?MAX_POP, length(Rest))), lists:nthtail(L, Rest) =:= Got],
    Extra = length(Got) - length(Rest),
    case Lost of
        [0 | _] -> none;
        [_ | _] -> lost;
        [] when Extra > 0, Extra =< ?MAX_PUSH ->
            ?assertEqual({Rest, lists:seq(Next, Next + Extra - 1)}, lists:split(length(Rest), Got)),
            extra;
        [] ->
            ct:fail("the queue holds ~w; the log says ~w (then perhaps a push from ~w)", [Got, Rest, Next])
    end.

%% Every record, by fold, checked whole; and len agrees.
contents(Path) ->
    {ok, Q} = iommap_queue:open(Path),
    {ok, Rev} = iommap_queue:fold(fun(B, A) -> [id_of(B) | A] end, [], Q),
    Got = lists:reverse(Rev),
    ?assertEqual({ok, length(Got)}, iommap_queue:len(Q)),
    ok = iommap_queue:close(Q),
    Got.

%% The engine is killed (SIGKILL) while a process pushes and pops, 15 times
%% at random moments: after each, the next engine opens the queue with
%% exactly the records the log explains.
engine_kills_keep_every_committed_record(Config) ->
    Path = filename:join(iommap_test_lib:case_dir(Config), "q"),
    {ok, Q} = iommap_queue:create(Path, 4096),
    ok = iommap_queue:close(Q),
    rand:seed(exsss, {1, 2, 3}),
    Found = lists:foldl(fun(Round, {Model, Seen}) ->
                                Base = Round bsl 32,
                                Self = self(),
                                W = spawn_link(fun() -> crash_worker(Path, Self, Base) end),
                                receive {log, W, {ready}} -> ok end,
                                timer:sleep(rand:uniform(40)),
                                os:cmd("kill -9 " ++ integer_to_list(iommap_test_lib:engine_os_pid())),
                                Events = worker_log(W, []),
                                ?assertMatch({stopped, closed}, lists:last(Events)),
                                iommap_test_lib:wait_until(fun() -> element(1, iommap:engine_info()) =:= ok end),
                                Got = contents(Path),
                                {Got, [explain(Model, Events, Got, Base) | Seen]}
                        end, {[], []}, lists:seq(1, 15)),
    ct:log("what each kill left: ~p", [element(2, Found)]).

worker_log(W, Acc) ->
    receive
        {log, W, {stopped, _} = E} -> lists:reverse([E | Acc]);
        {log, W, E} -> worker_log(W, [E | Acc])
    after 10000 ->
        error(worker_did_not_stop)
    end.

%% The whole VM of the worker is killed (SIGKILL), 8 times, at random
%% moments: its engine finishes the request it had (its input is gone)
%% and exits; then this VM opens the queue with exactly the records the
%% worker's log file explains.
vm_kills_keep_every_committed_record(Config) ->
    Dir = iommap_test_lib:case_dir(Config),
    Path = filename:join(Dir, "q"),
    {ok, Q} = iommap_queue:create(Path, 4096),
    ok = iommap_queue:close(Q),
    rand:seed(exsss, {4, 5, 6}),
    Found = lists:foldl(fun(Round, {Model, Seen}) ->
                                Base = Round bsl 32,
                                Log = filename:join(Dir, "log" ++ integer_to_list(Round)),
                                Peer = start_peer(),
                                VM = peer:call(Peer, os, getpid, []),
                                ok = peer:cast(Peer, ?MODULE, crash_worker, [Path, Log, Base]),
                                iommap_test_lib:wait_until(fun() -> read_log(Log) =/= [] end),
                                {ok, #{os_pid := Engine}} = peer:call(Peer, iommap, engine_info, []),
                                timer:sleep(rand:uniform(40)),
                                os:cmd("kill -9 " ++ VM),
                                iommap_test_lib:wait_until(fun() -> not alive(Engine) end),
                                Events = read_log(Log),
                                Got = contents(Path),
                                {Got, [explain(Model, Events, Got, Base) | Seen]}
                        end, {[], []}, lists:seq(1, 8)),
    ct:log("what each kill left: ~p", [element(2, Found)]).

alive(OsPid) ->
    filelib:is_dir("/proc/" ++ integer_to_list(OsPid)) andalso
        not lists:prefix("Z", state_of(OsPid)).

state_of(OsPid) ->
    case file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/stat") of
        {ok, B} -> [_, After] = string:split(B, ") ", trailing), binary_to_list(After);
        {error, _} -> "X"
    end.

%% The log's entries; a last one cut short by the kill is not there.
read_log(Log) ->
    case file:read_file(Log) of
        {ok, B} -> entries(B);
        {error, enoent} -> []
    end.

entries(<<N:32, E:N/binary, Rest/binary>>) -> [binary_to_term(E) | entries(Rest)];
entries(_) -> [].
