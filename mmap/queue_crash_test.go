package mmap

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// The most records one operation of the queue's crash child moves: what a
// kill may take in flight, unreported.
const (
	crashMaxPush = 4
	crashMaxPop  = 5
)

// queueCrashChild pushes and pops in a loop until it is killed, reporting
// each operation once it is answered. Its ids start at base.
func queueCrashChild(r *reporter, path string, base, bias uint64) {
	rng := rand.New(rand.NewPCG(base, uint64(os.Getpid())))
	h := openChild(r, path)
	if _, err := h.QueueOpen(); err != nil {
		r.fail("queue open: %v", err)
	}
	suicide(r, rng, 500)
	r.send(msgReady)
	next := base
	ids := func(b []byte, n int) []uint64 {
		out := make([]uint64, 0, n)
		for _, rec := range records(b) {
			id, err := payloadID(rec)
			if err != nil {
				r.fail("popped: %v", err)
			}
			out = append(out, id)
		}
		if len(out) != n {
			r.fail("%d records said, %d given", n, len(out))
		}
		return out
	}
	for {
		durable := rng.IntN(50) == 0
		// Rounds of two kinds: pushes first (the ring fills, pushes are
		// refused), or pops first (it empties).
		pushes := 4 + 2*int(bias)
		switch op := rng.IntN(10); {
		case op < pushes:
			k := 1
			if op == pushes-1 {
				k = 1 + rng.IntN(crashMaxPush)
			}
			recs := make([][]byte, k)
			vals := make([]uint64, k)
			for i := range recs {
				vals[i] = next + uint64(i)
				recs[i] = payload(vals[i], 8+rng.IntN(120))
			}
			switch err := h.QueuePush(recs, durable); err {
			case nil:
				r.send(msgPushed, vals...)
				next += uint64(k)
			case ErrFull:
				r.send(msgFull)
			default:
				r.fail("push: %v", err)
			}
		case op < 9:
			k := 1 + rng.IntN(crashMaxPop)
			if bias == 1 {
				k = 1
			}
			b, n, err := h.QueuePop(nil, k, 1<<20, lenSep, durable)
			if err != nil {
				r.fail("pop: %v", err)
			}
			if n > 0 {
				r.send(msgPopped, ids(b, n)...)
			}
		default: // at-least-once: peek the front, then ack it
			b, start, _, n, err := h.QueuePeek(nil, 0, 1, 1<<20, lenSep)
			if err != nil {
				r.fail("peek: %v", err)
			}
			if n == 0 {
				continue
			}
			if err := h.QueueAck(start, durable); err != nil {
				r.fail("ack: %v", err)
			}
			r.send(msgPopped, ids(b, n)...)
		}
	}
}

// The queue survives a kill at any point of a push or a pop: a child
// process pushes and pops on a small ring (it wraps and fills) and is
// killed (SIGKILL) at a random time, or by itself between two stores of
// an operation; then the queue is opened again and must hold exactly the
// records the child's reports say, in order, each whole: every record
// whose push was answered and whose pop was not, plus at most the records
// of the one operation in flight (a push that committed unanswered, or a
// pop that committed unanswered and took them). Then the next child goes
// on with the same file.
func TestQueueCrashLoop(t *testing.T) {
	kills := crashKills(t, 200)
	path := filepath.Join(t.TempDir(), "q")
	newQueue(t, path, 4096).Close()
	rng := rand.New(rand.NewPCG(1, 2))
	var model []uint64 // the ids in the queue, front first
	var st struct{ pushed, popped, suicides, lostPops, unansweredPushes, most, full int }
	began := time.Now()
	cs := &children{t: t, n: kills, spec: func(round int) string {
		return fmt.Sprintf("queue-crash %s %d %d", path, uint64(round)<<32, round/10%2)
	}}
	for round := 1; round <= kills; round++ {
		base := uint64(round) << 32
		c := cs.take()
		msgs := c.kill(t, time.Duration(rng.IntN(3000))*time.Microsecond)

		expect := slices.Clone(model)
		var popped []uint64
		next := base
		for _, m := range msgs {
			switch m.kind {
			case msgPushed:
				expect = append(expect, m.vals...)
				next = m.vals[len(m.vals)-1] + 1
				st.pushed += len(m.vals)
			case msgPopped:
				popped = append(popped, m.vals...)
				st.popped += len(m.vals)
			case msgSuicide:
				st.suicides++
			case msgFull:
				st.full++
			}
		}
		if len(popped) > len(expect) || !slices.Equal(popped, expect[:len(popped)]) {
			t.Fatalf("round %d: popped %x, not the front of %x", round, popped, expect)
		}
		rest := expect[len(popped):]

		h := openQueue(t, path)
		if _, err := h.QueueOpen(); err != nil {
			t.Fatalf("round %d: open after the kill: %v", round, err)
		}
		recs, err := checkQueue(h)
		if err != nil {
			t.Fatalf("round %d: after the kill: %v", round, err)
		}
		got := make([]uint64, len(recs))
		for i, rec := range recs {
			if got[i], err = payloadID(rec); err != nil {
				t.Fatalf("round %d: record %d: %v", round, i, err)
			}
		}
		lost, extra, ok := explain(rest, got, next)
		if !ok {
			t.Fatalf("round %d: the queue holds %x; the reports say %x (popped %x, next push %#x)", round, got, rest, popped, next)
		}
		st.lostPops += b2i(lost > 0)
		st.unansweredPushes += b2i(extra > 0)
		h.Close()
		model = got
		st.most = max(st.most, len(got))
	}
	t.Logf("%d kills (%d by the child between two stores) in %v: %d pushes and %d pops answered; "+
		"%d kills took an unanswered pop, %d left an unanswered push in the queue; at most %d records in it, %d pushes refused (full)",
		kills, st.suicides, time.Since(began).Round(time.Millisecond), st.pushed, st.popped,
		st.lostPops, st.unansweredPushes, st.most, st.full)
	if st.pushed == 0 || st.popped == 0 || (st.suicides == 0 || st.full == 0) && kills >= 100 {
		t.Fatalf("the children did too little to test anything")
	}
}

// explain tells whether the queue's records got follow from the reported
// ones, rest, by the one operation that may have been in flight: either a
// pop that took up to crashMaxPop records off the front (lost), or a push
// of up to crashMaxPush records with ids from next on (extra).
func explain(rest, got []uint64, next uint64) (lost, extra int, ok bool) {
	for lost = 0; lost <= min(crashMaxPop, len(rest)); lost++ {
		if slices.Equal(got, rest[lost:]) {
			return lost, 0, true
		}
	}
	if len(got) < len(rest) || !slices.Equal(got[:len(rest)], rest) {
		return 0, 0, false
	}
	extra = len(got) - len(rest)
	for i, id := range got[len(rest):] {
		if id != next+uint64(i) {
			return 0, 0, false
		}
	}
	return 0, extra, extra <= crashMaxPush
}
