package store

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
)

// Sentinel errors; callers branch on them with errors.Is.
var (
	// ErrNotFound: no such object or raw response in the cache.
	ErrNotFound = errors.New("not in the cache")
	// ErrNotSynced: the list view was never listed (nor watched) into the cache.
	ErrNotSynced = errors.New("list view never synced into the cache")
	// ErrStale: a write older (lower resourceVersion) than what is stored was refused.
	ErrStale = errors.New("older than the cached copy, refused")
	// ErrCorrupt: the file is damaged. Open moves such a file aside by itself (read-write);
	// afterwards a call that hits a bad page returns it.
	ErrCorrupt = errors.New("cache file is corrupt")
	// ErrLocked: another process holds the cache file (Options.LockTimeout elapsed).
	ErrLocked = errors.New("cache file is locked by another process")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("cache store is closed")
	// ErrInvalid: the key or object is malformed (empty component, name, ...).
	ErrInvalid = errors.New("invalid cache key or object")
	// ErrNoSpace: the filesystem holding the cache file is full (ENOSPC) or the
	// user's quota is used up (EDQUOT). Nothing was written: the cache keeps what
	// it last committed, and writes succeed again once there is space.
	ErrNoSpace = errors.New("no space left for the cache")
	// ErrDamaged: a stored value (an object, a list view's info, a raw response) no
	// longer matches the checksum written with it: its bytes changed on disk while
	// bbolt's pages stayed intact. The value is never returned; the views covering
	// it are marked incomplete and the next list from the cloud replaces it.
	ErrDamaged = errors.New("cached value failed its integrity check")
)

// noSpace wraps err with ErrNoSpace and what to do when the filesystem under dir
// is full; other errors come back unchanged. errors.Is still finds the errno.
func noSpace(err error, dir string) error {
	if err == nil || errors.Is(err, ErrNoSpace) {
		return err
	}
	if !errors.Is(err, syscall.ENOSPC) && !errors.Is(err, syscall.EDQUOT) {
		return err
	}
	return fmt.Errorf("%w: the filesystem of %s is full: free space there (or move --root-dir to a larger one); "+
		"the cache keeps what it last committed and the proxy keeps serving: %w", ErrNoSpace, dir, err)
}

// ErrTimeout is ErrLocked under the name the API contract also allows.
var ErrTimeout = ErrLocked

// StaleEventsError is returned by ApplyEvents when some events were refused as stale;
// all the others were applied. errors.Is(err, ErrStale) holds.
type StaleEventsError struct {
	Key     ListKey
	Indexes []int // positions in the events slice that were refused
}

func (e *StaleEventsError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d event(s) older than the cache refused (positions", e.Key, len(e.Indexes))
	for i, ix := range e.Indexes {
		if i == 8 {
			b.WriteString(" ...")
			break
		}
		fmt.Fprintf(&b, " %d", ix)
	}
	b.WriteString(")")
	return b.String()
}

func (e *StaleEventsError) Unwrap() error { return ErrStale }
