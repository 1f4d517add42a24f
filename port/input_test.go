package port

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// readAll feeds data through a real pipe into an Input and returns the
// frames it yields and how it ended.
func readAll(t testing.TB, data []byte) ([][]byte, error) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	go func() {
		w.Write(data)
		w.Close()
	}()
	rfd := int(r.Fd())
	if err := unix.SetNonblock(rfd, true); err != nil {
		t.Fatal(err)
	}
	in := NewInput(rfd, 10*time.Microsecond)
	var out [][]byte
	for {
		for {
			f, ok, err := in.Frame()
			if errors.Is(err, ErrFrameTooLarge) {
				out = append(out, append([]byte("too big: "), f...))
				continue
			}
			if err != nil {
				return out, err
			}
			if !ok {
				break
			}
			out = append(out, bytes.Clone(f))
		}
		if err := in.Fill(); err != nil {
			return out, err
		}
	}
}

// reference splits a stream the obvious way; a frame too big to hold
// shows as its head, marked.
func reference(data []byte) (frames [][]byte) {
	for len(data) >= 4 {
		n := binary.BigEndian.Uint32(data)
		if n > MaxFrame {
			if len(data)-4 < oversizeHead {
				break
			}
			frames = append(frames, append([]byte("too big: "), data[4:4+oversizeHead]...))
			data = data[4+min(len(data)-4, int(n)):]
			continue
		}
		if len(data)-4 < int(n) {
			break
		}
		frames = append(frames, data[4:4+n])
		data = data[4+n:]
	}
	return frames
}

func TestInputSplitsFrames(t *testing.T) {
	var stream []byte
	var want [][]byte
	for _, n := range []int{0, 1, 5, 70000, 3, 300000, 0} {
		body := bytes.Repeat([]byte{byte(n)}, n)
		stream = binary.BigEndian.AppendUint32(stream, uint32(n))
		stream = append(stream, body...)
		want = append(want, body)
	}
	got, err := readAll(t, stream)
	if !errors.Is(err, io.EOF) || len(got) != len(want) {
		t.Fatalf("%d frames, %v", len(got), err)
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("frame %d differs", i)
		}
	}
}

func TestInputGivesBackTheRoomOfABigFrame(t *testing.T) {
	r, w, _ := os.Pipe()
	defer r.Close()
	big := binary.BigEndian.AppendUint32(nil, 1<<20)
	big = append(big, make([]byte, 1<<20)...)
	go func() { w.Write(append(big, 0, 0, 0, 1, 'x')); w.Close() }()
	unix.SetNonblock(int(r.Fd()), true)
	in := NewInput(int(r.Fd()), 0)
	n := 0
	for {
		for {
			_, ok, _ := in.Frame()
			if !ok {
				break
			}
			n++
		}
		if err := in.Fill(); err != nil {
			break
		}
	}
	if n != 2 || len(in.buf) != defaultInput {
		t.Fatalf("%d frames, buffer of %d bytes after them", n, len(in.buf))
	}
}

func TestInputSkipsAFrameItCannotHoldAndGoesOn(t *testing.T) {
	// A 3 GiB frame would take long through a pipe; its length alone is
	// what matters, so send its head and end the stream part way, then
	// check a frame that follows a whole oversized one in the fuzz seeds.
	head := []byte{131, 104, 3, 98, 0, 0, 0, 7, 119, 1, 'x', 109, 0, 0, 0, 0}
	got, err := readAll(t, append([]byte{0xc0, 0, 0, 0}, head...))
	if !errors.Is(err, io.EOF) || len(got) != 1 || !bytes.Equal(got[0], append([]byte("too big: "), head...)) {
		t.Fatalf("%q %v", got, err)
	}
	if id := peekID(head); id != 7 {
		t.Fatalf("id %d", id)
	}
}

func FuzzInput(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 'x', 0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 5, 'a'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := readAll(t, data)
		want := reference(data)
		if !errors.Is(err, io.EOF) {
			t.Fatalf("ended with %v", err)
		}
		if len(got) != len(want) {
			t.Fatalf("%d frames, want %d", len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("frame %d differs", i)
			}
		}
	})
}
