package port

import (
	"errors"
	"math"

	"github.com/iommap/iommap/mmap"
	"github.com/okeuday/erlang_go/v2/erlang"
	"golang.org/x/sys/unix"
)

// operation is one row of PROTOCOL.md's request table: the op's name, its
// arguments' kinds in wire order (decode reads them into the request's
// typed fields), how it runs, whether it may run on the main loop, and
// whether the fuzzer may run it.
type operation struct {
	name string
	args []argKind
	// run executes the request and appends its reply frame to b. With wait
	// false (the main loop) it gives up, returning busy and b unchanged,
	// rather than wait for a lock. A request whose first argument is a
	// handle gets it looked up (closed, if it is not open) before run.
	run func(s *Server, req request, b []byte, wait bool) (out []byte, busy bool)
	// inline tells whether the request may run on the main loop: it must
	// be cheap (small, or constant work). nil: never.
	inline func(s *Server, req request) bool
	// fuzzable: FuzzRun may run it against its one live mapping (not one
	// that creates files, or closes or resizes what the fuzzer needs).
	fuzzable bool
}

// operations is the one place that names the requests; a new request is a
// new row here and in PROTOCOL.md (a test checks they agree).
var operations = []operation{
	{name: "hello", run: (*Server).hello, fuzzable: true},
	{name: "open", args: []argKind{argPath, argMode, argSharing, argSize, argPerm, argFlags}, run: withUint((*Server).open)},
	{name: "close", args: []argKind{argHandle}, run: withErr((*Server).close)},
	{name: "pread", args: []argKind{argHandle, argOff, argLen}, run: (*Server).pread, inline: smallLen, fuzzable: true},
	{name: "pwrite", args: []argKind{argHandle, argOff, argData}, run: withWait((*Server).pwrite), inline: smallData, fuzzable: true},
	{name: "sync", args: []argKind{argHandle, argSyncMode}, run: withErr((*Server).sync), fuzzable: true},
	{name: "truncate", args: []argKind{argHandle, argSize}, run: withErr((*Server).truncate)},
	{name: "advise", args: []argKind{argHandle, argOff, argLen, argHint}, run: withErr((*Server).advise), fuzzable: true},
	{name: "position", args: []argKind{argHandle}, run: withWaitUint((*Server).position), inline: always, fuzzable: true},
	{name: "info", args: []argKind{argHandle}, run: (*Server).info, fuzzable: true},
	{name: "check", args: []argKind{argHandle, argAccess, argEnd}, run: withErr((*Server).check), fuzzable: true},
	{name: "region", args: []argKind{argHandle}, run: (*Server).region, inline: always, fuzzable: true},
	{name: "stats", run: (*Server).stats, fuzzable: true},
	// Lanes (lane.go): the VM's OS pid, which alone may connect.
	{name: "lanes", args: []argKind{argLen}, run: (*Server).openLanes, inline: always},
	{name: "pread_many", args: []argKind{argHandle, argRanges}, run: (*Server).preadMany, inline: smallVector, fuzzable: true},
	{name: "pwrite_many", args: []argKind{argHandle, argPieces}, run: withWait((*Server).pwriteMany), inline: smallVector, fuzzable: true},
	{name: "add", args: []argKind{argHandle, argOff, argValue}, run: modify(mmap.RMWAdd), inline: always, fuzzable: true},
	{name: "sub", args: []argKind{argHandle, argOff, argValue}, run: modify(mmap.RMWSub), inline: always, fuzzable: true},
	{name: "bit_and", args: []argKind{argHandle, argOff, argValue}, run: modify(mmap.RMWAnd), inline: always, fuzzable: true},
	{name: "bit_or", args: []argKind{argHandle, argOff, argValue}, run: modify(mmap.RMWOr), inline: always, fuzzable: true},
	{name: "bit_xor", args: []argKind{argHandle, argOff, argValue}, run: modify(mmap.RMWXor), inline: always, fuzzable: true},
	{name: "exchange", args: []argKind{argHandle, argOff, argValue}, run: modify(mmap.RMWExchange), inline: always, fuzzable: true},
	{name: "compare_exchange", args: []argKind{argHandle, argOff, argValue, argValue2}, run: (*Server).compareExchange, inline: always, fuzzable: true},
	{name: "load", args: []argKind{argHandle, argOff}, run: withInt((*Server).load), inline: always, fuzzable: true},
	{name: "store", args: []argKind{argHandle, argOff, argValue}, run: withWait((*Server).store), inline: always, fuzzable: true},
	{name: "sync_range", args: []argKind{argHandle, argOff, argLen, argSyncMode}, run: withErr((*Server).syncRange), fuzzable: true},
	{name: "resident", args: []argKind{argHandle, argOff, argLen}, run: withUint((*Server).resident), fuzzable: true},
	{name: "stage_open", run: (*Server).stageOpen},
	{name: "stage_close", args: []argKind{argStage}, run: withErr((*Server).stageClose)},
	{name: "pread_staged", args: []argKind{argHandle, argOff, argLen, argStage}, run: withWait((*Server).preadStaged), inline: smallLen, fuzzable: true},
	{name: "pwrite_staged", args: []argKind{argHandle, argOff, argLen, argStage}, run: withWait((*Server).pwriteStaged), inline: smallLen, fuzzable: true},
	// The persistent structures take the file's lock, which may block on
	// another OS process: never inline.
	{name: "queue_format", args: []argKind{argHandle, argLen}, run: withErr((*Server).queueFormat), fuzzable: true},
	{name: "queue_open", args: []argKind{argHandle}, run: withUint((*Server).queueOpen), fuzzable: true},
	{name: "queue_push", args: []argKind{argHandle, argDurable, argData}, run: withFull((*Server).queuePush), fuzzable: true},
	{name: "queue_push_many", args: []argKind{argHandle, argDurable, argBinaries}, run: withFull((*Server).queuePushMany), fuzzable: true},
	{name: "queue_pop", args: []argKind{argHandle, argDurable, argLen}, run: (*Server).queuePop, fuzzable: true},
	{name: "queue_peek", args: []argKind{argHandle, argOff, argLen}, run: (*Server).queuePeek, fuzzable: true},
	{name: "queue_ack", args: []argKind{argHandle, argDurable, argOff}, run: withErr((*Server).queueAck), fuzzable: true},
	{name: "queue_len", args: []argKind{argHandle}, run: withUint((*Server).queueLen), fuzzable: true},
	{name: "blocks_format", args: []argKind{argHandle, argOff, argLen}, run: withErr((*Server).blocksFormat), fuzzable: true},
	{name: "blocks_open", args: []argKind{argHandle}, run: (*Server).blocksOpen, fuzzable: true},
	{name: "blocks_store", args: []argKind{argHandle, argDurable, argData}, run: (*Server).blocksStore, fuzzable: true},
	{name: "blocks_read", args: []argKind{argHandle, argOff}, run: (*Server).blocksRead, fuzzable: true},
	{name: "blocks_free", args: []argKind{argHandle, argDurable, argOff}, run: withErr((*Server).blocksFree), fuzzable: true},
	{name: "blocks_scan", args: []argKind{argHandle, argOff, argLen}, run: (*Server).blocksScan, fuzzable: true},
}

