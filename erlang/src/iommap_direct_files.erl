%% @private
%% @doc The descriptors of mapped files that direct reads use for the
%% larger reads (iommap_direct), each opened on /proc/<engine>/fd/<N> (the
%% inode the mapping holds, after a rename or an unlink too), one per
%% reading process and handle.
%%
%% /proc/<engine>/mem copies a page at a time through a page of its own:
%% measured at 0.5-0.65x of a pread of the file from 64 KiB up, and at par
%% below 16 KiB. A descriptor of the file itself reads at par at every
%% size, but it holds the file: a process that read a big file and then
%% idles would keep its blocks after the handle closed and the file was
%% deleted, for as long as the process lives. So the descriptors are this
%% process's, not the readers': it opens them, and closes those of a handle
%% before the handle's close/1 returns, those of a reader when the reader
%% exits, and all of an engine when the engine dies. A reader gets its
%% descriptor with itself as the owner that file's Erlang side checks; the
%% NIF behind it allows one operation at a time and answers any other with
%% einval, which the reader takes as "ask the engine", and which a close
%% here during a read gets too: it is tried again 1 ms later. einval also
%% answers a descriptor closed already (by code that took it from a
%% reader's cache): each row has a counter of the reads under way, which
%% the reader keeps, to tell the two apart.
%%
%% Hand-rolled: OTP has no way to share a raw file between processes; the
%% owner field is part of the descriptor's internal map (OTP 21 and later).
%% If it is not where this module expects, no descriptor is handed out and
%% reads keep to /proc/<engine>/mem.
%%
%% Bounds: direct_files_max descriptors on the node, ?PER_PROCESS per
%% reader; past either, reads keep to /proc/<engine>/mem.
-module(iommap_direct_files).
-behaviour(gen_server).

-include_lib("kernel/include/file.hrl").
-include("iommap_int.hrl").

-export([start_link/0, open/5, closing/1, closed/1, count/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

%% As many as a reader's cache holds handles (iommap_direct).
-define(PER_PROCESS, 64).
-define(RETRY_MS, 1).

-record(st, {readers = #{} :: #{pid() => {reference(), pos_integer()}},
             ports = #{} :: #{port() => reference()},
             %% close/1 callers waiting for a handle's rows to go
             waiting = #{} :: #{reference() => [gen_server:from()]},
             retry = false :: boolean()}).

%% @doc Starts the keeper, which owns the ?FILES table.
-spec start_link() -> {ok, pid()} | ignore | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc A descriptor of handle H's file for the calling process, owned by
%% the keeper, or none. Ref is H's region, State its value that the caller
%% found (not busy): the file is opened only if State is still the value
%% after the open, so the handle was not being closed meanwhile (until it
%% is, the engine's descriptor EFd is the mapping's file).
-spec open(reference(), atomics:atomics_ref(), integer(), #engine{}, non_neg_integer()) ->
          file:fd() | none.
open(H, Ref, State, #engine{port = Port, os_pid = OsPid}, EFd) ->
    try gen_server:call(?MODULE, {open, H, Ref, State, Port, OsPid, EFd}, 5000)
    catch exit:_ -> none
    end.

%% @doc Handle H is closing (its region's State was bumped): its
%% descriptors are closed soon.
-spec closing(reference()) -> ok.
closing(H) ->
    case held(H) of
        true -> gen_server:cast(?MODULE, {closing, H});
        false -> ok
    end.

%% @doc Returns once no descriptor of H's file is held here (H is closed).
-spec closed(reference()) -> ok.
closed(H) ->
    case held(H) of
        true ->
            try gen_server:call(?MODULE, {closed, H}, infinity)
            catch exit:_ -> ok % the keeper died: its descriptors closed with it
            end;
        false ->
            ok
    end.

%% @doc How many descriptors are held.
-spec count() -> non_neg_integer().
count() ->
    try ets:info(?FILES, size) of
        N when is_integer(N) -> N;
        undefined -> 0
    catch error:badarg -> 0
    end.

held(H) ->
    try ets:member(?FILES, H)
    catch error:badarg -> false
    end.

%% @private
-spec init([]) -> {ok, #st{}}.
init([]) ->
    ?FILES = ets:new(?FILES, [named_table, protected, bag, {read_concurrency, true}]),
    {ok, #st{}}.

%% @private
-spec handle_call(term(), gen_server:from(), #st{}) ->
          {reply, term(), #st{}} | {noreply, #st{}}.
handle_call({open, H, Ref, State, Port, OsPid, EFd}, {Pid, _}, St) ->
    case [Row || {_, P, _, #file_descriptor{}, _} = Row <- ets:lookup(?FILES, H), P =:= Pid] of
        [Row | _] ->
            %% asked again after erase(): the one it has
            {reply, lend(Row), St};
        [] ->
            {Reply, St1} = open_file(H, Ref, State, Port, OsPid, EFd, Pid, St),
            {reply, Reply, St1}
    end;
handle_call({closed, H}, From, #st{waiting = W} = St0) ->
    St = close_rows(ets:lookup(?FILES, H), St0),
    case ets:member(?FILES, H) of
        false -> {reply, ok, St};
        true -> {noreply, St#st{waiting = W#{H => [From | maps:get(H, W, [])]}}}
    end;
handle_call(_, _, St) ->
    {reply, {error, badarg}, St}.

%% @private
-spec handle_cast(term(), #st{}) -> {noreply, #st{}}.
handle_cast({closing, H}, St) ->
    {noreply, close_rows(ets:lookup(?FILES, H), St)};
handle_cast(_, St) ->
    {noreply, St}.

%% @private
-spec handle_info(term(), #st{}) -> {noreply, #st{}}.
handle_info({'DOWN', _, process, Pid, _}, St) ->
    {noreply, close_rows(ets:match_object(?FILES, {'_', Pid, '_', '_', '_'}), St)};
handle_info({'DOWN', _, port, Port, _}, #st{ports = Ports} = St) ->
    %% the engine died: its handles with it
    {noreply, close_rows(ets:match_object(?FILES, {'_', '_', Port, '_', '_'}),
                         St#st{ports = maps:remove(Port, Ports)})};
handle_info(retry, St) ->
    %% rows whose close found a read in progress; their handle, reader or
    %% engine has gone, or they would not be closing
    Closing = ets:select(?FILES, [{{'_', '_', '_', {closing, '_'}, '_'}, [], ['$_']}]),
    {noreply, close_rows(Closing, St#st{retry = false})};
handle_info(_, St) ->
    {noreply, St}.

%% A row marks the open before State is first looked at, so that a close
%% that begins meanwhile either is seen here or finds the row (closing/1,
%% closed/1) and waits for this call to end. Only a regular file is
%% opened: a number reused at once (the handle closed just before State
%% was looked at) could name a FIFO, whose open would block.
open_file(H, Ref, State, Port, OsPid, EFd, Pid, #st{readers = Readers} = St) ->
    Count = case Readers of
                #{Pid := {_, N}} -> N;
                #{} -> 0
            end,
    Mark = {H, Pid, Port, opening, none},
    Bound = Count < ?PER_PROCESS andalso ets:info(?FILES, size) < iommap_env:get(direct_files_max)
        andalso ets:insert(?FILES, Mark),
    Opened = Bound andalso atomics:get(Ref, 1) =:= State andalso open_path(OsPid, EFd),
    _ = Bound andalso ets:delete_object(?FILES, Mark),
    case Opened of
        {ok, Fd} ->
            Row = {H, Pid, Port, Fd, counters:new(1, [atomics])},
            true = ets:insert(?FILES, Row),
            St1 = watch(Pid, Port, Count + 1, St),
            case atomics:get(Ref, 1) =:= State andalso lend(Row) of
                #file_descriptor{} = Lent -> {Lent, St1};
                _ -> {none, close_rows([Row], St1)}
            end;
        _ ->
            {none, St}
    end.

open_path(OsPid, EFd) ->
    Path = "/proc/" ++ integer_to_list(OsPid) ++ "/fd/" ++ integer_to_list(EFd),
    case file:read_file_info(Path) of
        {ok, #file_info{type = regular}} -> file:open(Path, [raw, read, binary]);
        _ -> {error, not_regular}
    end.

%% The descriptor of Row for its reader: with the reader as the owner,
%% the one process its Erlang side lets use it (see the module's doc), and
%% the handle and the reads counter, which the reader checks and keeps.
lend({H, Pid, _, #file_descriptor{module = prim_file, data = #{owner := _} = D} = Fd, Busy}) ->
    Fd#file_descriptor{data = D#{owner => Pid, ?MODULE => {H, Busy}}};
lend(_) ->
    none.

watch(Pid, Port, N, #st{readers = Readers, ports = Ports} = St) ->
    MRef = case Readers of
               #{Pid := {M, _}} -> M;
               #{} -> erlang:monitor(process, Pid)
           end,
    Ports1 = case Ports of
                 #{Port := _} -> Ports;
                 #{} -> Ports#{Port => erlang:monitor(port, Port)}
             end,
    St#st{readers = Readers#{Pid => {MRef, N}}, ports = Ports1}.

%% Closes the descriptors of Rows; one that a read is using is marked
%% closing and tried again shortly.
close_rows([], St) ->
    St;
close_rows(Rows, St0) ->
    St = lists:foldl(fun close_row/2, St0, Rows),
    answer_waiting(St).

close_row({H, Pid, Port, Fd, Busy} = Row, St) ->
    Raw = case Fd of
              {closing, F} -> F;
              F -> F
          end,
    case close_raw(Raw, Busy) of
        busy ->
            true = ets:delete_object(?FILES, Row),
            true = ets:insert(?FILES, {H, Pid, Port, {closing, Raw}, Busy}),
            retry(St);
        closed ->
            true = ets:delete_object(?FILES, Row),
            forget(Pid, St)
    end.

%% einval with no read counted under way, twice: the descriptor was closed
%% already (a read that ended between the close and the count would leave
%% it open: the second close then closes it).
close_raw(Raw, Busy) ->
    case file:close(Raw) of
        {error, einval} ->
            case counters:get(Busy, 1) > 0 of
                true ->
                    busy;
                false ->
                    case file:close(Raw) of
                        {error, einval} ->
                            case counters:get(Busy, 1) > 0 of
                                true -> busy;
                                false -> closed
                            end;
                        _ ->
                            closed
                    end
            end;
        _ ->
            closed
    end.

retry(#st{retry = true} = St) ->
    St;
retry(St) ->
    erlang:send_after(?RETRY_MS, self(), retry),
    St#st{retry = true}.

forget(Pid, #st{readers = Readers} = St) ->
    case Readers of
        #{Pid := {MRef, 1}} ->
            erlang:demonitor(MRef, [flush]),
            St#st{readers = maps:remove(Pid, Readers)};
        #{Pid := {MRef, N}} ->
            St#st{readers = Readers#{Pid => {MRef, N - 1}}};
        #{} ->
            St
    end.

answer_waiting(#st{waiting = W} = St) ->
    Done = [H || H <- maps:keys(W), not ets:member(?FILES, H)],
    _ = [gen_server:reply(From, ok) || H <- Done, From <- maps:get(H, W)],
    St#st{waiting = maps:without(Done, W)}.
