package cachemgr

import (
	"errors"
	"io"
	"sync"
)

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
	done    bool
	err     error // final error once done (nil = clean EOF)
	maxSeen int   // high-water mark, for metrics
}

func newByteQueue(limit int) *byteQueue {
	q := &byteQueue{limit: limit}
	q.cond.L = &q.mu
	return q
}

func (q *byteQueue) push(p []byte) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.done {
		return
	}
	if q.bytes+len(p) > q.limit {
		q.done, q.err = true, errOverflow
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
	return n, nil
}
