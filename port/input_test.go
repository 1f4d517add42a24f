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

// reference splits a stream the obvious way.
func reference(data []byte) (frames [][]byte, rest int, tooBig bool) {
	for len(data) >= 4 {
		n := binary.BigEndian.Uint32(data)
		if n > MaxFrame {
			return frames, len(data), true
		}
		if len(data)-4 < int(n) {
			break
		}
		frames = append(frames, data[4:4+n])
		data = data[4+n:]
	}
	return frames, len(data), false
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

func TestInputRefusesAFrameItCannotHold(t *testing.T) {
	_, err := readAll(t, []byte{0x80, 0, 0, 0, 1, 2, 3})
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("got %v", err)
	}
}

func FuzzInput(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 'x', 0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 5, 'a'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := readAll(t, data)
		want, _, tooBig := reference(data)
		if tooBig != errors.Is(err, ErrFrameTooLarge) || (!tooBig && !errors.Is(err, io.EOF)) {
			t.Fatalf("ended with %v, tooBig %v", err, tooBig)
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
