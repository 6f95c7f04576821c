package localproxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"

	"github.com/yurthub/yurthub/internal/requestinfo"
	"github.com/yurthub/yurthub/internal/store"
)

// A spool holds one offline answer (a list body, a watch's initial events) between
// the cache's read transaction and the client. The answer is encoded into it inside
// one read transaction, so its resourceVersion and its items are one snapshot; the
// transaction ends before the first byte goes to the client, so a slow or stalled
// client holds a file descriptor, not a transaction (an open read transaction keeps
// bbolt from remapping a file that outgrew its mapping, so every writer would wait,
// and keeps the pages it sees from reuse). It also keeps the answer off the heap: a
// protobuf list needs its length before its items, and a list of 2,000 ConfigMaps of
// 900 KiB each is about 2 GB.
//
// The file is created mode 0600 next to the cache file (the same filesystem, the
// same permissions as the cache it copies) and unlinked at once, so it is gone with
// the process whatever happens. Its pages mostly stay in the page cache: the copy
// costs a memcpy, not a disk write, unless memory is short.
type spool struct {
	f  *os.File
	bw *bufio.Writer
	n  int64 // bytes written
}

// spoolError is a failure to write the spool (a full disk): the caller falls back to
// answering straight from the read transaction. It is logged at DEBUG only: the
// cache manager already reports a full disk (once, then once a minute), and an
// offline list per line would repeat it.
type spoolError struct{ err error }

func (e *spoolError) Error() string { return "offline answer spool: " + e.err.Error() }
func (e *spoolError) Unwrap() error { return e.err }

func (h *Handler) newSpool() (*spool, error) {
	f, err := os.CreateTemp(filepath.Dir(h.st.Path()), ".offline-answer-*")
	if err != nil {
		return nil, &spoolError{err}
	}
	_ = os.Remove(f.Name())
	return &spool{f: f, bw: bufio.NewWriterSize(f, 64<<10)}, nil
}

func (s *spool) Write(p []byte) (int, error) {
	n, err := s.bw.Write(p)
	s.n += int64(n)
	if err != nil {
		return n, &spoolError{err}
	}
	return n, nil
}

func (s *spool) WriteByte(c byte) error {
	_, err := s.Write([]byte{c})
	return err
}

// reset empties the spool for another attempt.
func (s *spool) reset() error {
	s.bw.Reset(s.f)
	s.n = 0
	if err := s.f.Truncate(0); err != nil {
		return &spoolError{err}
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return &spoolError{err}
	}
	return nil
}

// finish flushes what was written; the spool is then ready for copyTo.
func (s *spool) finish() error {
	if err := s.bw.Flush(); err != nil {
		return &spoolError{err}
	}
	return nil
}

// copyTo writes the spooled bytes to w (for a response, with sendfile where the
// connection allows it).
func (s *spool) copyTo(w io.Writer) error {
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	n, err := io.Copy(w, io.LimitReader(s.f, s.n))
	if err == nil && n != s.n {
		err = fmt.Errorf("offline answer spool: read %d of %d bytes", n, s.n)
	}
	return err
}

func (s *spool) close() {
	if s != nil {
		_ = s.f.Close()
	}
}

// isSpoolError reports whether err came from writing the spool rather than from the
// cache or an encoder.
func isSpoolError(err error) bool {
	var se *spoolError
	return errors.As(err, &se)
}

// matching wraps fn so that it sees only the view's objects that match the request.
func matching(v *view, fn func(o store.Object) error) func(o store.Object) error {
	if v.match == nil {
		return fn
	}
	return func(o store.Object) error {
		ok, err := v.match.match(o)
		if err != nil || !ok {
			return err
		}
		return fn(o)
	}
}

// sendInitial writes a watch's initial state (the view's objects as ADDED events)
// and its 200 header: encoded into a spool inside one read transaction, then sent,
// so neither the heap nor a transaction holds the whole state while the client
// reads it. Without a spool (a full disk) the events stream straight from the
// transaction under listWriteTimeout. It returns the snapshot's resourceVersion;
// ok false means the request was answered (a Status) or aborted.
func (h *Handler) sendInitial(w http.ResponseWriter, r *http.Request, info *requestinfo.Info, v *view, ew *eventWriter, ct string) (rv uint64, ok bool) {
	sp, err := h.newSpool()
	if err != nil {
		h.log.Debug("offline watch: cannot spool the initial events; streaming them from the cache's read transaction", slog.String("request", info.String()), slog.Any("err", err))
	}
	defer func() { sp.close() }()
	n := 0
	started := false
	added := func(out *eventWriter) func(store.Object) error {
		return func(o store.Object) error {
			doc, err := encodeAs(o, ew.f)
			if err != nil {
				return err
			}
			if ew.gvk.Kind == "" {
				ew.gvk.Kind = kindOfJSON(doc)
				out.gvk.Kind = ew.gvk.Kind
			}
			n++
			return out.raw("ADDED", doc)
		}
	}
	li, err := h.snapshot(r.Context(), info, v, func(li store.ListInfo, each func(func(store.Object) error) error) error {
		if sp != nil {
			se := &eventWriter{bw: bufio.NewWriterSize(sp, 32<<10), f: ew.f, gvk: ew.gvk}
			err := each(added(se))
			if err == nil {
				err = se.bw.Flush()
			}
			if err == nil {
				err = sp.finish()
			}
			if !isSpoolError(err) {
				return err
			}
			h.log.Debug("offline watch: spooling the initial events failed; streaming them from the cache's read transaction", slog.String("request", info.String()), slog.Any("err", err))
			sp.close()
			sp = nil
		}
		n = 0
		if err := each(func(store.Object) error { n++; return nil }); err != nil {
			return err
		}
		if n == 0 && isKubeletPods(info) {
			return nil
		}
		defer setWriteDeadline(w, listWriteTimeout)()
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(http.StatusOK)
		started = true
		n = 0
		if err := each(added(ew)); err != nil {
			return err
		}
		return ew.bw.Flush()
	})
	if err != nil {
		if !started {
			listError(w, r, info, err)
			return 0, false
		}
		h.log.Warn("local watch: the initial events failed after the response started; connection aborted", slog.String("request", info.String()), slog.Any("err", err))
		panic(http.ErrAbortHandler)
	}
	if started {
		return li.ResourceVersion, true
	}
	if n == 0 && isKubeletPods(info) {
		writeStatus(w, r, kubeletNoPods(info))
		return 0, false
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(http.StatusOK)
	if sp != nil {
		if err := sp.copyTo(w); err != nil {
			return 0, false
		}
	}
	return li.ResourceVersion, true
}

var comma = []byte{','}
