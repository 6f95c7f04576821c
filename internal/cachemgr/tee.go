package cachemgr

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

// byteBudget is one limit on the bytes the cache holds for all teed streams
// together: tee queues (bytes the decoder has not read) and decoded watch events
// waiting for the store. The per-stream limits (Options.QueueBytes,
// MaxPendingEvents) bound one stream; without this the worst case was their product
// with the number of streams. A stream that cannot take its bytes from the budget
// is overflowed like one past its own limit: the client keeps streaming, the cache
// copy is abandoned.
type byteBudget struct {
	limit int64
	used  atomic.Int64
	high  atomic.Int64
}

// take reserves n bytes; false (nothing reserved) when that would pass the limit.
func (b *byteBudget) take(n int) bool {
	if b == nil || n == 0 {
		return true
	}
	u := b.used.Add(int64(n))
	if u > b.limit {
		b.used.Add(-int64(n))
		return false
	}
	for {
		h := b.high.Load()
		if u <= h || b.high.CompareAndSwap(h, u) {
			return true
		}
	}
}

// give returns n reserved bytes.
func (b *byteBudget) give(n int) {
	if b != nil && n != 0 {
		b.used.Add(-int64(n))
	}
}

// errOverflow ends a cache stream whose decoder fell more than the queue's limit
// behind the client.
var errOverflow = errors.New("cache queue overflowed: the cache writer fell behind the client")

// errPendingOverflow ends a watch's cache stream whose decoded events piled up past
// Options.MaxPendingEvents while the store was busy: the events after it are lost.
var errPendingOverflow = errors.New("the cache fell behind the watch")

// errClientClosed ends a cache stream whose client closed the body before EOF.
var errClientClosed = errors.New("client closed the response body before its end")

// upstreamError is an error reading the upstream body (connection cut): a watch
// ends at a consistent point; a list is aborted.
type upstreamError struct{ err error }

func (e *upstreamError) Error() string { return "upstream body: " + e.err.Error() }
func (e *upstreamError) Unwrap() error { return e.err }

// teeBody replaces a response body: every Read passes the upstream bytes to the
// client unchanged and queues a copy for the cache decoder. It never blocks on the
// decoder: when the queue holds more than its limit, the copy is dropped, the queue
// is ended with errOverflow and the client keeps streaming.
type teeBody struct {
	src io.ReadCloser
	q   *byteQueue
}

func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.src.Read(p)
	if n > 0 {
		t.q.push(p[:n])
	}
	if err != nil {
		if err == io.EOF {
			t.q.finish(nil)
		} else {
			t.q.finish(&upstreamError{err})
		}
	}
	return n, err
}

func (t *teeBody) Close() error {
	err := t.src.Close()
	t.q.finish(errClientClosed)
	return err
}

// byteQueue is a bounded FIFO of byte chunks between the tee (producer, never
// blocks) and a decoder (consumer, blocks in Read).
type byteQueue struct {
	mu      sync.Mutex
	cond    sync.Cond
	chunks  [][]byte
	cur     []byte // chunk being read
	bytes   int    // queued, not yet read
	limit   int
	budget  *byteBudget // shared by every stream (nil: none)
	done    bool
	err     error // final error once done (nil = clean EOF)
	maxSeen int   // high-water mark, for metrics
}

func newByteQueue(limit int, budget *byteBudget) *byteQueue {
	q := &byteQueue{limit: limit, budget: budget}
	q.cond.L = &q.mu
	return q
}

func (q *byteQueue) push(p []byte) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.done {
		return
	}
	if q.bytes+len(p) > q.limit || !q.budget.take(len(p)) {
		q.done, q.err = true, errOverflow
		q.budget.give(q.bytes)
		q.chunks, q.cur, q.bytes = nil, nil, 0
		q.cond.Broadcast()
		return
	}
	c := make([]byte, len(p))
	copy(c, p)
	q.chunks = append(q.chunks, c)
	q.bytes += len(p)
	if q.bytes > q.maxSeen {
		q.maxSeen = q.bytes
	}
	q.cond.Broadcast()
}

// finish ends the stream; the first call wins (EOF before a later Close stays EOF).
func (q *byteQueue) finish(err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.done {
		return
	}
	q.done, q.err = true, err
	q.cond.Broadcast()
}

// abandon is called by the decoder when it stops early: later pushes are dropped.
func (q *byteQueue) abandon() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.done {
		q.done, q.err = true, io.ErrClosedPipe
	}
	q.budget.give(q.bytes)
	q.chunks, q.cur, q.bytes = nil, nil, 0
	q.cond.Broadcast()
}

// Read implements io.Reader for the decoder. After an overflow it returns
// errOverflow at once, even if chunks were queued.
func (q *byteQueue) Read(p []byte) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.cur) == 0 {
		if q.err == errOverflow {
			return 0, errOverflow
		}
		if len(q.chunks) > 0 {
			q.cur = q.chunks[0]
			q.chunks[0] = nil
			q.chunks = q.chunks[1:]
			continue
		}
		if q.done {
			if q.err == nil {
				return 0, io.EOF
			}
			return 0, q.err
		}
		q.cond.Wait()
	}
	n := copy(p, q.cur)
	q.cur = q.cur[n:]
	q.bytes -= n
	q.budget.give(n)
	return n, nil
}
