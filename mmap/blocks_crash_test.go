package mmap

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

const crashBlockSize = 61

// blocksCrashChild stores, frees and reads blocks in a loop until it is
// killed, reporting each store and free once it is answered.
func blocksCrashChild(r *reporter, path string, base uint64) {
	rng := rand.New(rand.NewPCG(base, uint64(os.Getpid())))
	h := openChild(r, path)
	if _, _, err := h.BlocksOpen(); err != nil {
		r.fail("blocks open: %v", err)
	}
	live := map[uint64]uint64{} // addr -> id, read from the store
	for from := uint64(0); ; {
		b, next, n, err := h.BlocksScan(nil, from, 16, 1<<20, lenAddrSep)
		if err != nil {
			r.fail("scan: %v", err)
		}
		for _, blk := range splitBlocks(b) {
			id, err := payloadID(blk.data)
			if err != nil {
				r.fail("block %d: %v", blk.addr, err)
			}
			live[blk.addr] = id
		}
		if n == 0 {
			break
		}
		from = next
	}
	suicide(r, rng, 300)
	r.send(msgReady)
	next := base
	for {
		durable := rng.IntN(50) == 0
		switch op := rng.IntN(10); {
		case op < 5:
			addr, err := h.BlocksStore(payload(next, crashBlockSize), durable)
			switch err {
			case nil:
				if _, taken := live[addr]; taken {
					r.fail("store gave %d, which is live", addr)
				}
				r.send(msgStored, addr, next)
				live[addr] = next
				next++
			case ErrFull:
			default:
				r.fail("store: %v", err)
			}
		case op < 9 && len(live) > 0:
			addr := slices.Sorted(maps.Keys(live))[rng.IntN(len(live))]
			if err := h.BlocksFree(addr, durable); err != nil {
				r.fail("free %d: %v", addr, err)
			}
			r.send(msgFreed, addr)
			delete(live, addr)
		case len(live) > 0:
			addr := slices.Sorted(maps.Keys(live))[rng.IntN(len(live))]
			b, err := h.BlocksRead(nil, addr)
			if err != nil {
				r.fail("read %d: %v", addr, err)
			}
			if id, err := payloadID(b); err != nil || id != live[addr] {
				r.fail("read %d: id %#x, want %#x (%v)", addr, id, live[addr], err)
			}
		}
	}
}

func lenAddrSep(b []byte, addr, n uint64) []byte { return lenSep(lenSep(b, addr), n) }

type block struct {
	addr uint64
	data []byte
}

func splitBlocks(b []byte) []block {
	var out []block
	for len(b) > 0 {
		addr, n := binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:])
		out = append(out, block{addr, b[16 : 16+n]})
		b = b[16+n:]
	}
	return out
}

// The block store survives a kill at any point of a store or a free: a
// child stores and frees blocks of a small store (it fills) and is killed
// at a random time, or by itself between two steps; then every block must
// be whole (its CRC, and its bytes those of its id), and the live blocks
// exactly those the reports say, but for the one operation in flight: a
// store that committed unanswered (one more block, of the next id) or a
// free that did (one fewer).
func TestBlocksCrashLoop(t *testing.T) {
	kills := crashKills(t, 200)
	path := filepath.Join(t.TempDir(), "b")
	newBlocks(t, path, crashBlockSize, 100).Close()
	rng := rand.New(rand.NewPCG(3, 4))
	model := map[uint64]uint64{}
	var st struct{ stored, freed, suicides, unansweredStores, unansweredFrees int }
	began := time.Now()
	cs := &children{t: t, n: kills, spec: func(round int) string {
		return fmt.Sprintf("blocks-crash %s %d 0", path, uint64(round)<<32)
	}}
	for round := 1; round <= kills; round++ {
		base := uint64(round) << 32
		c := cs.take()
		msgs := c.kill(t, time.Duration(rng.IntN(3000))*time.Microsecond)
		next := base
		for _, m := range msgs {
			switch m.kind {
			case msgStored:
				if _, taken := model[m.vals[0]]; taken {
					t.Fatalf("round %d: block %d stored while live", round, m.vals[0])
				}
				model[m.vals[0]] = m.vals[1]
				next = m.vals[1] + 1
				st.stored++
			case msgFreed:
				if _, live := model[m.vals[0]]; !live {
					t.Fatalf("round %d: block %d freed while free", round, m.vals[0])
				}
				delete(model, m.vals[0])
				st.freed++
			case msgSuicide:
				st.suicides++
			}
		}
		h := openQueue(t, path)
		if _, _, err := h.BlocksOpen(); err != nil {
			t.Fatalf("round %d: open after the kill: %v", round, err)
		}
		blocks, err := scan(t, h, 7)
		if err != nil {
			t.Fatalf("round %d: scan after the kill: %v", round, err)
		}
		got := map[uint64]uint64{}
		for addr, d := range blocks {
			if got[addr], err = payloadID(d); err != nil {
				t.Fatalf("round %d: block %d: %v", round, addr, err)
			}
		}
		h.Close()
		added, removed := diff(model, got)
		switch {
		case len(added) == 0 && len(removed) == 0:
		case len(added) == 1 && len(removed) == 0 && got[added[0]] == next:
			st.unansweredStores++
		case len(added) == 0 && len(removed) == 1:
			st.unansweredFrees++
		default:
			t.Fatalf("round %d: the store holds %v; the reports say %v (next id %#x)", round, got, model, next)
		}
		model = got
	}
	t.Logf("%d kills (%d by the child between two steps) in %v: %d stores and %d frees answered; "+
		"%d kills left an unanswered store, %d an unanswered free; %d blocks live",
		kills, st.suicides, time.Since(began).Round(time.Millisecond), st.stored, st.freed,
		st.unansweredStores, st.unansweredFrees, len(model))
	if st.stored == 0 || st.freed == 0 || st.suicides == 0 && kills >= 100 {
		t.Fatalf("the children did too little to test anything")
	}
}

// diff gives the addresses live in b and not in a, and the other way, and
// fails nothing: an address live in both must hold the same id, else it
// counts as both removed and added.
func diff(a, b map[uint64]uint64) (added, removed []uint64) {
	for addr, id := range b {
		if old, ok := a[addr]; !ok || old != id {
			added = append(added, addr)
		}
	}
	for addr, id := range a {
		if now, ok := b[addr]; !ok || now != id {
			removed = append(removed, addr)
		}
	}
	return added, removed
}
