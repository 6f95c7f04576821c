package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/yurthub/yurthub/internal/store/schema"
	"github.com/yurthub/yurthub/migrations"
)

// Address space mapped ahead (not file size), and the file's growth step.
const (
	initialMmapSize = (strconv.IntSize / 64) * (128 << 20) // 128 MiB on 64-bit; none on 32-bit (scarce address space)
	allocSize       = 4 << 20
)

// Options tune Open. The zero value is usable.
type Options struct {
	// ReadOnly opens the file shared, read-only (hubctl on a stopped node): nothing is
	// moved aside, migrated or written; a damaged file is an error.
	ReadOnly bool
	// LockTimeout bounds the wait for bbolt's file lock (default 5s; ErrLocked after).
	LockTimeout time.Duration
	// MaxBatchDelay bounds how long a group commit waits for more events after the
	// first one arrives (default 25ms; also bbolt's Batch delay for PutObject). A
	// view's writer hands over what it gathered meanwhile in its next call, so this
	// sets how often a busy view commits: 5ms made the commits (and their fsyncs)
	// a fifth of the hub's CPU under make bench's watch load.
	MaxBatchDelay time.Duration
	// MaxBatchEvents starts a group commit as soon as this many events wait (default 4096).
	MaxBatchEvents int
	// OpenYurtCacheDir is OpenYurt's --disk-cache-path; a migration imports it once.
	OpenYurtCacheDir string
	// NoSync skips fsync (tests and benchmarks of the in-memory path only; never in
	// production: a power loss could then tear the file).
	NoSync bool
	// ListChunkBytes: a list whose items exceed this many bytes is committed in
	// chunks of this size into a staging generation and switched in by one small
	// transaction (staging.go), which bounds the commit's heap; a smaller one is one
	// transaction. Default 2 MiB.
	ListChunkBytes int
	// PageSize of a newly created file (default: the OS page size). Ignored for an
	// existing file.
	PageSize int
	// DropPagesIdle: after a large list (read or committed) and this long without
	// another, the cache file's pages are dropped from the process's map (they stay in
	// the page cache; mapdrop.go, docs/cache.md "Resident memory"). Default 5s;
	// negative: never (the start-up check's pages are dropped all the same).
	DropPagesIdle time.Duration
	// AfterIdleDrop, when set, runs after that idle drop of the map's pages: the
	// daemon returns the Go heap freed by the large list to the OS there
	// (debug.FreeOSMemory), so idle RSS is what the hub holds rather than the
	// high-water mark of its last large list.
	AfterIdleDrop func()
	// Log receives open/recovery/migration messages (default: discard).
	Log *slog.Logger
	// Now is the clock (tests).
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.LockTimeout <= 0 {
		o.LockTimeout = 5 * time.Second
	}
	if o.MaxBatchDelay <= 0 {
		o.MaxBatchDelay = 25 * time.Millisecond
	}
	if o.MaxBatchEvents <= 0 {
		o.MaxBatchEvents = 4096
	}
	if o.ListChunkBytes <= 0 {
		o.ListChunkBytes = defaultListChunkBytes
	}
	if o.DropPagesIdle == 0 {
		o.DropPagesIdle = 5 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Store is the cache. All methods are safe for concurrent use.
type Store struct {
	path string
	opts Options
	db   *bolt.DB
	log  *slog.Logger

	batchc    chan *batchReq
	closeOnce sync.Once
	closing   chan struct{}
	done      chan struct{}
	mu        sync.RWMutex // held for reading by calls in flight, for writing by Close
	closed    bool
	refresh   refreshes  // when GETs last saw each object (gc.go)
	stageMu   sync.Mutex // one list committed in chunks at a time (staging.go)

	damage damageLog // values found damaged: logged once, counted
	idle   idleDrop  // drops the map's pages after large lists (mapdrop.go)
}

// Path is the cache file's path.
func (s *Store) Path() string { return s.path }

// DB exposes the bbolt handle for migrations tests and consistency checks; the
// proxy never needs it.
func (s *Store) DB() *bolt.DB { return s.db }

// Open opens (creating, mode 0600) the cache file at path. See the package doc for
// what happens to a damaged, newer or foreign file.
func Open(path string, opts Options) (*Store, error) {
	opts.defaults()
	s := &Store{path: path, opts: opts, log: opts.Log.With(slog.String("cache", path)), refresh: refreshes{opened: opts.Now()}}
	if !opts.ReadOnly {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("create the cache directory for %s: %w", path, err)
		}
	}
	db, err := s.openChecked()
	if err != nil && !opts.ReadOnly && !errors.Is(err, ErrLocked) && errors.Is(err, ErrCorrupt) {
		if merr := s.moveAside(err); merr != nil {
			return nil, merr
		}
		db, err = s.openChecked()
	}
	if err != nil {
		return nil, err
	}
	s.db = db
	if !opts.ReadOnly {
		from, to, err := s.migrate()
		if err != nil {
			db.Close()
			return nil, err
		}
		if from != to {
			s.log.Info("cache schema migrated", slog.Uint64("from", from), slog.Uint64("to", to))
		}
		if n, err := s.removeStaging(); err != nil {
			s.log.Warn("cannot remove the staging generations of interrupted list commits; the next open tries again", slog.Any("err", err))
		} else if n > 0 {
			s.log.Info("removed the staging generations of list commits a crash interrupted", slog.Int("lists", n))
		}
		_ = os.Chmod(path, 0o600) // an existing file with a wider mode is narrowed
	}
	// The check above read every page of the file; drop them from this process's map
	// (they stay in the page cache) so RSS counts what is served, not what was verified.
	if err := s.dropMappedPages(); err != nil {
		s.log.Warn("cannot drop the start-up check's pages from the cache file's map; RSS counts them until the kernel reclaims them", slog.Any("err", err))
	}
	s.batchc = make(chan *batchReq)
	s.closing = make(chan struct{})
	s.done = make(chan struct{})
	if opts.ReadOnly {
		close(s.done)
	} else {
		go s.committer()
	}
	return s, nil
}

// openChecked opens the bbolt file, checks its pages and identifies the schema.
// Damage and foreign/newer files come back wrapping ErrCorrupt.
func (s *Store) openChecked() (db *bolt.DB, err error) {
	// A truncated file faults (SIGBUS) when a page past its end is read: make that a
	// recoverable panic in this goroutine instead of a crash.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				db.Close()
			}
			db, err = nil, fmt.Errorf("%w: %s: bbolt panicked while opening: %v", ErrCorrupt, s.path, r)
		}
	}()
	if s.opts.ReadOnly {
		if _, err := os.Stat(s.path); err != nil {
			return nil, fmt.Errorf("cache file %s: %w", s.path, err)
		}
	}
	bopts := &bolt.Options{
		Timeout:         s.opts.LockTimeout,
		ReadOnly:        s.opts.ReadOnly,
		NoSync:          s.opts.NoSync,
		FreelistType:    bolt.FreelistMapType,
		PreLoadFreelist: true,
		PageSize:        s.opts.PageSize, // Stats reads the freelist, also read-only
	}
	if !s.opts.ReadOnly {
		// Map address space ahead so that a big transaction does not remap (each remap
		// copies every node in flight to the heap), and grow the file in small steps
		// so the mapping size does not become the file size.
		bopts.InitialMmapSize = initialMmapSize
	}
	db, err = bolt.Open(s.path, 0o600, bopts)
	if err == nil && !s.opts.ReadOnly {
		db.AllocSize = allocSize
		db.MaxBatchDelay = s.opts.MaxBatchDelay // PutObject's Batch, like the event group commit
	}
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("%w: %s (waited %s; is yurthub running? use its admin socket)", ErrLocked, s.path, s.opts.LockTimeout)
		}
		if errors.Is(err, os.ErrPermission) || errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("open cache file: %w", err)
		}
		// The machine, not the file: a full disk (a new file cannot be initialised),
		// a read-only filesystem, an I/O error. Moving the file aside would not help
		// and would throw a good cache away.
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			return nil, noSpace(fmt.Errorf("open cache file %s: %w", s.path, err), filepath.Dir(s.path))
		}
		if errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EIO) {
			return nil, fmt.Errorf("open cache file %s: %w", s.path, err)
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, s.path, err)
	}
	if err := db.View(func(tx *bolt.Tx) error {
		// Touch every page of every bucket here, in this goroutine, where a bbolt
		// panic on a bad page is recovered; tx.Check runs in a goroutine of its own
		// (an unrecoverable panic there), so it comes second, for the freelist and
		// page-accounting problems it reports as errors.
		if err := walkAll(tx); err != nil {
			return err
		}
		for cerr := range tx.Check() {
			return cerr // the first problem is enough to condemn the file
		}
		return identify(tx)
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, s.path, err)
	}
	return db, nil
}

