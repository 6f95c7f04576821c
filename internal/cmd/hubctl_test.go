package cmd

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/yurthub/yurthub/internal/store"
)

// hubctl inspect and dump on a stopped node's cache file, through Main.
func TestHubctlInspectDump(t *testing.T) {
	root := t.TempDir()
	s, err := store.Open(filepath.Join(root, "cache.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	k := store.ListKey{Component: "kubelet", Resource: store.Resource{Version: "v1", Resource: "secrets"}}
	if err := s.ReplaceList(context.Background(), k, 9, []store.Object{{Namespace: "ns", Name: "s1", ResourceVersion: 9,
		Data: []byte(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s1","namespace":"ns"},"data":{"k":"c2VjcmV0"}}`)}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	t.Cleanup(func() { // bbolt's consistency check on the test DB
		db, err := bolt.Open(filepath.Join(root, "cache.db"), 0o600, &bolt.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		db.View(func(tx *bolt.Tx) error {
			for err := range tx.Check() {
				t.Errorf("consistency check: %v", err)
			}
			return nil
		})
	})
	tests := []struct {
		args     []string
		code     int
		want     string
		dontWant string
	}{
		{[]string{"hubctl", "inspect", "--root-dir", root}, ExitOK, "secrets.v1", ""},
		{[]string{"hubctl", "inspect", "--cache-file", filepath.Join(root, "cache.db"), "-o", "json"}, ExitOK, `"schemaVersion": 3`, ""},
		{[]string{"hubctl", "dump", "--root-dir", root}, ExitOK, `"k": "REDACTED"`, "c2VjcmV0"},
		{[]string{"hubctl", "dump", "--root-dir", root, "-o", "yaml", "--show-secrets"}, ExitOK, "k: c2VjcmV0", ""},
		{[]string{"hubctl", "dump", "--root-dir", root, "--component", "kube-proxy", "-o", "yaml"}, ExitOK, "items: []", ""},
		{[]string{"yurthub", "dump", "--root-dir", root, "--name", "s1"}, ExitOK, `"kind": "List"`, ""},
		{[]string{"hubctl", "dump", "--root-dir", root, "-o", "xml"}, ExitUsage, "must be json or yaml", ""},
		{[]string{"hubctl", "inspect", "--root-dir", root, "extra"}, ExitUsage, "takes no arguments", ""},
		{[]string{"hubctl", "inspect", "--root-dir", t.TempDir()}, ExitError, "no cache at", ""},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args[1:], " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Main(tc.args, &out, &errb)
			all := out.String() + errb.String()
			if code != tc.code || !strings.Contains(all, tc.want) || (tc.dontWant != "" && strings.Contains(all, tc.dontWant)) {
				t.Fatalf("exit %d (want %d), output:\n%s", code, tc.code, all)
			}
		})
	}
}