// operationsByName indexes the table for decode.
var operationsByName = func() map[string]*operation {
	m := make(map[string]*operation, len(operations))
	for i := range operations {
		m[operations[i].name] = &operations[i]
	}
	return m
}()

// run executes a decoded request (see operation.run).
func (s *Server) run(req request, b []byte, wait bool) ([]byte, bool) {
	if len(req.op.args) > 0 && req.op.args[0] == argHandle {
		h, err := s.reg.Get(req.h)
		if err != nil {
			return appendError(b, req.id, mmap.Atom(err)), false
		}
		req.handle = h
	}
	return req.op.run(s, req, b, wait)
}

// inline tells whether req may run on the main loop.
func (s *Server) inline(req request) bool {
	return req.op.inline != nil && req.op.inline(s, req)
}

// Inline policies: constant work, or at most InlineMax bytes moved.

func always(*Server, request) bool { return true }

func smallLen(s *Server, req request) bool { return req.n <= uint64(s.cfg.InlineMax) }

func smallData(s *Server, req request) bool { return len(req.data) <= s.cfg.InlineMax }

func smallVector(s *Server, req request) bool {
	var total uint64
	for _, r := range req.ranges {
		total += min(r.Len, math.MaxUint32)
	}
	for _, p := range req.pieces {
		total += uint64(len(p.Data))
	}
	return total <= uint64(s.cfg.InlineMax)
}

// Adapters from what a handler returns to its reply.

