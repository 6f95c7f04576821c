package cachemgr

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"

	"github.com/yurthub/yurthub/internal/store"
)

// One writer per view (issue 18 item 2).
//
// Identical watches (same component, resource, namespace and selector: one store
// view) carry the same events: every node agent of one kind watching the same
// thing, or one client's successive watches overlapping while the previous
// stream's decoder drains. Each stream is still teed (its bytes reach its own
// client unchanged), but an event is decoded and written once: the first stream
// to deliver it claims it, decodes it and hands it to the store; the others only
// advance past it.
//
//   - Protobuf: the apiserver encodes an event once for all its watchers, so the
//     same event is the same frame bytes on every stream. A stream reads only the
//     frame's length, hashes the frame in its read buffer and passes over a frame
//     another stream of the view already claimed, undecoded
//     (wire.NewProtoWatchDecoderSkipping).
//   - Any other decoded event (JSON, a frame too large to hash in the buffer) is
//     claimed by resourceVersion: a duplicate is dropped, not written again.
//
// A claim is "this exact event", never "anything older than the newest": a
// lagging stream (the decoder of a watch whose client already moved on) still
// writes the events no other stream delivered, and when the stream that was ahead
// ends the others carry on with no gap. A stream in a watch-list's initial phase
// claims nothing (its events go to a list replacement, not to the event path).

// claimWindow bounds the events remembered per view: a stream more than this
// many events behind the others decodes and hands its events again (the store
// refuses stale ones, so a duplicate costs work, never correctness).
const claimWindow = 1 << 14

// Claims are ordered and written by one writer per view. Each claimed event gets
// the view's next sequence number; the stream that claimed it decodes it and puts
// it in the view's queue at that number (or abandons the number); the view's
// writer goroutine hands the queue to the store in number order, in batches of
// whatever is ready. So the events of a view reach the store in the order they
// were claimed whichever stream delivered them (the store refuses an event older
// than the view: a later event written first would lose an earlier one), and
// there is one writer however many identical watches there are.

// claimKey names one event of a view: by resourceVersion (bookmarks share
// resourceVersions with objects, so the kind is part of the key) or by the hash of
// its protobuf frame.
type claimKey struct {
	v    uint64
	kind uint8
}

const (
	claimObject uint8 = iota
	claimBookmark
	claimFrame
)

// slot is one claimed event waiting for the view's writer.
type slot struct {
	ev     store.Event
	prev   <-chan struct{} // the list the claiming stream follows: written after it
	filled bool            // ev is set
	gone   bool            // abandoned: nothing to write
}

// viewClaims are the events of one view claimed by its open streams.
type viewClaims struct {
	streams int
	seen    map[claimKey]struct{}
	ring    []claimKey
	next    int

	seq     uint64           // the next sequence number to hand out
	low     uint64           // every number below it is written or abandoned
	slots   map[uint64]*slot // numbers from low on
	pending int              // filled slots not yet written

	failErr   error  // the last write the store refused
	failedMax uint64 // the newest number in it
}

// claims tracks viewClaims for the views with a watch stream open.
type claims struct {
	m     *Manager
	mu    sync.Mutex
	cond  *sync.Cond
	views map[store.ListKey]*viewClaims
	seed  maphash.Seed
}

func (c *claims) init() {
	if c.views == nil {
		c.views = map[store.ListKey]*viewClaims{}
		c.cond = sync.NewCond(&c.mu)
		c.seed = maphash.MakeSeed()
	}
}

// open registers a watch stream of view k (starting the view's writer for the
// first); call the returned func when the stream has waited for its claims.
func (c *claims) open(k store.ListKey) (close func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.init()
	v := c.views[k]
	if v == nil {
		v = &viewClaims{seen: map[claimKey]struct{}{}, seq: 1, low: 1, slots: map[uint64]*slot{}}
		c.views[k] = v
		c.m.wg.Add(1)
		go c.writer(k, v)
	}
	v.streams++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			v.streams--
			c.cond.Broadcast()
			c.mu.Unlock()
		})
	}
}

