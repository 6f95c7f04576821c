package migrations

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/yurthub/yurthub/internal/store/schema"
)

func sampleCache(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "testdata", "openyurt-cache")
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("sample OpenYurt cache: %v", err)
	}
	return dir
}

func init() {
	stepTests[2] = stepTest{
		init: func(t *testing.T, tx *bolt.Tx, env *Env) { env.OpenYurtCacheDir = sampleCache(t) },
		check: func(t *testing.T, tx *bolt.Tx) {
			checkImported(t, tx)
		},
	}
}

type wantObj struct {
	component, resource, key string
	rv                       uint64
}

func checkImported(t *testing.T, tx *bolt.Tx) {
	t.Helper()
	comps := tx.Bucket(schema.BucketComponents)
	want := []wantObj{
		{"kubelet", "core/v1/pods", "kube-system/kube-proxy-7xq2k", 1201},
		{"kubelet", "core/v1/pods", "default/nginx-5d8f7c9b4-abcde", 1307},
		{"kubelet", "core/v1/nodes", "/edge-node-1", 1410},
		{"kubelet", "coordination.k8s.io/v1/leases", "kube-node-lease/edge-node-1", 1415},
		{"kubelet", "core/v1/configmaps", "kube-system/kube-proxy", 880},
		{"kubelet", "core/v1/secrets", "default/db-password", 905},
		{"kubelet", "core/v1/secrets", "kube-system/coredns-token-x7k2p", 906},
		{"kube-proxy", "core/v1/services", "default/kubernetes", 200},
		{"kube-proxy", "discovery.k8s.io/v1/endpointslices", "default/kubernetes", 210},
		{"coredns", "core/v1/services", "kube-system/kube-dns", 230}, // older layout
		{"coredns", "core/v1/namespaces", "/kube-system", 12},
	}
	n := 0
	for _, w := range want {
		ob := comps.Bucket([]byte(w.component)).Bucket(schema.BucketObjects).Bucket([]byte(w.resource))
		if ob == nil {
			t.Errorf("%s %s: no objects bucket", w.component, w.resource)
			continue
		}
		enc, rv, data, err := schema.DecodeObject(ob.Get([]byte(w.key)))
		if err != nil || enc != schema.EncodingJSON || rv != w.rv || !strings.HasPrefix(string(data), "{") {
			t.Errorf("%s %s %s: enc %c rv %d err %v", w.component, w.resource, w.key, enc, rv, err)
		}
		view := comps.Bucket([]byte(w.component)).Bucket(schema.BucketLists).Bucket([]byte(w.resource)).Bucket(schema.ViewKey("", ""))
		if view == nil || view.Bucket(schema.BucketMembers).Get([]byte(w.key)) == nil {
			t.Errorf("%s %s %s: not a member of the imported list view", w.component, w.resource, w.key)
		}
		n++
	}
	// Nothing else: no tmp_* files, no truncated flanneld node, no _internal.
	total := 0
	comps.ForEachBucket(func(c []byte) error {
		if string(c) == "flanneld" || string(c) == "_internal" {
			t.Errorf("component %s imported", c)
		}
		ob := comps.Bucket(c).Bucket(schema.BucketObjects)
		ob.ForEachBucket(func(r []byte) error {
			ob.Bucket(r).ForEach(func(k, _ []byte) error {
				total++
				if strings.Contains(string(k), "tmp_") {
					t.Errorf("tmp file imported: %s %s %s", c, r, k)
				}
				return nil
			})
			return nil
		})
		return nil
	})
	if total != len(want) {
		t.Errorf("imported %d objects, want %d", total, len(want))
	}
	li, err := schema.DecodeListInfo(comps.Bucket([]byte("kubelet")).Bucket(schema.BucketLists).
		Bucket([]byte("core/v1/pods")).Bucket(schema.ViewKey("", "")).Get(schema.KeyInfo))
	if err != nil || li.ResourceVersion != 1307 || li.Count != 2 || !li.Complete || li.Reason != ImportedReason {
		t.Errorf("kubelet pods view info %+v %v", li, err)
	}
	note := string(tx.Bucket(schema.BucketMeta).Get(schema.KeyOpenYurtInput))
	if !strings.Contains(note, "imported 11 objects (9 resources)") || !strings.Contains(note, "skipped 2 tmp_* files, 1 unreadable or invalid files") {
		t.Errorf("meta/openyurt-import = %q", note)
	}
}

func TestOpenYurtImportCases(t *testing.T) {
	tests := []struct {
		name, dir, note string
	}{
		{"not configured", "", "no OpenYurt disk cache configured"},
		{"missing dir", "/nonexistent/openyurt/cache", "no OpenYurt disk cache at /nonexistent/openyurt/cache"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := openDB(t)
			if _, _, err := Run(db, Env{OpenYurtCacheDir: tc.dir, Now: fixedNow}); err != nil {
				t.Fatal(err)
			}
			db.View(func(tx *bolt.Tx) error {
				if got := string(tx.Bucket(schema.BucketMeta).Get(schema.KeyOpenYurtInput)); got != tc.note {
					t.Errorf("note %q, want %q", got, tc.note)
				}
				return nil
			})
		})
	}
	// Exactly once: a file already at the latest version never re-imports, even
	// when the directory has changed since.
	t.Run("exactly once", func(t *testing.T) {
		db := openDB(t)
		if _, _, err := Run(db, Env{Now: fixedNow}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := Run(db, Env{OpenYurtCacheDir: sampleCache(t), Now: fixedNow}); err != nil {
			t.Fatal(err)
		}
		db.View(func(tx *bolt.Tx) error {
			if tx.Bucket(schema.BucketComponents).Bucket([]byte("kubelet")) != nil {
				t.Error("import ran on a file already at the latest version")
			}
			return nil
		})
	})
	t.Run("fresh file imports", func(t *testing.T) {
		db := openDB(t)
		if _, _, err := Run(db, Env{OpenYurtCacheDir: sampleCache(t), Now: fixedNow}); err != nil {
			t.Fatal(err)
		}
		db.View(func(tx *bolt.Tx) error { checkImported(t, tx); return nil })
	})
}
