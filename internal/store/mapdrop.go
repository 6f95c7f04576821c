package store

import (
	"fmt"
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
	return s.db.View(func(tx *bolt.Tx) error {
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