// add records ck in v; false when it was there already.
func (v *viewClaims) add(ck claimKey) bool {
	if _, dup := v.seen[ck]; dup {
		return false
	}
	if len(v.ring) < claimWindow {
		v.ring = append(v.ring, ck)
	} else {
		delete(v.seen, v.ring[v.next])
		v.ring[v.next] = ck
		v.next = (v.next + 1) % claimWindow
	}
	v.seen[ck] = struct{}{}
	return true
}

// claim claims ck for the calling stream: its sequence number, or ok=false when
// another stream of the view claimed it already.
func (c *claims) claim(k store.ListKey, ck claimKey) (seq uint64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.views[k]
	if v == nil || !v.add(ck) {
		return 0, false
	}
	seq = v.seq
	v.seq++
	v.slots[seq] = &slot{}
	return seq, true
}

// frame claims a protobuf watch frame of view k (by a hash of its bytes): false
// when another stream claimed the same frame, which is then passed over undecoded.
func (c *claims) frame(k store.ListKey, frame []byte) (seq uint64, ok bool) {
	c.mu.Lock()
	c.init()
	seed := c.seed
	c.mu.Unlock()
	h := maphash.Bytes(seed, frame) ^ uint64(len(frame))<<48
	return c.claim(k, claimKey{v: h, kind: claimFrame})
}

// event claims a decoded event of view k by its resourceVersion.
func (c *claims) event(k store.ListKey, ev store.Event) (seq uint64, ok bool) {
	return c.claim(k, eventKey(ev))
}

// also records the resourceVersion of an event decoded under a frame claim, so the
// same event on a stream in the other encoding is known too; false when that
// stream claimed it first (the frame's claim is then abandoned).
func (c *claims) also(k store.ListKey, ev store.Event) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.views[k]
	return v == nil || v.add(eventKey(ev))
}

func eventKey(ev store.Event) claimKey {
	kind := claimObject
	if ev.Type == store.Bookmark {
		kind = claimBookmark
	}
	return claimKey{v: ev.Object.ResourceVersion, kind: kind}
}

// fill queues the claimed event seq for the view's writer; errPendingOverflow when
// the view has MaxPendingEvents waiting or the event would pass the teed-bytes
// budget (the claim is then abandoned). A filled event holds its bytes of the
// budget until the writer has handed it to the store.
func (c *claims) fill(k store.ListKey, seq uint64, ev store.Event, prev <-chan struct{}) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.views[k]
	if v == nil {
		return fmt.Errorf("watch events not applied to %s: the cache is closing: %w", k, context.Canceled)
	}
	sl := v.slots[seq]
	if sl == nil {
		return nil
	}
	if v.pending >= c.m.opts.MaxPendingEvents {
		sl.gone = true
		c.cond.Broadcast()
		return fmt.Errorf("%w: more than %d events waited for the store (Options.MaxPendingEvents); the rest of the stream is not cached", errPendingOverflow, c.m.opts.MaxPendingEvents)
	}
	if !c.m.budget.take(len(ev.Object.Data)) {
		sl.gone = true
		c.cond.Broadcast()
		return fmt.Errorf("%w: the events waiting for the store would pass the bytes budget of all teed streams (Options.TeedBytes); the rest of the stream is not cached", errPendingOverflow)
	}
	sl.ev, sl.prev, sl.filled = ev, prev, true
	v.pending++
	c.cond.Broadcast()
	return nil
}

// finish abandons claims (the event was not to be written after all).
func (c *claims) finish(k store.ListKey, seqs ...uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.views[k]
	if v == nil {
		return
	}
	for _, s := range seqs {
		if sl := v.slots[s]; sl != nil && !sl.filled {
			sl.gone = true
		}
	}
	c.cond.Broadcast()
}

