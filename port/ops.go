package port

import (
	"math"

	"github.com/iommap/iommap/mmap"
	"github.com/okeuday/erlang_go/v2/erlang"
	"golang.org/x/sys/unix"
)

// The operations of PROTOCOL.md: each reads its arguments from the request,
// calls the engine, and returns a result or an error for the reply.

func atom(s string) erlang.OtpErlangAtomUTF8 { return erlang.OtpErlangAtomUTF8(s) }

func argUint(req request, i int) (uint64, bool) {
	if i >= len(req.args) {
		return 0, false
	}
	return uintArg(req.args[i])
}

func argAtom(req request, i int) (string, bool) {
	if i >= len(req.args) {
		return "", false
	}
	return atomArg(req.args[i])
}

// handle reads the handle id in args[0] and checks the argument count.
func (s *Server) handleArg(req request, nargs int) (*mmap.Handle, error) {
	if len(req.args) != nargs {
		return nil, mmap.ErrBadArg
	}
	id, ok := argUint(req, 0)
	if !ok {
		return nil, mmap.ErrBadArg
	}
	return s.reg.Get(id)
}

// {Id, pread, H, Off, Len}: the reply's data is copied from the mapping
// straight into the reply buffer, after the header that announces it.
func (s *Server) pread(req request, b []byte, wait bool) ([]byte, bool) {
	h, err := s.handleArg(req, 3)
	off, ok1 := argUint(req, 1)
	n, ok2 := argUint(req, 2)
	switch {
	case err != nil:
	case !ok1 || !ok2:
		err = mmap.ErrBadArg
	}
	if err != nil {
		return appendError(b, req.id, mmap.Atom(err)), false
	}
	// The header goes first so the data lands right after it; if the read
	// fails, both are taken back and an error goes in their place.
	mark := len(b)
	b = appendDataHeader(b, req.id, int(min(n, MaxFrame)))
	b, err = h.ReadAppend(b, off, n, MaxFrame-dataReplyHeader, wait)
	switch {
	case err == mmap.ErrBusy:
		return b[:mark], true
	case err != nil:
		return appendError(b[:mark], req.id, mmap.Atom(err)), false
	}
	return b, false
}

// {Id, pwrite, H, Off, Data}
func (s *Server) pwrite(req request, wait bool) error {
	h, err := s.handleArg(req, 3)
	if err != nil {
		return err
	}
	off, ok1 := argUint(req, 1)
	data, ok2 := binArg(req.args[2])
	if !ok1 || !ok2 {
		return mmap.ErrBadArg
	}
	return h.WriteAt(data, off, wait)
}

// {Id, position, H}
func (s *Server) position(req request, wait bool) (int, error) {
	h, err := s.handleArg(req, 1)
	if err != nil {
		return 0, err
	}
	return h.Len(wait)
}

var modes = map[string]mmap.Mode{"read": mmap.Read, "write": mmap.Write, "read_write": mmap.ReadWrite}

// {Id, open, Path, Mode, shared | private, Size | undefined, [Flag]}
func (s *Server) open(req request) (uint64, error) {
	if len(req.args) != 5 {
		return 0, mmap.ErrBadArg
	}
	path, ok := binArg(req.args[0])
	modeName, ok2 := argAtom(req, 1)
	share, ok3 := argAtom(req, 2)
	mode, ok4 := modes[modeName]
	flags, ok5 := listArg(req.args[4])
	if !ok || !ok2 || !ok3 || !ok4 || !ok5 || (share != "shared" && share != "private") {
		return 0, mmap.ErrBadArg
	}
	opts := mmap.Options{Private: share == "private", Size: -1}
	if req.args[3] != nil { // undefined: no size given
		n, ok := uintArg(req.args[3])
		if !ok {
			return 0, mmap.ErrBadArg
		}
		if n > math.MaxInt64 { // no file can be that large
			return 0, unix.EFBIG
		}
		opts.Size = int64(n)
	}
	for _, f := range flags {
		name, _ := atomArg(f)
		switch name {
		case "create":
			opts.Create = true
		case "truncate":
			opts.Truncate = true
		case "lock":
			opts.Lock = true
		case "populate":
			opts.Populate = true
		case "nocache":
			opts.NoCache = true
		}
	}
	for _, c := range path {
		if c == 0 {
			return 0, mmap.ErrBadArg
		}
	}
	m, err := mmap.Open(string(path), mode, opts)
	if err != nil {
		return 0, err
	}
	return s.reg.Add(m), nil
}

// {Id, close, H}
func (s *Server) close(req request) error {
	id, ok := argUint(req, 0)
	if len(req.args) != 1 || !ok {
		return mmap.ErrBadArg
	}
	return s.reg.Close(id)
}

// {Id, sync, H, sync | async}
func (s *Server) sync(req request) error {
	h, err := s.handleArg(req, 2)
	if err != nil {
		return err
	}
	switch m, _ := argAtom(req, 1); m {
	case "sync":
		return h.Sync(false)
	case "async":
		return h.Sync(true)
	}
	return mmap.ErrBadArg
}

// {Id, truncate, H, Size}
func (s *Server) truncate(req request) error {
	h, err := s.handleArg(req, 2)
	if err != nil {
		return err
	}
	n, ok := argUint(req, 1)
	if !ok {
		return mmap.ErrBadArg
	}
	return h.Truncate(n)
}

var hints = map[string]mmap.Advice{
	"normal": mmap.Normal, "random": mmap.Random, "sequential": mmap.Sequential,
	"willneed": mmap.WillNeed, "dontneed": mmap.DontNeed,
	"populate_read": mmap.PopulateRead, "populate_write": mmap.PopulateWrite,
}

// {Id, advise, H, Off, Len, Hint}
func (s *Server) advise(req request) error {
	h, err := s.handleArg(req, 4)
	if err != nil {
		return err
	}
	off, ok1 := argUint(req, 1)
	n, ok2 := argUint(req, 2)
	name, _ := argAtom(req, 3)
	hint, ok3 := hints[name]
	if !ok1 || !ok2 || !ok3 {
		return mmap.ErrBadArg
	}
	return h.Advise(off, n, hint)
}

// {Id, check, H, read | write, End}: what a request on H that reads or
// writes bytes up to End would be answered before it ran: closed, then
// eacces, then out_of_bounds, else ok. The Erlang side asks it for a request
// too large to send, so that one still answers in the documented order.
func (s *Server) check(req request) error {
	h, err := s.handleArg(req, 3)
	if err != nil {
		return err
	}
	access, _ := argAtom(req, 1)
	end, ok := argUint(req, 2)
	if !ok || (access != "read" && access != "write") {
		return mmap.ErrBadArg
	}
	return h.Check(access == "write", end)
}

// {Id, info, H}
func (s *Server) info(req request) (map[interface{}]interface{}, error) {
	h, err := s.handleArg(req, 1)
	if err != nil {
		return nil, err
	}
	in, err := h.Info()
	if err != nil {
		return nil, err
	}
	opts := []interface{}{atom("shared")}
	if in.Opts.Private {
		opts[0] = atom("private")
	}
	for _, f := range []struct {
		on   bool
		name string
	}{{in.Opts.Lock, "lock"}, {in.Opts.Populate, "populate"}, {in.Opts.NoCache, "nocache"}} {
		if f.on {
			opts = append(opts, atom(f.name))
		}
	}
	return map[interface{}]interface{}{
		atom("path"):    []byte(in.Path),
		atom("mode"):    atom(in.Mode.String()),
		atom("size"):    in.Size,
		atom("options"): erlang.OtpErlangList{Value: opts},
	}, nil
}