// reply turns an error into the reply: busy, {error, R} or ok.
func reply(b []byte, req request, err error) ([]byte, bool) {
	switch {
	case errors.Is(err, mmap.ErrBusy):
		return b, true
	case err != nil:
		return appendError(b, req.id, mmap.Atom(err)), false
	}
	return appendOK(b, req.id), false
}

func withErr(f func(*Server, request) error) func(*Server, request, []byte, bool) ([]byte, bool) {
	return func(s *Server, req request, b []byte, _ bool) ([]byte, bool) { return reply(b, req, f(s, req)) }
}

func withWait(f func(*Server, request, bool) error) func(*Server, request, []byte, bool) ([]byte, bool) {
	return func(s *Server, req request, b []byte, wait bool) ([]byte, bool) {
		return reply(b, req, f(s, req, wait))
	}
}

// withUint: a handler answering {ok, N}.
func withUint(f func(*Server, request) (uint64, error)) func(*Server, request, []byte, bool) ([]byte, bool) {
	return withWaitUint(func(s *Server, req request, _ bool) (uint64, error) { return f(s, req) })
}

func withWaitUint(f func(*Server, request, bool) (uint64, error)) func(*Server, request, []byte, bool) ([]byte, bool) {
	return func(s *Server, req request, b []byte, wait bool) ([]byte, bool) {
		n, err := f(s, req, wait)
		if err != nil {
			return reply(b, req, err)
		}
		return appendOKUint(b, req.id, n), false
	}
}

// withInt: a handler answering {ok, V} for a signed V.
func withInt(f func(*Server, request, bool) (int64, error)) func(*Server, request, []byte, bool) ([]byte, bool) {
	return func(s *Server, req request, b []byte, wait bool) ([]byte, bool) {
		v, err := f(s, req, wait)
		if err != nil {
			return reply(b, req, err)
		}
		return appendOKInt(b, req.id, v), false
	}
}

func atom(s string) erlang.OtpErlangAtomUTF8 { return erlang.OtpErlangAtomUTF8(s) }

// The handlers, one per row, in the table's order. The handle's own checks
// (closed, then the mode, then the bounds) are the engine's (mmap).

// {Id, hello} -> {ok, {ProtocolVersion, Version}}
func (s *Server) hello(req request, b []byte, _ bool) ([]byte, bool) {
	return appendOKTerm(b, req.id, []interface{}{ProtocolVersion, []byte(Version)}), false
}

// {Id, open, Path, Mode, Sharing, Size, Perm, Flags} -> {ok, H}
func (s *Server) open(req request) (uint64, error) {
	if req.opts.Size >= 0 && req.n > math.MaxInt64 { // no file can be that large
		return 0, unix.EFBIG
	}
	m, err := mmap.Open(string(req.data), req.mode, req.opts)
	if err != nil {
		return 0, err
	}
	return s.reg.Add(m), nil
}

// {Id, close, H}
func (s *Server) close(req request) error { return s.reg.Close(req.h) }

// {Id, pread, H, Off, Len} -> {ok, Binary}: the data is copied from the
// mapping straight into the reply, after the header that announces it; if
// the read fails, both are taken back and an error goes in their place.
func (s *Server) pread(req request, b []byte, wait bool) ([]byte, bool) {
	mark := len(b)
	b = appendDataHeader(b, req.id, int(min(req.n, MaxFrame)))
	b, err := req.handle.ReadAppend(b, req.off, req.n, MaxFrame-dataReplyHeader, wait)
	if err != nil {
		return reply(b[:mark], req, err)
	}
	return b, false
}

// {Id, pwrite, H, Off, Data}
func (s *Server) pwrite(req request, wait bool) error {
	return req.handle.WriteAt(req.data, req.off, wait)
}

// {Id, sync, H, sync | async}
func (s *Server) sync(req request) error { return req.handle.Sync(req.async) }

// {Id, truncate, H, Size}
func (s *Server) truncate(req request) error {
	if req.opts.Size < 0 { // undefined
		return mmap.ErrBadArg
	}
	return req.handle.Truncate(req.n)
}

// {Id, advise, H, Off, Len, Hint}
func (s *Server) advise(req request) error { return req.handle.Advise(req.off, req.n, req.hint) }

// {Id, position, H} -> {ok, Size}
func (s *Server) position(req request, wait bool) (uint64, error) {
	n, err := req.handle.Len(wait)
	return uint64(n), err
}

