package migrations

import (
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/yurthub/yurthub/internal/store/schema"
)

// stepTest pairs a migration with the state before it (init, run on a file at
// Version-1) and a check of the state after it. Each step's test file registers one.
type stepTest struct {
	init  func(t *testing.T, tx *bolt.Tx, env *Env)
	check func(t *testing.T, tx *bolt.Tx)
}

var stepTests = map[uint64]stepTest{}

var fixedNow = func() time.Time { return time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC) }

func openDB(t *testing.T) *bolt.DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cache.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.View(func(tx *bolt.Tx) error {
			for err := range tx.Check() {
				return err
			}
			return nil
		}); err != nil {
			t.Errorf("consistency check: %v", err)
		}
		db.Close()
	})
	return db
}

func TestEveryMigrationHasATest(t *testing.T) {
	for i, m := range Migrations {
		if m.Version != uint64(i+1) {
			t.Errorf("Migrations[%d] has version %d, want %d (ordered, no gaps)", i, m.Version, i+1)
		}
		if _, ok := stepTests[m.Version]; !ok {
			t.Errorf("migration %d (%s) has no init/check test: add one in its _test.go file", m.Version, m.Name)
		}
	}
}

// TestEachStep brings a file to Version-1, runs the step's init, migrates, checks.
func TestEachStep(t *testing.T) {
	for _, m := range Migrations {
		st := stepTests[m.Version]
		if st.check == nil {
			continue
		}
		t.Run(m.Name, func(t *testing.T) {
			db := openDB(t)
			env := Env{Now: fixedNow}
			if err := db.Update(func(tx *bolt.Tx) error {
				for _, prev := range Migrations[:m.Version-1] {
					if err := prev.Migrate(tx, env); err != nil {
						return err
					}
				}
				if m.Version > 1 {
					return tx.Bucket(schema.BucketMeta).Put(schema.KeyVersion, schema.Uint64(m.Version-1))
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if st.init != nil {
				if err := db.Update(func(tx *bolt.Tx) error { st.init(t, tx, &env); return nil }); err != nil {
					t.Fatal(err)
				}
			}
			from, to, err := Run(db, env)
			if err != nil || from != m.Version-1 || to != Latest() {
				t.Fatalf("Run: %d -> %d, %v", from, to, err)
			}
			db.View(func(tx *bolt.Tx) error { st.check(t, tx); return nil })
		})
	}
}

func TestRunWritesVersionLastAndNothingWhenCurrent(t *testing.T) {
	db := openDB(t)
	from, to, err := Run(db, Env{Now: fixedNow})
	if err != nil || from != 0 || to != Latest() {
		t.Fatalf("fresh Run: %d -> %d, %v", from, to, err)
	}
	txid := func() (id int) {
		db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil })
		return
	}
	before := txid()
	if from, to, err := Run(db, Env{Now: fixedNow}); err != nil || from != Latest() || to != Latest() {
		t.Fatalf("second Run: %d -> %d, %v", from, to, err)
	}
	if after := txid(); after != before {
		t.Fatalf("Run with nothing pending wrote a transaction (txid %d -> %d)", before, after)
	}
}

func TestFailingStepWritesNothing(t *testing.T) {
	db := openDB(t)
	saved := Migrations
	defer func() { Migrations = saved }()
	Migrations = append(append([]Migration(nil), saved...), Migration{Version: Latest() + 1, Name: "boom",
		Migrate: func(*bolt.Tx, Env) error { return errBoom }})
	if _, _, err := Run(db, Env{Now: fixedNow}); err == nil {
		t.Fatal("Run with a failing step succeeded")
	}
	db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(schema.BucketMeta) != nil {
			t.Fatal("a failed migration left the earlier steps' writes behind")
		}
		return nil
	})
}

var errBoom = errorString("boom")

type errorString string

func (e errorString) Error() string { return string(e) }

func TestNewerVersionRefused(t *testing.T) {
	db := openDB(t)
	db.Update(func(tx *bolt.Tx) error {
		b, _ := tx.CreateBucket(schema.BucketMeta)
		return b.Put(schema.KeyVersion, schema.Uint64(Latest()+5))
	})
	if _, _, err := Run(db, Env{}); err == nil {
		t.Fatal("Run accepted a newer schema")
	}
}
