package daemon

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/yurthub/yurthub/internal/config"
	"github.com/yurthub/yurthub/internal/store"
)

// TestCompactAtStart: a cache that held 10k pods (listed twice), then none, shrinks
// to under 10% of its size when the daemon starts, before it serves; the next start
// leaves it alone.
func TestCompactAtStart(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), config.WorkingModeEdge)
	if err := os.MkdirAll(cfg.RootDir, 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(cfg.CacheFile(), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	k := store.ListKey{Component: "kubelet", Resource: store.Resource{Version: "v1", Resource: "pods"}, Selector: "fieldSelector=spec.nodeName%3Dedge-1"}
	for round := range uint64(2) {
		w, err := s.BeginList(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 10000 {
			name := fmt.Sprintf("p%05d", i)
			rv := round*10000 + uint64(i) + 1
			if err := w.Add(store.Object{Namespace: "default", Name: name, ResourceVersion: rv,
				Data: fmt.Appendf(nil, `{"apiVersion":"v1","kind":"Pod","metadata":{"name":%q,"namespace":"default","resourceVersion":"%d"},"spec":{"nodeName":"edge-1"},"pad":%q}`, name, rv, strings.Repeat("x", 3000))}); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Commit((round + 1) * 10000); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.ReplaceList(ctx, k, 30000, nil); err != nil {
		t.Fatal(err)
	}
	s.Close()
	fi, _ := os.Stat(cfg.CacheFile())
	before := fi.Size()

	logs, stop := startDaemon(t, cfg)
	stop()
	fi, _ = os.Stat(cfg.CacheFile())
	after := fi.Size()
	line := grepLines(logs.String(), "cache compacted at start")
	t.Logf("cache file %d -> %d bytes (%.2f%%); log: %s", before, after, 100*float64(after)/float64(before), line)
	if after*10 >= before || line == "" {
		t.Fatalf("not compacted at start to under 10%%: %d -> %d\n%s", before, after, logs.String())
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("compacted file mode %v", fi.Mode().Perm())
	}
	logs, stop = startDaemon(t, cfg)
	stop()
	if strings.Contains(logs.String(), "cache compacted at start") {
		t.Fatal("a compact file was compacted again")
	}
}
