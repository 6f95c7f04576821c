// Package store is the hub's cache: one bbolt file (<root-dir>/cache.db, mode 0600)
// holding every object, list view and discovery response the hub has seen, per
// component. It replaces OpenYurt's one-file-per-object cache: a list is replaced in
// one transaction (readers see the old set or the new one, never a mix), every list
// view records the resourceVersion it was synced at, and a crash can lose at most the
// writes whose call had not yet returned, never leave a torn state.
//
// # Bucket layout
//
// Names are spelled once, in package schema; migrations (top-level package) change
// the layout and this drawing is kept true with them.
//
//	(root)
//	├── meta                                   schema identity and version
//	│   ├── schema  = "yurthub-cache/v1"       a file without it is foreign: moved aside
//	│   ├── version = uint64 BE                 migrations.Latest(); written last
//	│   ├── created = RFC 3339
//	│   └── openyurt-import = one line          what the one-time OpenYurt import found
//	└── components
//	    └── <component>                        "kubelet", "kube-proxy", ... (never "")
//	        ├── objects
//	        │   └── <group>/<version>/<resource>          core group spelled "core"
//	        │       └── <namespace>/<name> = object record  "/<name>" if cluster-scoped
//	        │             [1 fmt=2][1 enc 'j'|'p'][8 resourceVersion BE][4 CRC-32C][bytes...]
//	        │             enc 'J'|'P': changed on the node offline (Object.Local), yields to the cloud's copy
//	        ├── lists
//	        │   └── <group>/<version>/<resource>
//	        │       └── <namespace>?<selector>             one list view; ns "" = all
//	        │           ├── info = [1 fmt=2][8 rv][8 syncedAt ns][8 count][1 complete][4 CRC-32C][reason]
//	        │           └── members
//	        │               └── <namespace>/<name> = 0x01  objects this view covers
//	        └── raw
//	            └── <path> = [1 fmt=2][4 CRC-32C][2 len][content type][body]   /version, /api, /apis/...
//
// Every value record carries a CRC-32C (Castagnoli) of its own bytes (schema version 3;
// migration 3 rewrote the format-1 records, which had none). bbolt checks its pages, not
// the values in them: a value whose bytes changed on disk is found by its checksum on
// every read and is never returned (see "Damaged values" below).
//
// An object is stored once per component/resource/namespace/name and shared by every
// list view of that component and resource that covers it (two selectors on one
// resource keep two correct views: OpenYurt refuses the second, openyurtio/openyurt#1400).
// An object leaves the file when the last view covering it drops it (a replace
// without it, or a DELETED event); objects stored by PutObject alone stay until
// replaced or deleted by a view, or dropped by the GC (gc.go: DeleteObjects,
// PutLocalEvent's cap). Compact (compact.go) rewrites the file without its free
// pages; none of this changes the layout.
//
// # Writes and what a crash can lose
//
// ReplaceList / BeginList commit a whole list in one transaction. ApplyEvents is
// group-committed: concurrent calls are merged into one transaction, which starts at
// most Options.MaxBatchDelay after the first waiting call (or as soon as
// Options.MaxBatchEvents are waiting) and is fsync'd before any of the calls return.
// A crash therefore loses exactly the events whose ApplyEvents call had not returned;
// everything that returned nil is on disk; the file is never torn (bbolt's
// copy-on-write meta pages). A caller that wants throughput buffers events while its
// previous ApplyEvents call is in flight and passes them all in the next call.
// PutObject compares in a read transaction first (an unchanged object commits
// nothing) and writes a changed one through bbolt's Batch, fsync'd before it returns.
//
// # Reading
//
// List and Walk call fn inside one read transaction with Object.Data aliasing the
// memory-mapped file: no copy is made, and Data is valid only during fn (copy it to
// keep it). Keep fn quick (encode into a buffered writer): once the file outgrows the
// 128 MiB mapped ahead, a writer that must remap waits for open readers.
//
// # Opening
//
// Open takes bbolt's file lock with Options.LockTimeout (ErrLocked when another
// process holds it). A file that is corrupt, truncated, of a newer schema version,
// or not ours is renamed cache.db.corrupt-<UTC time>, the reason logged, and a fresh
// cache created: the cache can always be rebuilt from the cloud, and the proxy must
// come up. Open reads every bucket (bad pages and a truncated file's faults become
// errors there), runs bbolt's consistency check (tx.Check), then the pending
// migrations (see package migrations; the one-time import of an OpenYurt disk cache
// is one of them).
// A read-only Open (hubctl on a stopped node) never moves, migrates or writes.
//
// Of the files moved aside, the newest KeepCorrupt are kept; older ones are deleted
// (each can be as large as the cache), and the log says so.
//
// bbolt panics on some bad pages; every store call recovers such a panic and returns
// an error wrapping ErrCorrupt instead.
//
// # Damaged values
//
// A value that fails its checksum (ErrDamaged) is left out of every answer: List
// verifies every member of the view before it calls fn for the first one and then
// returns ErrDamaged naming the damaged keys (a caller never streams half a list),
// GetObject and GetRaw return ErrDamaged, Walk passes the object with Damaged set and
// no Data. The store logs each damaged key once (WARN), counts it (DamagedValues), and
// marks every list view covering it incomplete with the reason, so the offline path
// refuses the view until the next list from the cloud replaces it; a damaged copy is
// always overwritten, even by the same resourceVersion.
package store