// {Id, info, H} -> {ok, #{path, mode, size, options}}
func (s *Server) info(req request, b []byte, _ bool) ([]byte, bool) {
	in, err := req.handle.Info()
	if err != nil {
		return reply(b, req, err)
	}
	opts := []interface{}{atom("shared")}
	if in.Opts.Private {
		opts[0] = atom("private")
	}
	for _, f := range []struct {
		on   bool
		name string
	}{{in.Opts.Lock, "lock"}, {in.Opts.Populate, "populate"}, {in.Opts.NoCache, "nocache"}, {in.Opts.DeleteOnClose, "delete_on_close"}} {
		if f.on {
			opts = append(opts, atom(f.name))
		}
	}
	return appendOKTerm(b, req.id, map[interface{}]interface{}{
		atom("path"):    []byte(in.Path),
		atom("mode"):    atom(in.Mode.String()),
		atom("size"):    in.Size,
		atom("options"): erlang.OtpErlangList{Value: opts},
	}), false
}

// {Id, check, H, read | write, End}: what a read (write) of the bytes up to
// End would be answered before it ran: closed, eacces, out_of_bounds, or
// ok. The Erlang side asks it for a request too large to send, so that one
// still answers in the documented order.
func (s *Server) check(req request) error { return req.handle.Check(req.write, req.n) }

// {Id, region, H} -> {ok, {Addr, Size, Fd}}: where the mapping lies in the
// engine's memory, and the engine's descriptor of its file, for the Erlang
// side's direct reads of it.
func (s *Server) region(req request, b []byte, _ bool) ([]byte, bool) {
	r, err := req.handle.Region()
	if err != nil {
		return reply(b, req, err)
	}
	return appendOKTerm(b, req.id, erlang.OtpErlangTuple{uint64(r.Addr), r.Size, r.Fd}), false
}

// {Id, stats} -> {ok, #{handles, in_flight, stages}}
func (s *Server) stats(req request, b []byte, _ bool) ([]byte, bool) {
	return appendOKTerm(b, req.id, map[interface{}]interface{}{
		atom("handles"):   s.reg.Len(),
		atom("in_flight"): int(s.inFlight.Load()),
		atom("stages"):    s.stages.Len(),
	}), false
}

// {Id, pread_many, H, [{Off, Len}]} -> {ok, [Binary]}
func (s *Server) preadMany(req request, b []byte, wait bool) ([]byte, bool) {
	overhead := uint64(64 + 5*len(req.ranges)) // reply header, and a BINARY_EXT header each
	if overhead > MaxFrame {
		return reply(b, req, mmap.ErrNoMemory)
	}
	mark := len(b)
	b, start := beginReply(b, req.id)
	b = appendOKTuple(b)
	if len(req.ranges) > 0 {
		b = append(b, tagList, 0, 0, 0, 0)
		putUint32(b[len(b)-4:], uint32(len(req.ranges)))
	}
	b, err := req.handle.ReadMany(b, req.ranges, MaxFrame-overhead, appendBinaryHeader, wait)
	if err != nil {
		return reply(b[:mark], req, err)
	}
	return endReply(append(b, tagNil), start), false
}

// {Id, pwrite_many, H, [{Off, Binary}]}
func (s *Server) pwriteMany(req request, wait bool) error {
	return req.handle.WriteMany(req.pieces, wait)
}

// Atomics. With wait false (the main loop) a held lock gives busy, and the
// request goes to a goroutine: an atomic behind a truncate or a big write
// must not stall the engine for every other handle.

// {Id, add | sub | bit_and | bit_or | bit_xor | exchange, H, Off, V} -> {ok, Old}
func modify(op mmap.RMW) func(*Server, request, []byte, bool) ([]byte, bool) {
	return withInt(func(_ *Server, req request, wait bool) (int64, error) {
		return req.handle.Modify(req.off, op, req.vals[0], wait)
	})
}

// {Id, compare_exchange, H, Off, Expected, New} -> ok | {error, {mismatch, Current}}
func (s *Server) compareExchange(req request, b []byte, wait bool) ([]byte, bool) {
	cur, err := req.handle.CompareExchange(req.off, req.vals[0], req.vals[1], wait)
	switch {
	case err != nil:
		return reply(b, req, err)
	case cur != req.vals[0]:
		return appendMismatch(b, req.id, cur), false
	}
	return appendOK(b, req.id), false
}

