package store

import (
	"fmt"
	"log/slog"
	"sync"
	"time"
	"unsafe"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// dropMappedPages unmaps, from this process only, the pages of the cache file that
// bbolt's read-only mmap has touched: madvise(MADV_DONTNEED) over the mapped file.
//
// Why: Open's start-up check (walkAll + tx.Check) reads every page of the file once to
// verify it, which left the whole file (47 MiB of RssFile for a 50 MB cache, docs/cache.md
// "Resident memory") counted in the hub's RSS although nothing reads most of it again
// until a list asks. The map is MAP_SHARED and read-only and bbolt writes through the
// file descriptor, so the pages are clean page cache: after the advice they stay in
// the page cache (the next read of them is a minor fault, no disk I/O) and the kernel
// could already evict them at will, so RSS afterwards counts the pages the hub uses
// rather than hiding memory the node pays for. The data cannot change: for a shared
// file mapping MADV_DONTNEED only drops the page-table entries.
//
// It runs inside a read transaction: bbolt remaps (munmap + mmap, possibly at another
// address) only under its mmap lock held for writing, which a read transaction holds
// for reading, so the range advised is bbolt's map for the whole call and never memory
// that has been reused for something else.
func (s *Store) dropMappedPages() error {
	return s.view(func(tx *bolt.Tx) error {
		size := tx.Size() // the file's pages in use; the map covers at least these
		if size <= 0 {
			return nil
		}
		info := s.db.Info()
		// Info gives the map's address as a uintptr; read it as a pointer (bbolt's own
		// mapping, alive for the transaction). The map starts page-aligned (mmap's
		// result); the length need not be.
		base := *(*unsafe.Pointer)(unsafe.Pointer(&info.Data))
		data := unsafe.Slice((*byte)(base), size)
		if err := unix.Madvise(data, unix.MADV_DONTNEED); err != nil {
			return fmt.Errorf("madvise(MADV_DONTNEED) over the map of %s (%d bytes): %w", s.path, size, err)
		}
		return nil
	})
}

// largeListObjects: a list read or committed, or a walk (GC, hubctl inspect through
// the admin socket, Stats), of at least this many objects touches enough of the map
// (10k pods of 2.3 KiB: about 41 MiB) to drop its pages once the store has been idle
// for Options.DropPagesIdle.
const largeListObjects = 1000

// idleDrop drops the map's pages once no large list has been read or committed for
// Options.DropPagesIdle (mapdrop.go's dropMappedPages; docs/cache.md "Resident memory").
type idleDrop struct {
	mu    sync.Mutex
	timer *time.Timer
}

// noteLargeList (re)arms the idle drop after a list of n objects.
func (s *Store) noteLargeList(n int) {
	if n < largeListObjects || s.opts.DropPagesIdle < 0 {
		return
	}
	d := &s.idle
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer == nil {
		d.timer = time.AfterFunc(s.opts.DropPagesIdle, func() {
			if err := s.dropMappedPages(); err != nil && err != ErrClosed {
				s.log.Warn("cannot drop the cache file's pages after a large list", slog.Any("err", err))
			}
			if s.opts.AfterIdleDrop != nil {
				s.opts.AfterIdleDrop()
			}
		})
		return
	}
	d.timer.Reset(s.opts.DropPagesIdle)
}

// stopIdleDrop stops the timer (Close).
func (s *Store) stopIdleDrop() {
	s.idle.mu.Lock()
	defer s.idle.mu.Unlock()
	if s.idle.timer != nil {
		s.idle.timer.Stop()
	}
}
