package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Compaction: bbolt reuses freed pages but never gives them back, so a file that
// once held 10k pods keeps its size after they are gone. Compact copies the live
// data into a new file and renames it over the old one.
//
// What a crash can leave: the copy goes to <file>.compact-<pid>, is fsync'd and
// checked, then renamed over <file> (atomic) and the directory fsync'd. A SIGKILL
// before the rename leaves the old file untouched (and a partial .compact-* file
// that the next Compact removes); after it, the new file, complete. Never neither.
// The old file's bbolt lock is held from before the copy until after the rename,
// and the new file is locked (open in bbolt) before it takes the name.

// Compaction thresholds: at start the daemon compacts when the reclaimable bytes
// exceed both half the file and CompactMinReclaimable.
const (
	CompactMinReclaimable = 64 << 20
	compactTxMaxSize      = 16 << 20 // bytes copied per transaction into the new file
)

// CompactOptions tune Compact.
type CompactOptions struct {
	// Force compacts whatever the thresholds say (hubctl compact).
	Force bool
	// LockTimeout bounds the wait for the file lock (default 5s; ErrLocked after).
	LockTimeout time.Duration
	// AfterCopy, when set, runs after the new file is written and fsync'd, before
	// the rename (the crash test uses it to announce the phase).
	AfterCopy func()
}

// CompactResult says what Compact did.
type CompactResult struct {
	Compacted   bool
	Reason      string // why it did or did not compact
	SizeBefore  int64  // file size, bytes
	SizeAfter   int64
	Reclaimable int64 // free pages × page size before
	Took        time.Duration
}

// ShouldCompact applies the start-up rule: reclaimable bytes above half the file
// and above CompactMinReclaimable.
func ShouldCompact(fileSize, reclaimable int64) bool {
	return reclaimable > fileSize/2 && reclaimable > CompactMinReclaimable
}

// Compact rewrites the cache file at path without its free pages when ShouldCompact
// says so or opts.Force is set. The file must not be open in this process; another
// process holding it gives ErrLocked. A missing file is not an error (nothing to do).
func Compact(path string, opts CompactOptions) (res CompactResult, err error) {
	// A damaged file can make bbolt panic or fault while the copy walks it: that is
	// an error here (the file stays as it is; Open then deals with it).
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			res.Compacted = false
			err = fmt.Errorf("%w: %s: bbolt panicked while compacting: %v", ErrCorrupt, path, r)
		}
	}()
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = 5 * time.Second
	}
	began := time.Now()
	removeCompactLeftovers(path)
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		res.Reason = "no cache file"
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("compact %s: %w", path, err)
	}
	src, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout, FreelistType: bolt.FreelistMapType})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return res, fmt.Errorf("%w: %s (waited %s): stop yurthub before compacting, or let it compact at start", ErrLocked, path, opts.LockTimeout)
		}
		return res, fmt.Errorf("compact: open %s: %w", path, err)
	}
	defer func() {
		if cerr := src.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("compact: close %s: %w", path, cerr)
		}
	}()
	st := src.Stats()
	res.SizeBefore = fi.Size()
	res.Reclaimable = int64(st.FreePageN+st.PendingPageN) * int64(src.Info().PageSize)
	if !opts.Force && !ShouldCompact(res.SizeBefore, res.Reclaimable) {
		res.Reason = fmt.Sprintf("%d of %d bytes reclaimable: below half the file or %d MiB", res.Reclaimable, res.SizeBefore, CompactMinReclaimable>>20)
		res.SizeAfter = res.SizeBefore
		return res, nil
	}

	tmp := path + ".compact-" + strconv.Itoa(os.Getpid())
	_ = os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: opts.LockTimeout, FreelistType: bolt.FreelistMapType, PageSize: src.Info().PageSize})
	if err != nil {
		_ = os.Remove(tmp) // bbolt may have created it before failing to initialise it
		return res, noSpace(fmt.Errorf("compact: create %s: %w", tmp, err), filepath.Dir(path))
	}
	dstOpen := true
	defer func() {
		if dstOpen {
			_ = dst.Close()
		}
		if !res.Compacted {
			_ = os.Remove(tmp)
		}
	}()
	if err := bolt.Compact(dst, src, compactTxMaxSize); err != nil {
		return res, noSpace(fmt.Errorf("compact %s into %s: %w", path, tmp, err), filepath.Dir(path))
	}
	if err := dst.Sync(); err != nil {
		return res, noSpace(fmt.Errorf("compact: fsync %s: %w", tmp, err), filepath.Dir(path))
	}
	if err := dst.View(func(tx *bolt.Tx) error {
		for cerr := range tx.Check() {
			return cerr
		}
		return nil
	}); err != nil {
		return res, fmt.Errorf("compact: the new file %s fails its check, the old one is kept: %w", tmp, err)
	}
	if opts.AfterCopy != nil {
		opts.AfterCopy()
	}
	if err := os.Rename(tmp, path); err != nil {
		return res, fmt.Errorf("compact: rename %s to %s: %w", tmp, path, err)
	}
	res.Compacted = true
	if err := syncDir(filepath.Dir(path)); err != nil {
		return res, fmt.Errorf("compact: fsync the directory of %s: %w", path, err)
	}
	dstOpen = false
	if err := dst.Close(); err != nil {
		return res, fmt.Errorf("compact: close %s: %w", path, err)
	}
	if fi, err := os.Stat(path); err == nil {
		res.SizeAfter = fi.Size()
	}
	res.Took = time.Since(began)
	res.Reason = fmt.Sprintf("%d of %d bytes were free pages", res.Reclaimable, res.SizeBefore)
	return res, nil
}

// removeCompactLeftovers deletes the partial copies a compaction killed before its
// rename left behind.
func removeCompactLeftovers(path string) {
	matches, _ := filepath.Glob(path + ".compact-*")
	for _, m := range matches {
		_ = os.Remove(m)
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