// {Id, load, H, Off} -> {ok, Value}
func (s *Server) load(req request, wait bool) (int64, error) {
	return req.handle.Load(req.off, wait)
}

// {Id, store, H, Off, Value}
func (s *Server) store(req request, wait bool) error {
	return req.handle.Store(req.off, req.vals[0], wait)
}

// {Id, sync_range, H, Off, Len, sync | async}
func (s *Server) syncRange(req request) error {
	return req.handle.SyncRange(req.off, req.n, req.async)
}

// {Id, resident, H, Off, Len} -> {ok, Bytes}
func (s *Server) resident(req request) (uint64, error) {
	return req.handle.Resident(req.off, req.n)
}

// Staged transfers: bulk bytes through a stage the calling Erlang process
// also has open, instead of through the pipe (see mmap.Stage).

// {Id, stage_open} -> {ok, {S, Path}}: the Erlang side opens Path.
func (s *Server) stageOpen(req request, b []byte, _ bool) ([]byte, bool) {
	id, st, err := s.stages.Open()
	if err != nil {
		return reply(b, req, err)
	}
	return appendOKTerm(b, req.id, erlang.OtpErlangTuple{int(id), []byte(st.Path())}), false
}

// {Id, stage_close, S}
func (s *Server) stageClose(req request) error { return s.stages.Close(req.stage) }

// {Id, pread_staged, H, Off, Len, S}: a closed handle first (run looked it
// up), then an unknown stage (badarg: the caller's stage, not its handle, is
// gone), then the mode and bounds, as pread checks them.
func (s *Server) preadStaged(req request, wait bool) error {
	st, err := s.stages.Get(req.stage)
	if err != nil {
		return mmap.ErrBadArg
	}
	return req.handle.ReadToStage(st, req.off, req.n, wait)
}

// {Id, pwrite_staged, H, Off, Len, S}
func (s *Server) pwriteStaged(req request, wait bool) error {
	st, err := s.stages.Get(req.stage)
	if err != nil {
		return mmap.ErrBadArg
	}
	return req.handle.WriteFromStage(st, req.off, req.n, wait)
}

// Persistent structures: a queue and a block store in a file that OS
// processes share (mmap/queue.go, mmap/blocks.go). Every request takes the
// file's lock (flock) and the handle's, so none runs on the main loop.

// withFull: a handler answering ok, or {error, full} when there is no room.
func withFull(f func(*Server, request) error) func(*Server, request, []byte, bool) ([]byte, bool) {
	return func(s *Server, req request, b []byte, _ bool) ([]byte, bool) {
		return fullReply(b, req, f(s, req))
	}
}

func fullReply(b []byte, req request, err error) ([]byte, bool) {
	if errors.Is(err, mmap.ErrFull) {
		return appendError(b, req.id, "full"), false
	}
	return reply(b, req, err)
}

// structLimit bounds the data of one reply of records or blocks.
const structLimit = MaxFrame - 64

// maxRecords: a request asks for at most MaxVector records at once.
func maxRecords(n uint64) int { return int(min(n, MaxVector)) }

// beginList appends a LIST_EXT header whose length endList fills in.
func beginList(b []byte) ([]byte, int) {
	return append(b, tagList, 0, 0, 0, 0), len(b)
}

// endList ends a list of n elements begun at at: with none, the header
// goes and the list is NIL_EXT alone, as term_to_binary writes [].
func endList(b []byte, at, n int) []byte {
	if n == 0 {
		return append(b[:at], tagNil)
	}
	putUint32(b[at+1:], uint32(n))
	return append(b, tagNil)
}

// {Id, queue_format, H, Capacity}
func (s *Server) queueFormat(req request) error { return req.handle.QueueFormat(req.n) }

// {Id, queue_open, H} -> {ok, Capacity}
func (s *Server) queueOpen(req request) (uint64, error) { return req.handle.QueueOpen() }

// {Id, queue_push, H, durable | cached, Binary}
func (s *Server) queuePush(req request) error {
	return req.handle.QueuePush([][]byte{req.data}, req.durable)
}

// {Id, queue_push_many, H, durable | cached, [Binary]}
func (s *Server) queuePushMany(req request) error {
	recs := make([][]byte, len(req.pieces))
	for i, p := range req.pieces {
		recs[i] = p.Data
	}
	return req.handle.QueuePush(recs, req.durable)
}

