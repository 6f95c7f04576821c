// Package migrations changes the cache file's layout (drawn in package
// internal/store) from one schema version to the next.
//
// Following containerd's core/metadata: Migrations is an ordered list of steps, one
// file per step with its own test (an init that builds the state before the step,
// and a check of the state after it; TestEveryMigrationHasATest fails when a step
// lacks one). Run executes every pending step inside ONE Update transaction (all or
// nothing) and writes meta/version last; when nothing is pending it writes nothing.
//
// Versions: 0 is an empty file. Adding a step = a new file NNNN_name.go, its
// NNNN_name_test.go, an entry at the end of Migrations, and the drawing in package
// store kept true. Never edit a released step: add a new one.
package migrations

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/yurthub/yurthub/internal/store/schema"
)

// Env is what a step may use besides the transaction.
type Env struct {
	OpenYurtCacheDir string // OpenYurt's --disk-cache-path ("" = none)
	Log              *slog.Logger
	Now              func() time.Time
}

// Migration is one step: it takes a file at Version-1 to Version.
type Migration struct {
	Version uint64
	Name    string
	Migrate func(tx *bolt.Tx, env Env) error
}

// Migrations is the ordered list of steps; Version i+1 at index i.
var Migrations = []Migration{
	{Version: 1, Name: "init", Migrate: initSchema},
	{Version: 2, Name: "openyurt-import", Migrate: importOpenYurt},
	{Version: 3, Name: "checksums", Migrate: addChecksums},
}

// Latest is the schema version this binary writes.
func Latest() uint64 { return Migrations[len(Migrations)-1].Version }

// Version reads the file's schema version (0 for an empty file).
func Version(tx *bolt.Tx) (uint64, error) {
	meta := tx.Bucket(schema.BucketMeta)
	if meta == nil {
		return 0, nil
	}
	v := meta.Get(schema.KeyVersion)
	if v == nil {
		return 0, nil
	}
	return schema.ParseUint64(v)
}

// Run brings db to Latest and reports the versions before and after.
func Run(db *bolt.DB, env Env) (from, to uint64, err error) {
	if env.Log == nil {
		env.Log = slog.New(slog.DiscardHandler)
	}
	if env.Now == nil {
		env.Now = time.Now
	}
	if err := db.View(func(tx *bolt.Tx) error {
		from, err = Version(tx)
		return err
	}); err != nil {
		return 0, 0, err
	}
	if from == Latest() {
		return from, from, nil
	}
	if from > Latest() {
		return from, from, fmt.Errorf("schema version %d is newer than this binary's %d", from, Latest())
	}
	err = db.Update(func(tx *bolt.Tx) error { return RunTx(tx, env, from) })
	if err != nil {
		return from, from, err
	}
	return from, Latest(), nil
}

// RunTx runs the steps after version from in tx and writes the version last.
func RunTx(tx *bolt.Tx, env Env, from uint64) error {
	if env.Log == nil {
		env.Log = slog.New(slog.DiscardHandler)
	}
	if env.Now == nil {
		env.Now = time.Now
	}
	for _, m := range Migrations {
		if m.Version <= from {
			continue
		}
		env.Log.Info("cache migration", slog.Uint64("version", m.Version), slog.String("step", m.Name))
		if err := m.Migrate(tx, env); err != nil {
			return fmt.Errorf("migration %d (%s): %w", m.Version, m.Name, err)
		}
	}
	meta := tx.Bucket(schema.BucketMeta)
	if meta == nil {
		return errors.New("migrations left no meta bucket")
	}
	return meta.Put(schema.KeyVersion, schema.Uint64(Latest()))
}
