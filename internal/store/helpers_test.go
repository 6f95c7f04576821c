package store

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

var ctx = context.Background()

// checkFile runs bbolt's consistency check on a closed cache file.
func checkFile(t testing.TB, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Errorf("consistency check: open %s: %v", path, err)
		return
	}
	defer db.Close()
	if err := db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	}); err != nil {
		t.Errorf("consistency check of %s failed: %v", path, err)
	}
}

// openTest opens a store in a temp dir; at the end it is closed and checked.
func openTest(t testing.TB, opts Options) *Store {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cache.db")
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		checkFile(t, path)
	})
	return s
}

var pods = Resource{Version: "v1", Resource: "pods"}

func obj(ns, name string, rv uint64) Object {
	return Object{Namespace: ns, Name: name, ResourceVersion: rv, Encoding: EncodingJSON,
		Data: fmt.Appendf(nil, `{"apiVersion":"v1","kind":"Pod","metadata":{"namespace":%q,"name":%q,"resourceVersion":"%d"}}`, ns, name, rv)}
}

// listNames returns "ns/name@rv" for a view.
func listNames(t testing.TB, s *Store, k ListKey) ([]string, ListInfo, error) {
	t.Helper()
	var out []string
	info, err := s.List(ctx, k, func(o Object) error {
		out = append(out, fmt.Sprintf("%s/%s@%d", o.Namespace, o.Name, o.ResourceVersion))
		return nil
	})
	return out, info, err
}

func newTextLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