// {Id, queue_pop, H, durable | cached, Max} -> {ok, [Binary]}, the shape
// of pread_many's reply.
func (s *Server) queuePop(req request, b []byte, _ bool) ([]byte, bool) {
	mark := len(b)
	b, start := beginReply(b, req.id)
	b, at := beginList(appendOKTuple(b))
	b, n, err := req.handle.QueuePop(b, maxRecords(req.n), structLimit, appendBinaryHeader, req.durable)
	if err != nil {
		return reply(b[:mark], req, err)
	}
	return endReply(endList(b, at, n), start), false
}

// {Id, queue_peek, H, Cursor, Max} -> {ok, {[Binary], Start, Next}}: the
// list first, so it is written before the positions are known.
func (s *Server) queuePeek(req request, b []byte, _ bool) ([]byte, bool) {
	mark := len(b)
	b, start := beginReply(b, req.id)
	b, at := beginList(append(appendOKTuple(b), tagSmallTuple, 3))
	b, first, next, n, err := req.handle.QueuePeek(b, req.off, maxRecords(req.n), structLimit, appendBinaryHeader)
	if err != nil {
		return reply(b[:mark], req, err)
	}
	b = appendUint(appendUint(endList(b, at, n), first), next)
	return endReply(b, start), false
}

// {Id, queue_ack, H, durable | cached, Pos}
func (s *Server) queueAck(req request) error { return req.handle.QueueAck(req.off, req.durable) }

// {Id, queue_len, H} -> {ok, N}
func (s *Server) queueLen(req request) (uint64, error) { return req.handle.QueueLen() }

// {Id, blocks_format, H, BlockSize, Capacity}
func (s *Server) blocksFormat(req request) error { return req.handle.BlocksFormat(req.off, req.n) }

// {Id, blocks_open, H} -> {ok, {BlockSize, Capacity}}
func (s *Server) blocksOpen(req request, b []byte, _ bool) ([]byte, bool) {
	size, n, err := req.handle.BlocksOpen()
	if err != nil {
		return reply(b, req, err)
	}
	b, start := beginReply(b, req.id)
	b = append(appendOKTuple(b), tagSmallTuple, 2)
	return endReply(appendUint(appendUint(b, size), n), start), false
}

// {Id, blocks_store, H, durable | cached, Binary} -> {ok, Addr}
func (s *Server) blocksStore(req request, b []byte, _ bool) ([]byte, bool) {
	addr, err := req.handle.BlocksStore(req.data, req.durable)
	if err != nil {
		return fullReply(b, req, err)
	}
	return appendOKUint(b, req.id, addr), false
}

// {Id, blocks_read, H, Addr} -> {ok, Binary}, the shape of pread's reply.
func (s *Server) blocksRead(req request, b []byte, _ bool) ([]byte, bool) {
	mark := len(b)
	b, start := beginReply(b, req.id)
	b = appendBinaryHeader(appendOKTuple(b), 0)
	at := len(b)
	b, err := req.handle.BlocksRead(b, req.off)
	if err != nil {
		return reply(b[:mark], req, err)
	}
	putUint32(b[at-4:], uint32(len(b)-at))
	return endReply(b, start), false
}

// {Id, blocks_free, H, durable | cached, Addr}
func (s *Server) blocksFree(req request) error { return req.handle.BlocksFree(req.off, req.durable) }

// {Id, blocks_scan, H, From, Max} -> {ok, {[{Addr, Binary}], Next}}
func (s *Server) blocksScan(req request, b []byte, _ bool) ([]byte, bool) {
	mark := len(b)
	b, start := beginReply(b, req.id)
	b, at := beginList(append(appendOKTuple(b), tagSmallTuple, 2))
	b, next, n, err := req.handle.BlocksScan(b, req.off, maxRecords(req.n), structLimit, appendAddrBinaryHeader)
	if err != nil {
		return reply(b[:mark], req, err)
	}
	return endReply(appendUint(endList(b, at, n), next), start), false
}

// appendAddrBinaryHeader begins the element {Addr, Binary} of n bytes.
func appendAddrBinaryHeader(b []byte, addr, n uint64) []byte {
	return appendBinaryHeader(appendUint(append(b, tagSmallTuple, 2), addr), n)
}