// identify accepts an empty file, or one of ours at a version this binary knows.
func identify(tx *bolt.Tx) error {
	meta := tx.Bucket(schema.BucketMeta)
	if meta == nil {
		empty := true
		_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
		if !empty {
			return errors.New("not a yurthub cache (no meta bucket): foreign bbolt file")
		}
		return nil
	}
	if name := meta.Get(schema.KeySchema); string(name) != schema.Name {
		return fmt.Errorf("not a yurthub cache (schema %q, want %q)", name, schema.Name)
	}
	if v := meta.Get(schema.KeyVersion); v != nil {
		ver, err := schema.ParseUint64(v)
		if err != nil {
			return fmt.Errorf("meta/version: %v", err)
		}
		if ver > migrations.Latest() {
			return fmt.Errorf("schema version %d is newer than this binary's %d (downgraded?)", ver, migrations.Latest())
		}
	}
	return nil
}

func (s *Store) moveAside(reason error) error {
	aside := fmt.Sprintf("%s.corrupt-%s", s.path, s.opts.Now().UTC().Format("20060102T150405.000Z"))
	if err := os.Rename(s.path, aside); err != nil {
		return fmt.Errorf("cache file %s is unusable (%v) and cannot be moved aside: %w", s.path, reason, err)
	}
	s.log.Warn("cache file unusable: moved aside, starting with an empty cache (it refills from the cloud)",
		slog.String("moved_to", aside), slog.String("reason", reason.Error()))
	s.pruneAside()
	return nil
}

