package daemon

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/yurthub/yurthub/internal/config"
)

// TestDaemonNarrowsRootDir: a --root-dir left at 0755 with a cache file, a file
// moved aside and a serving key at 0644 (as the probe found it). At start the
// daemon narrows the directory to 0700 and every file to 0600, saying so for each,
// and leaves a symbolic link's target (not its own) alone.
func TestDaemonNarrowsRootDir(t *testing.T) {
	root := t.TempDir()
	cfg := testConfig(t, root, config.WorkingModeEdge)
	outside := filepath.Join(root, "outside.txt")
	files := map[string]fs.FileMode{
		cfg.RootDir:  0o755,
		cfg.PKIDir(): 0o755,
		filepath.Join(cfg.PKIDir(), "yurthub-server-current.pem"): 0o644,
		cfg.CacheFile() + ".corrupt-20261201T000000.000Z":         0o644,
	}
	for _, d := range []string{cfg.RootDir, cfg.PKIDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for p := range files {
		if strings.HasSuffix(p, ".pem") || strings.Contains(p, ".corrupt-") {
			if err := os.WriteFile(p, []byte("secret"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.WriteFile(outside, []byte("not ours"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(cfg.RootDir, "link")); err != nil {
		t.Fatal(err)
	}
	for p, m := range files {
		if err := os.Chmod(p, m); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	logs, stop := startDaemon(t, cfg)
	stop()
	for p := range files {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		want := fs.FileMode(0o600)
		if fi.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v after start, want %v", p, fi.Mode().Perm(), want)
		}
		if !strings.Contains(logs.String(), "path="+p+" from=") {
			t.Errorf("the log does not say %s was narrowed", p)
		}
	}
	if fi, err := os.Stat(cfg.CacheFile()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("cache file: %v %v", fi.Mode(), err)
	}
	if fi, _ := os.Stat(outside); fi.Mode().Perm() != 0o644 {
		t.Errorf("the target of a link under --root-dir was changed to %v", fi.Mode().Perm())
	}
	t.Logf("log:\n%s", grepLines(logs.String(), "root-dir"))
}
