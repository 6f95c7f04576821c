package cachemgr

import (
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
//   - Every decoded event (JSON too, and a protobuf frame no other stream had) is
//     claimed by resourceVersion before it is written: a duplicate is dropped,
//     not written again.
//
// A claim is "this exact event", never "anything older than the newest": a
// lagging stream (the decoder of a watch whose client already moved on) still
// writes the events no other stream delivered, and when the stream that was ahead
// ends, the others carry on with no gap. A stream in a watch-list's initial phase
// claims nothing (its events go to a list replacement, not to the event path).

// claimWindow bounds the resourceVersions remembered per view: a stream more than
// this many events behind the others writes its events again (stale ones are
// refused by the store, so a duplicate costs a write, never correctness).
const claimWindow = 1 << 14

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

// viewClaims are the events of one view already handed to the store.
type viewClaims struct {
	streams int
	seen    map[claimKey]struct{}
	ring    []claimKey
	next    int
}

// claims tracks viewClaims for the views with a watch stream open.
type claims struct {
	mu    sync.Mutex
	views map[store.ListKey]*viewClaims
	seed  maphash.Seed
	once  sync.Once
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

// frame claims a protobuf watch frame of view k: true when no other stream of the
// view has (this stream decodes it), false to pass over it undecoded.
func (c *claims) frame(k store.ListKey, frame []byte) bool {
	c.once.Do(func() { c.seed = maphash.MakeSeed() })
	h := maphash.Bytes(c.seed, frame) ^ uint64(len(frame))<<48
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.views[k]
	if v == nil || v.streams < 2 {
		return true // a lone stream: nothing to share (its frames are not recorded)
	}
	return v.add(claimKey{v: h, kind: claimFrame})
}

// open registers a watch stream of view k; close it with the returned func.
func (c *claims) open(k store.ListKey) (close func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.views == nil {
		c.views = map[store.ListKey]*viewClaims{}
	}
	v := c.views[k]
	if v == nil {
		v = &viewClaims{seen: map[claimKey]struct{}{}}
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

// filter keeps the events of batch no other stream of view k has claimed, and
// claims them. It reuses batch's array.
func (c *claims) filter(k store.ListKey, batch []store.Event) []store.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.views[k]
	if v == nil {
		return batch
	}
	out := batch[:0]
	for _, ev := range batch {
		kind := claimObject
		if ev.Type == store.Bookmark {
			kind = claimBookmark
		}
		if v.add(claimKey{v: ev.Object.ResourceVersion, kind: kind}) {
			out = append(out, ev)
		}
	}
	return out
}
