package mmap

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// producerChild pushes n records, ids p<<32 + 0..n-1, one or a few at a
// time, waiting while the queue is full.
func producerChild(r *reporter, path string, p, n uint64) {
	rng := rand.New(rand.NewPCG(p, 5))
	h := openChild(r, path)
	for seq := uint64(0); seq < n; {
		k := min(uint64(1+rng.IntN(8)), n-seq)
		recs := make([][]byte, k)
		for i := range recs {
			id := p<<32 + seq + uint64(i)
			recs[i] = payload(id, 8+int(id%50))
		}
		switch err := h.QueuePush(recs, false); err {
		case nil:
			seq += k
		case ErrFull:
			time.Sleep(20 * time.Microsecond)
		default:
			r.fail("push: %v", err)
		}
	}
}

// consumerChild pops until the queue is empty and the file path.done
// says the producers have finished, reporting every record it got.
func consumerChild(r *reporter, path string) {
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 6))
	h := openChild(r, path)
	r.send(msgReady)
	for {
		b, n, err := h.QueuePop(nil, 1+rng.IntN(16), 1<<20, lenSep, false)
		if err != nil {
			r.fail("pop: %v", err)
		}
		if n > 0 {
			ids := make([]uint64, 0, n)
			for _, rec := range records(b) {
				id, err := payloadID(rec)
				if err != nil {
					r.fail("popped: %v", err)
				}
				ids = append(ids, id)
			}
			r.send(msgPopped, ids...)
			continue
		}
		if _, err := os.Stat(path + ".done"); err == nil {
			// The producers had finished before the flag was made: empty
			// now is empty for good.
			if _, n, _ := h.QueuePop(nil, 1, 1<<20, lenSep, false); n == 0 {
				return
			}
			r.fail("a record after the producers had finished")
		}
		time.Sleep(20 * time.Microsecond)
	}
}

// Producers and consumers in four OS processes on one small queue, which
// fills and wraps many times: every record is popped exactly once, and
// each consumer gets each producer's records in the order they were
// pushed.
func TestQueueAcrossProcesses(t *testing.T) {
	const producers, consumers, perProducer = 2, 2, 20000
	path := filepath.Join(t.TempDir(), "q")
	newQueue(t, path, 8192).Close()
	var cs []*child
	for range consumers {
		cs = append(cs, startChild(t, fmt.Sprintf("consumer %s 0 0", path)))
	}
	var ps []*child
	for p := range producers {
		ps = append(ps, startChild(t, fmt.Sprintf("producer %s %d %d", path, p+1, perProducer)))
	}
	for _, c := range ps {
		c.wait(t, false)
	}
	if err := os.WriteFile(path+".done", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]int{}
	for i, c := range cs {
		last := map[uint64]uint64{} // producer -> last seq + 1 this consumer got
		got := 0
		for _, m := range c.wait(t, false) {
			if m.kind != msgPopped {
				continue
			}
			for _, id := range m.vals {
				p, seq := id>>32, id&(1<<32-1)
				if seq+1 <= last[p] {
					t.Fatalf("consumer %d got producer %d's record %d after %d", i, p, seq, last[p]-1)
				}
				last[p] = seq + 1
				seen[id]++
				got++
			}
		}
		t.Logf("consumer %d popped %d records", i, got)
	}
	for p := uint64(1); p <= producers; p++ {
		for seq := uint64(0); seq < perProducer; seq++ {
			if n := seen[p<<32+seq]; n != 1 {
				t.Fatalf("producer %d's record %d popped %d times", p, seq, n)
			}
		}
	}
	if len(seen) != producers*perProducer {
		t.Fatalf("%d distinct records popped", len(seen))
	}
}
