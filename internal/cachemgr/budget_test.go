package cachemgr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/yurthub/yurthub/internal/cachekey"
	"github.com/yurthub/yurthub/internal/store"
)

// TestTeedBytesBudget: the bytes of all streams together are bounded by one budget:
// a stream that would pass it overflows (its cache copy is abandoned) even under its
// own queue limit, and bytes read or dropped are given back.
func TestTeedBytesBudget(t *testing.T) {
	b := &byteBudget{limit: 100}
	q1, q2 := newByteQueue(1000, b), newByteQueue(1000, b)
	q1.push(make([]byte, 60))
	q2.push(make([]byte, 60)) // 120 > 100: q2 overflows, q1 is untouched
	if _, err := q2.Read(make([]byte, 10)); !errors.Is(err, errOverflow) {
		t.Fatalf("second stream past the shared budget: Read = %v, want errOverflow", err)
	}
	if got := b.used.Load(); got != 60 {
		t.Fatalf("budget used %d after the overflow, want 60 (q1's bytes only)", got)
	}
	q1.finish(nil)
	n, _ := io.Copy(io.Discard, q1)
	if n != 60 || b.used.Load() != 0 || b.high.Load() != 60 {
		t.Fatalf("after reading q1: read %d, used %d, high %d; want 60, 0, 60", n, b.used.Load(), b.high.Load())
	}
	q3 := newByteQueue(1000, b)
	q3.push(make([]byte, 90))
	q3.abandon()
	if b.used.Load() != 0 {
		t.Fatalf("abandoned queue kept %d bytes of the budget", b.used.Load())
	}
}

// TestTeedBytesBudgetInManager: through the manager, a response that would pass
// Options.TeedBytes overflows although it is under its own QueueBytes; the client
// gets every byte, the first list leaves no view, and the budget is all given back.
func TestTeedBytesBudgetInManager(t *testing.T) {
	m, st := newMgr(t, Options{QueueBytes: 32 << 20, TeedBytes: 64})
	body := jsonBytes(t, podList(5, "", pod("a", "p1", "n", 1), pod("a", "p2", "n", 2)))
	info, resp := response(t, kubeletUA, "/api/v1/pods", "application/json", body, nil)
	m.CacheResponse(info, resp)
	drain(t, m, resp, body)
	if _, err := st.GetListInfo(context.Background(), cachekey.List(info)); err == nil {
		t.Fatal("a list past the shared budget was cached")
	}
	if s := m.Stats(); s.Overflows != 1 || s.TeedBytes != 0 {
		t.Fatalf("stats after the overflow: %d overflows, %d bytes held; want 1 and 0", s.Overflows, s.TeedBytes)
	}
	// Under the default budget the same response is cached, and nothing stays held.
	m, st = newMgr(t, Options{})
	info, resp = response(t, kubeletUA, "/api/v1/pods", "application/json", body, nil)
	m.CacheResponse(info, resp)
	drain(t, m, resp, body)
	if li, err := st.GetListInfo(context.Background(), cachekey.List(info)); err != nil || li.Count != 2 {
		t.Fatalf("default budget: view %+v, %v", li, err)
	}
	if s := m.Stats(); s.TeedBytes != 0 || s.TeedBytesHigh == 0 {
		t.Fatalf("default budget: %d bytes held after the stream, high-water %d; want 0 and > 0", s.TeedBytes, s.TeedBytesHigh)
	}
}

// TestTeedBytesBudgetPendingEvents: decoded watch events waiting for the store hold
// their bytes against the same budget; past it the watch's cache copy overflows,
// and applied events give their bytes back.
func TestTeedBytesBudgetPendingEvents(t *testing.T) {
	m, st := newMgr(t, Options{TeedBytes: 150})
	key := cachekey.List(listInfo("a"))
	if err := st.ReplaceList(context.Background(), key, 1, nil); err != nil {
		t.Fatal(err)
	}
	prev := make(chan struct{}) // the store write waits for it: events stay pending
	closeView := m.claims.open(key)
	a := newApplier(m, key, m.log, prev)
	ev := func(name string, rv int) store.Event {
		return store.Event{Type: store.Added, Object: store.Object{Namespace: "a", Name: name, ResourceVersion: uint64(rv), Encoding: store.EncodingJSON,
			Data: []byte(fmt.Sprintf(`{"metadata":{"namespace":"a","name":%q,"resourceVersion":"%d"},"pad":"%030d"}`, name, rv, 0))}}
	}
	push := func(e store.Event) error {
		seq, ok := m.claims.event(key, e)
		if !ok {
			t.Fatalf("event %s was not claimed", e.Object.Name)
		}
		return a.push(e, seq)
	}
	if err := push(ev("p1", 2)); err != nil {
		t.Fatalf("first event within the budget: %v", err)
	}
	if err := push(ev("p2", 3)); !errors.Is(err, errPendingOverflow) {
		t.Fatalf("second pending event past the 150-byte budget: %v, want errPendingOverflow", err)
	}
	close(prev)
	_ = a.close()
	closeView()
	if used := m.budget.used.Load(); used != 0 {
		t.Fatalf("%d bytes still held after the events were applied", used)
	}
}
