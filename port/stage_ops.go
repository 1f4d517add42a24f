package port

import (
	"github.com/iommap/iommap/mmap"
	"github.com/okeuday/erlang_go/v2/erlang"
)

// Staged transfers (PROTOCOL.md, version 3): bulk reads and writes whose
// bytes go through a memfd the calling Erlang process also has open, instead
// of through the pipe. See mmap.Stage.

// {Id, stage_open} -> {ok, {S, Path}}: the Erlang side opens Path.
func (s *Server) stageOpen(req request, b []byte) []byte {
	if len(req.args) != 0 {
		return appendError(b, req.id, "badarg")
	}
	id, st, err := s.stages.Open()
	if err != nil {
		return appendError(b, req.id, mmap.Atom(err))
	}
	return appendOKTerm(b, req.id, erlang.OtpErlangTuple{int(id), []byte(st.Path())})
}

// {Id, stage_close, S}
func (s *Server) stageClose(req request) error {
	id, ok := argUint(req, 0)
	if len(req.args) != 1 || !ok {
		return mmap.ErrBadArg
	}
	return s.stages.Close(id)
}

// {Id, pread_staged | pwrite_staged, H, Off, Len, S}: the handle, then the
// mode and bounds, then the stage, so a failing call answers what pread or
// pwrite would have.
func (s *Server) staged(req request, wait bool) error {
	h, err := s.handleArg(req, 4)
	if err != nil {
		return err
	}
	off, ok1 := argUint(req, 1)
	n, ok2 := argUint(req, 2)
	sid, ok3 := argUint(req, 3)
	if !ok1 || !ok2 || !ok3 {
		return mmap.ErrBadArg
	}
	st, err := s.stages.Get(sid)
	if err != nil {
		return mmap.ErrBadArg // the caller's stage, not its handle, is gone
	}
	if req.op == "pread_staged" {
		return h.ReadToStage(st, off, n, wait)
	}
	return h.WriteFromStage(st, off, n, wait)
}
