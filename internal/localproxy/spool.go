package localproxy

import (
	"bufio"
	"log/slog"
	"net/http"
	"path/filepath"

	"github.com/yurthub/yurthub/internal/requestinfo"
	"github.com/yurthub/yurthub/internal/spool"
	"github.com/yurthub/yurthub/internal/store"
)

// Offline answers are spooled (internal/spool): encoded into an unlinked file
// next to the cache inside one read transaction, sent after it ended.

// newSpool creates the spool for one answer.
func (h *Handler) newSpool() (*spool.File, error) {
	return spool.New(filepath.Dir(h.st.Path()), ".offline-answer-*")
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
	defer func() { sp.Close() }()
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
				err = sp.Finish()
			}
			if !spool.IsError(err) {
				return err
			}
			h.log.Debug("offline watch: spooling the initial events failed; streaming them from the cache's read transaction", slog.String("request", info.String()), slog.Any("err", err))
			sp.Close()
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
		if err := sp.CopyTo(w); err != nil {
			return 0, false
		}
	}
	return li.ResourceVersion, true
}

var comma = []byte{','}
