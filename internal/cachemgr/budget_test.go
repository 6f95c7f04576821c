package cachemgr

import (
	"errors"
	"io"
	"testing"
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
