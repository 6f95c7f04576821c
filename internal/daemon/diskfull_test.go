package daemon

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/yurthub/yurthub/internal/config"
	"github.com/yurthub/yurthub/internal/testenv"
)

// TestDaemonDiskFull starts the daemon in edge mode with its --root-dir on a real
// filesystem that is full (a small tmpfs), so no cache file can be created: the
// daemon still comes up, says why it runs without a cache, its proxy port answers,
// and it shuts down cleanly.
func TestDaemonDiskFull(t *testing.T) {
	root := testenv.SmallFS(t, 1<<20)
	cfg := testConfig(t, root, config.WorkingModeEdge)
	if err := os.MkdirAll(cfg.RootDir, 0o700); err != nil {
		t.Fatal(err)
	}
	testenv.FillDisk(t, root)

	logs, stop := startDaemon(t, cfg)
	proxyURL := fmt.Sprintf("http://127.0.0.1:%d/api/v1/namespaces", cfg.ProxyPort)
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := get(t, proxyURL)
		if code != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the proxy does not answer on a full disk: %s\nlog:\n%s", body, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	log := logs.String()
	if !strings.Contains(log, "the cache cannot be opened because the disk is full") || !strings.Contains(log, "no space left on device") {
		t.Fatalf("the log does not say why there is no cache:\n%s", log)
	}
	if _, err := os.Stat(cfg.CacheFile() + ".corrupt-"); err == nil || strings.Contains(log, "moved aside") {
		t.Errorf("a full disk was treated as a corrupt cache:\n%s", log)
	}
	stop()
}