// KeepCorrupt is how many moved-aside files (cache.db.corrupt-<UTC time>) are kept
// for a post-mortem: each can be as large as the cache, so older ones are deleted
// when another is moved aside.
const KeepCorrupt = 3

// pruneAside deletes all but the newest KeepCorrupt moved-aside files, saying so.
// Their names sort by time (the suffix is a fixed-width UTC timestamp).
func (s *Store) pruneAside() {
	aside, err := filepath.Glob(s.path + ".corrupt-*")
	if err != nil || len(aside) <= KeepCorrupt {
		return
	}
	sort.Strings(aside)
	for _, old := range aside[:len(aside)-KeepCorrupt] {
		var size int64
		if fi, err := os.Lstat(old); err == nil {
			if !fi.Mode().IsRegular() {
				continue
			}
			size = fi.Size()
		}
		if err := os.Remove(old); err != nil {
			s.log.Warn("cannot delete an old moved-aside cache file", slog.String("file", old), slog.Any("err", err))
			continue
		}
		s.log.Info("deleted an old moved-aside cache file (the newest are kept)", slog.String("file", old),
			slog.Int64("bytes", size), slog.Int("kept", KeepCorrupt))
	}
}

func (s *Store) migrate() (from, to uint64, err error) {
	env := migrations.Env{OpenYurtCacheDir: s.opts.OpenYurtCacheDir, Log: s.log, Now: s.opts.Now}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s: bbolt panicked during migration: %v", ErrCorrupt, s.path, r)
		}
	}()
	from, to, err = migrations.Run(s.db, env)
	if err != nil {
		return from, to, noSpace(fmt.Errorf("migrate cache %s: %w", s.path, err), filepath.Dir(s.path))
	}
	return from, to, nil
}

// Close waits for the group commit in flight, then closes the file.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.stopIdleDrop()
		close(s.closing)
		<-s.done
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		err = s.db.Close()
	})
	return err
}

// view and update run fn in a transaction, turning a bbolt panic into ErrCorrupt.
func (s *Store) view(fn func(*bolt.Tx) error) (err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer recoverCorrupt(&err, s.path)
	return s.db.View(fn)
}

func (s *Store) update(fn func(*bolt.Tx) error) error {
	return s.write(s.db.Update, fn)
}

// batch is update through bbolt's Batch: concurrent calls share one commit. fn may
// run more than once and must be idempotent; an error from one caller's fn is
// returned to that caller only. fn may run on bbolt's batch goroutine, which gets
// the same fault handling (bbolt turns a panic in fn into that caller's error).
func (s *Store) batch(fn func(*bolt.Tx) error) error {
	return s.write(s.db.Batch, func(tx *bolt.Tx) error {
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		return fn(tx)
	})
}

// write runs fn through run (bbolt's Update or Batch), refusing on a read-only or
// closed store and turning a bbolt panic into ErrCorrupt.
func (s *Store) write(run func(func(*bolt.Tx) error) error, fn func(*bolt.Tx) error) (err error) {
	if s.opts.ReadOnly {
		return fmt.Errorf("cache %s is open read-only", s.path)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer recoverCorrupt(&err, s.path)
	return noSpace(run(fn), filepath.Dir(s.path))
}

func recoverCorrupt(err *error, path string) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%w: %s: bbolt panicked: %v", ErrCorrupt, path, r)
	}
}

func ctxErr(ctx context.Context) error {
	if ctx == nil {
		return nil
	}
	return ctx.Err()
}

// walkAll reads every key of every bucket, recursively.
func walkAll(tx *bolt.Tx) error {
	var walk func(b *bolt.Bucket) error
	walk = func(b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				if nb := b.Bucket(k); nb != nil {
					return walk(nb)
				}
			}
			return nil
		})
	}
	return tx.ForEach(func(_ []byte, b *bolt.Bucket) error { return walk(b) })
}
