package cachemgr

import (
	"context"
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

// Claims are ordered. Each claimed event gets the view's next sequence number,
// and the events of a view reach the store in that order whichever stream's
// applier writes them: a stream that passed over an event another stream claimed
// must not write a later event before that one is written (the store refuses an
// event older than the view, so the earlier one would be lost).

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

// viewClaims are the events of one view claimed by its open streams.
type viewClaims struct {
	streams int
	seen    map[claimKey]struct{}
	ring    []claimKey
	next    int

	seq      uint64              // the next sequence number to hand out
	low      uint64              // every sequence number below it is written (or abandoned)
	finished map[uint64]struct{} // finished numbers above low
}

// claims tracks viewClaims for the views with a watch stream open.
type claims struct {
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

// open registers a watch stream of view k; call the returned func once the
// stream's applier has finished (every claim of the stream is then finished).
func (c *claims) open(k store.ListKey) (close func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.init()
	v := c.views[k]
	if v == nil {
		v = &viewClaims{seen: map[claimKey]struct{}{}, seq: 1, low: 1, finished: map[uint64]struct{}{}}
		c.views[k] = v
	}
	v.streams++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if v.streams--; v.streams == 0 {
				delete(c.views, k)
			}
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
	if v == nil {
		return 0, true // no open stream registered (not reached: cacheWatch opens first)
	}
	if !v.add(ck) {
		return 0, false
	}
	seq = v.seq
	v.seq++
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
// stream claimed it first (the frame's claim is then to be finished unwritten).
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

// finish marks claims written or abandoned, letting later ones be written.
func (c *claims) finish(k store.ListKey, seqs ...uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.views[k]
	if v == nil {
		return
	}
	for _, s := range seqs {
		if s == 0 {
			continue
		}
		v.finished[s] = struct{}{}
	}
	for {
		if _, ok := v.finished[v.low]; !ok {
			break
		}
		delete(v.finished, v.low)
		v.low++
	}
	c.cond.Broadcast()
}

// inOrder writes batch (whose claims are seqs, increasing) in claim order: each
// run of consecutive numbers waits until every earlier claim of the view is
// finished, is written with write, then finished. ctx ending stops the wait (the
// rest is abandoned).
func (c *claims) inOrder(ctx context.Context, k store.ListKey, batch []store.Event, seqs []uint64, write func([]store.Event)) {
	for i := 0; i < len(batch); {
		j := i + 1
		for j < len(batch) && seqs[j] == seqs[j-1]+1 {
			j++
		}
		if seqs[i] != 0 && !c.waitTurn(ctx, k, seqs[i]) {
			c.finish(k, seqs[i:]...)
			return
		}
		write(batch[i:j])
		c.finish(k, seqs[i:j]...)
		i = j
	}
}

// waitTurn waits until seq is the view's lowest unfinished claim.
func (c *claims) waitTurn(ctx context.Context, k store.ListKey, seq uint64) bool {
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		v := c.views[k]
		if v == nil || v.low >= seq {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		c.cond.Wait()
	}
}
