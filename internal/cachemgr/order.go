package cachemgr

import (
	"context"
	"sync"

	"github.com/yurthub/yurthub/internal/store"
)

// viewOrder keeps the writes of one list view in request order. A client lists
// and then watches from the list's resourceVersion; the list is committed by its
// decoder goroutine a little after the client has read its last byte, so the
// watch's first events could otherwise reach the store before the list they follow
// and be wiped by its replacement. Every stream that replaces a view (a list, a
// watch-list's initial state) takes a ticket; every later stream of the same view
// waits for it before its first write. Only the cache waits: the client never does.
type viewOrder struct {
	mu   sync.Mutex
	last map[store.ListKey]chan struct{}
}

// ticket returns what a stream must wait for before writing view k (nil: nothing)
// and, for a replacing stream, the func that releases its successors (call it once
// the replacement is committed or abandoned; always non-nil, a no-op otherwise).
func (o *viewOrder) ticket(k store.ListKey, replaces bool) (prev <-chan struct{}, release func()) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.last == nil {
		o.last = map[store.ListKey]chan struct{}{}
	}
	if p := o.last[k]; p != nil {
		select {
		case <-p:
			delete(o.last, k)
		default:
			prev = p
		}
	}
	if !replaces {
		return prev, func() {}
	}
	mine := make(chan struct{})
	o.last[k] = mine
	var once sync.Once
	return prev, func() {
		once.Do(func() {
			close(mine)
			o.mu.Lock()
			if o.last[k] == mine {
				delete(o.last, k)
			}
			o.mu.Unlock()
		})
	}
}

// wait blocks until prev is released or ctx ends.
func wait(ctx context.Context, prev <-chan struct{}) error {
	if prev == nil {
		return nil
	}
	select {
	case <-prev:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
