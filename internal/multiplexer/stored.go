package multiplexer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/yurthub/yurthub/internal/apistatus"
	"github.com/yurthub/yurthub/internal/requestinfo"
	"github.com/yurthub/yurthub/internal/spool"
	"github.com/yurthub/yurthub/internal/store"
)

// Lists and the initial state of watches are read from the cache file: its view
// is one consistent snapshot at its stored resourceVersion S, read in one read
// transaction and encoded into a spool (internal/spool, as the offline path does)
// so that a slow client holds neither the transaction nor the heap. S is served
// only when the window continues from it (S is not older than the window's
// start): the client's next watch from S gets exactly the events after it.

// storeWait bounds how long a list waits for the cache file to catch up with the
// window (events are committed behind the stream in batches: normally a few
// milliseconds); past it the request takes the ordinary path.
var storeWait = newDurationKnob(3 * time.Second)

// durationKnob is a duration tests may change while goroutines read it.
type durationKnob struct{ ns atomic.Int64 }

func newDurationKnob(d time.Duration) *durationKnob {
	k := &durationKnob{}
	k.ns.Store(int64(d))
	return k
}

func (k *durationKnob) get() time.Duration { return time.Duration(k.ns.Load()) }

// set changes the duration and returns what restores it (tests).
func (k *durationKnob) set(d time.Duration) (restore func()) {
	old := k.ns.Swap(int64(d))
	return func() { k.ns.Store(old) }
}

// readResult is how reading the stored state ended.
type readResult int

const (
	readServed     readResult = iota // read, and the window continues from it
	readUnready                      // no state to serve: the request takes the ordinary path
	readIncomplete                   // the file's view is incomplete (a write failed): never served
)

// errIncomplete: the view is marked incomplete.
type errIncomplete struct{ reason string }

func (e *errIncomplete) Error() string { return "the cached list is incomplete: " + e.reason }

// errBehind: the file's state is older than the window (or than the client asked).
var errBehind = errors.New("the cache file is behind the window")

// readStored reads the stored state for a list (want: the resourceVersion the
// client asked not to be older than; 0 any). encode runs inside one read
// transaction with the state's resourceVersion and a walk over its objects (their
// data valid only during the callback); it may run more than once (the file
// behind the window: the read is tried again when the file moves, for at most
// storeWait). accept, when not nil, runs once the state is accepted, under the
// cache's lock (a watch registers there, so no event falls between the state and
// the window's events).
func (m *Multiplexer) readStored(ctx context.Context, c *watchCache, want uint64,
	encode func(rv uint64, each func(func(*object) error) error) error,
	accept func(rv uint64)) (uint64, readResult, string) {
	wait := storeWait.get()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		c.mu.RLock()
		ready, storeOK, epoch, cur, moved := c.ready, c.storeOK, c.epoch, c.rv, c.stored
		c.mu.RUnlock()
		if !ready || want > cur {
			return 0, readUnready, ""
		}
		if !storeOK {
			return 0, readIncomplete, "the multiplexer could not write it (see the log: a full disk?)"
		}
		var rv uint64
		_, err := m.opts.Store.ListTx(ctx, c.key, func(li store.ListInfo, each func(func(store.Object) error) error) error {
			if !li.Complete {
				return &errIncomplete{li.Reason}
			}
			rv = li.ResourceVersion
			if rv < want {
				return errBehind
			}
			return encode(rv, func(fn func(*object) error) error {
				return each(func(o store.Object) error { return fn(objectOf(o)) })
			})
		})
		var inc *errIncomplete
		switch {
		case err == nil:
			c.mu.Lock()
			ok := c.epoch == epoch && c.storeOK && rv >= c.since
			if ok && accept != nil {
				accept(rv)
			}
			c.mu.Unlock()
			if ok {
				return rv, readServed, ""
			}
		case errors.As(err, &inc):
			return 0, readIncomplete, inc.reason
		case errors.Is(err, errBehind):
		case errors.Is(err, store.ErrNotSynced):
			return 0, readUnready, ""
		default:
			if ctx.Err() == nil {
				m.log.Warn("multiplexer: cannot read the stored state; the request takes the ordinary path", slog.String("resource", c.res.name), slog.Any("err", err))
			}
			return 0, readUnready, ""
		}
		select {
		case <-moved:
		case <-deadline.C:
			m.log.Info("multiplexer: the cache file did not catch up with the window in time; the request takes the ordinary path",
				slog.String("resource", c.res.name), slog.Duration("waited", wait))
			return 0, readUnready, ""
		case <-ctx.Done():
			return 0, readUnready, ""
		}
	}
}

// notServed answers a request whose stored state cannot be served: false (the
// ordinary path: proxied) online, and offline for an incomplete view the 503 the
// offline path gives for one (a partial list would make clients drop what is
// missing).
func (m *Multiplexer) notServed(w http.ResponseWriter, r *http.Request, info *requestinfo.Info, res readResult, reason string) bool {
	if res != readIncomplete || m.opts.CloudHealthy == nil || m.opts.CloudHealthy() {
		return false
	}
	st := apierrors.NewServiceUnavailable("yurthub: the cloud kube-apiserver is unreachable, so " + info.Verb + " " + info.Resource +
		" cannot be served from this node: the cached list is incomplete (" + reason + "); it is not served, because a partial list would make clients drop what is missing").ErrStatus
	apistatus.Write(w, r, &st, 0)
	return true
}

// answer holds an encoded answer between the read transaction and the client: a
// spool file next to the cache, or memory when the spool cannot be written (a
// full disk: the answer is then on the heap while it is sent, as before the
// objects moved to the file).
type answer interface {
	io.Writer
	Finish() error
	Len() int64
	CopyTo(w io.Writer) error
	Close()
}

type memAnswer struct{ b bytes.Buffer }

func (a *memAnswer) Write(p []byte) (int, error) { return a.b.Write(p) }
func (a *memAnswer) Finish() error               { return nil }
func (a *memAnswer) Len() int64                  { return int64(a.b.Len()) }
func (a *memAnswer) CopyTo(w io.Writer) error    { _, err := w.Write(a.b.Bytes()); return err }
func (a *memAnswer) Close()                      {}
func (m *Multiplexer) newAnswer(mem bool) answer {
	if !mem {
		sp, err := spool.New(filepath.Dir(m.opts.Store.Path()), ".multiplexer-answer-*")
		if err == nil {
			return sp
		}
		m.log.Debug("multiplexer: cannot spool an answer; it is held in memory", slog.Any("err", err))
	}
	return &memAnswer{}
}

// spooled runs fill into a fresh answer (closing prev), and again into memory
// when the spool fails.
func (m *Multiplexer) spooled(prev answer, fill func(a answer) error) (answer, error) {
	if prev != nil {
		prev.Close()
	}
	a := m.newAnswer(false)
	err := fill(a)
	if err == nil {
		err = a.Finish()
	}
	if spool.IsError(err) {
		m.log.Debug("multiplexer: spooling an answer failed; it is held in memory", slog.Any("err", err))
		a.Close()
		a = m.newAnswer(true)
		err = fill(a)
	}
	return a, err
}