// waitWritten waits until every claim up to seq is written or abandoned (a
// stream's end: its events are in the store when its goroutine returns). An
// error says they were not all handed to the store: the hub is shutting down.
func (c *claims) waitWritten(k store.ListKey, seq uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		v := c.views[k]
		if v != nil && v.low > seq {
			return nil
		}
		if err := c.m.ctx.Err(); err != nil {
			return fmt.Errorf("watch events not applied to %s: the cache is closing: %w", k, err)
		}
		if v == nil {
			return nil
		}
		c.cond.Wait()
	}
}

// failed is the error of a write the store refused that held an event numbered
// since or later, nil if none.
func (c *claims) failed(k store.ListKey, since uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v := c.views[k]; v != nil && v.failErr != nil && v.failedMax >= since {
		return v.failErr
	}
	return nil
}

// maxBatch bounds one write of the view's writer.
const maxBatch = 4096

// writer is the view's one writer: it hands the claimed events to the store in
// claim order, each batch being whatever is ready from the lowest number on. It
// ends once the view has no stream and nothing waits.
func (c *claims) writer(k store.ListKey, v *viewClaims) {
	m := c.m
	defer m.wg.Done()
	stop := context.AfterFunc(m.ctx, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer stop()
	for {
		c.mu.Lock()
		for {
			if sl := v.slots[v.low]; sl != nil && (sl.filled || sl.gone) {
				break
			}
			if v.streams == 0 && len(v.slots) == 0 || m.ctx.Err() != nil {
				for _, sl := range v.slots {
					if sl.filled {
						m.budget.give(len(sl.ev.Object.Data))
						sl.filled, sl.gone = false, true
					}
				}
				if c.views[k] == v {
					delete(c.views, k)
				}
				c.cond.Broadcast()
				c.mu.Unlock()
				return
			}
			c.cond.Wait()
		}
		var batch []store.Event
		var prevs []<-chan struct{}
		n := uint64(0)
		for len(batch) < maxBatch {
			sl := v.slots[v.low+n]
			if sl == nil || !sl.filled && !sl.gone {
				break
			}
			if sl.filled {
				batch = append(batch, sl.ev)
				if sl.prev != nil {
					prevs = append(prevs, sl.prev)
				}
			}
			n++
		}
		c.mu.Unlock()

		for _, p := range prevs {
			if wait(m.ctx, p) != nil {
				batch = nil
			}
		}
		var err error
		if len(batch) > 0 {
			err = c.write(k, batch)
		}

		c.mu.Lock()
		if err != nil {
			v.failErr, v.failedMax = err, v.low+n-1
		}
		for i := uint64(0); i < n; i++ {
			if sl := v.slots[v.low]; sl.filled {
				v.pending--
				m.budget.give(len(sl.ev.Object.Data))
			}
			delete(v.slots, v.low)
			v.low++
		}
		c.cond.Broadcast()
		c.mu.Unlock()
	}
}

// write applies one batch of a view's events. A refused batch (other than stale
// events) marks the view incomplete at once, not only when a stream that claimed
// some of it next pushes or ends: an idle watch could otherwise leave the view
// "complete" for as long as nothing changes upstream. The streams whose events it
// held stop (applier.push and close return the error; CacheResponse logs it).
func (c *claims) write(k store.ListKey, batch []store.Event) error {
	m := c.m
	err := m.markPending(k)
	if err == nil {
		err = m.write(func(ctx context.Context) error { return m.st.ApplyEvents(ctx, k, batch) })
	}
	var se *store.StaleEventsError
	switch {
	case err == nil:
		m.stats.events.Add(int64(len(batch)))
		m.disk.succeeded(m.log)
		return nil
	case errors.As(err, &se):
		m.stats.events.Add(int64(len(batch) - len(se.Indexes)))
		m.stats.stale.Add(int64(len(se.Indexes)))
		return nil
	}
	m.markIncomplete(k, "watch events not applied: "+err.Error())
	return fmt.Errorf("watch events not applied to %s: %w", k, err)
}
