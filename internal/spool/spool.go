// Package spool holds one answer read from the cache (a list body, a watch's
// initial events) between the cache's read transaction and the client. The
// answer is encoded into it inside one read transaction, so its resourceVersion
// and its items are one snapshot; the transaction ends before the first byte goes
// to the client, so a slow or stalled client holds a file descriptor, not a
// transaction (an open read transaction keeps bbolt from remapping a file that
// outgrew its mapping, so every writer would wait, and keeps the pages it sees
// from reuse). It also keeps the answer off the heap: a protobuf list needs its
// length before its items, and a list of 2,000 ConfigMaps of 900 KiB each is
// about 2 GB.
//
// The file is created mode 0600 next to the cache file (the same filesystem, the
// same permissions as the cache it copies) and unlinked at once, so it is gone
// with the process whatever happens. Its pages mostly stay in the page cache: the
// copy costs a memcpy, not a disk write, unless memory is short.
//
// Used by the offline path (internal/localproxy) and the multiplexer
// (internal/multiplexer), which both serve lists from the cache file.
package spool

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
)

// File is one spooled answer.
type File struct {
	f  *os.File
	bw *bufio.Writer
	n  int64 // bytes written
}

// Error is a failure to write the spool (a full disk): the caller falls back to
// another way of answering. Callers log it at DEBUG only: the cache's writers
// already report a full disk, and a line per list would repeat it.
type Error struct{ err error }

func (e *Error) Error() string { return "answer spool: " + e.err.Error() }
func (e *Error) Unwrap() error { return e.err }

// IsError reports whether err came from writing a spool rather than from the
// cache or an encoder.
func IsError(err error) bool {
	var se *Error
	return errors.As(err, &se)
}

// New creates an unlinked spool file in dir (the cache file's directory); pattern
// is os.CreateTemp's.
func New(dir, pattern string) (*File, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, &Error{err}
	}
	_ = os.Remove(f.Name())
	return &File{f: f, bw: bufio.NewWriterSize(f, 64<<10)}, nil
}

func (s *File) Write(p []byte) (int, error) {
	n, err := s.bw.Write(p)
	s.n += int64(n)
	if err != nil {
		return n, &Error{err}
	}
	return n, nil
}

// WriteByte writes one byte.
func (s *File) WriteByte(c byte) error {
	_, err := s.Write([]byte{c})
	return err
}

// Len is the number of bytes written.
func (s *File) Len() int64 { return s.n }

// Finish flushes what was written; the spool is then ready for CopyTo.
func (s *File) Finish() error {
	if err := s.bw.Flush(); err != nil {
		return &Error{err}
	}
	return nil
}

// CopyTo writes the spooled bytes to w (for a response, with sendfile where the
// connection allows it).
func (s *File) CopyTo(w io.Writer) error {
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	n, err := io.Copy(w, io.LimitReader(s.f, s.n))
	if err == nil && n != s.n {
		err = fmt.Errorf("answer spool: read %d of %d bytes", n, s.n)
	}
	return err
}

// Close releases the file; safe on a nil File.
func (s *File) Close() {
	if s != nil {
		_ = s.f.Close()
	}
}
