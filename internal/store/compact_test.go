package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/yurthub/yurthub/internal/testenv"
)

const compactChildEnv = "YURTHUB_STORE_COMPACT_CHILD" // path of the cache file

// bigPod is a pod-sized JSON object (about 3 KiB: one bbolt page or more each).
func bigPod(ns, name string, rv uint64) Object {
	return Object{Namespace: ns, Name: name, ResourceVersion: rv, Encoding: EncodingJSON,
		Data: fmt.Appendf(nil, `{"apiVersion":"v1","kind":"Pod","metadata":{"namespace":%q,"name":%q,"resourceVersion":"%d"},"pad":%q}`,
			ns, name, rv, strings.Repeat("x", 3000))}
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestCompactShrinks: a file that held 10k pods, then emptied, shrinks to under 10%
// of its size under the start-up rule (no Force), and keeps what it still holds.
func TestCompactShrinks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	k := ListKey{Component: "kubelet", Resource: pods, Selector: "fieldSelector=spec.nodeName%3Dn1"}
	for round := uint64(0); round < 2; round++ {
		w, err := s.BeginList(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 10000 {
			if err := w.Add(bigPod("ns", fmt.Sprintf("p%05d", i), round*10000+uint64(i)+1)); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Commit((round + 1) * 10000); err != nil {
			t.Fatal(err)
		}
	}
	keep := ObjectKey{Component: "kube-proxy", Resource: Resource{Version: "v1", Resource: "services"}, Namespace: "default", Name: "kubernetes"}
	if err := s.PutObject(ctx, keep, obj("default", "kubernetes", 7)); err != nil {
		t.Fatal(err)
	}
	if err := s.ReplaceList(ctx, k, 30000, nil); err != nil { // every pod gone
		t.Fatal(err)
	}
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before := fileSize(t, path)
	t.Logf("before: file %d bytes, %d free pages of %d bytes: %d reclaimable", before, st.FreePages, st.PageSize, st.Reclaimable)

	res, err := Compact(path, CompactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	after := fileSize(t, path)
	t.Logf("Compact: compacted=%v %s; %d -> %d bytes (%.1f%%) in %s", res.Compacted, res.Reason, res.SizeBefore, after, 100*float64(after)/float64(before), res.Took)
	if !res.Compacted || after*10 >= before || res.SizeAfter != after {
		t.Fatalf("not shrunk to under 10%%: %+v, file %d -> %d", res, before, after)
	}
	checkFile(t, path)
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if o, err := s.GetObject(ctx, keep); err != nil || o.ResourceVersion != 7 {
		t.Fatalf("object kept through compaction: %+v %v", o, err)
	}
	if _, info, err := listNames(t, s, k); err != nil || info.ResourceVersion != 30000 || info.Count != 0 || !info.Complete {
		t.Fatalf("view after compaction: %+v %v", info, err)
	}
	// A second start finds nothing to reclaim and leaves the file alone.
	s.Close()
	res, err = Compact(path, CompactOptions{})
	if err != nil || res.Compacted {
		t.Fatalf("second Compact: %+v %v", res, err)
	}
	t.Logf("second start: not compacted: %s", res.Reason)
}

func TestCompactLocked(t *testing.T) {
	s := openTest(t, Options{})
	_, err := Compact(s.Path(), CompactOptions{Force: true, LockTimeout: 100 * time.Millisecond})
	if !strings.Contains(fmt.Sprint(err), "stop yurthub") {
		t.Fatalf("Compact of a file the daemon holds: %v", err)
	}
}

// compactChild compacts the file over and over (Force) until it is killed.
func compactChild(path string) {
	for {
		if _, err := Compact(path, CompactOptions{Force: true, AfterCopy: func() { os.Stdout.WriteString("copied\n") }}); err != nil {
			fmt.Fprintln(os.Stderr, "child compact:", err)
			os.Exit(2)
		}
		os.Stdout.WriteString("renamed\n")
	}
}

// fingerprint opens the file read-only (as hubctl does: every page walked, tx.Check)
// and hashes every object and list view.
func fingerprint(t testing.TB, path string) (string, int) {
	t.Helper()
	s, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("open after SIGKILL: %v", err)
	}
	defer s.Close()
	h := sha256.New()
	n := 0
	if err := s.Walk(ctx, Filter{}, func(k ObjectKey, o Object) error {
		fmt.Fprintf(h, "%s@%d:%s\n", k, o.ResourceVersion, o.Data)
		n++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range st.Components {
		for _, r := range c.Resources {
			for _, l := range r.Lists {
				fmt.Fprintf(h, "%s/%s/%s?%s %d %d %v\n", c.Name, r.Resource, l.Namespace, l.Selector, l.ResourceVersion, l.Count, l.Complete)
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)), n
}

// TestCompactSIGKILL kills a process compacting the cache 200 times at random
// moments (YURTHUB_CRASH_KILLS / -crash.kills as TestCrashSIGKILL): after every kill
// the file exists, opens, passes tx.Check and holds the same objects and views.
func TestCompactSIGKILL(t *testing.T) {
	kills := *crashKills
	if env := os.Getenv("YURTHUB_CRASH_KILLS"); env != "" {
		fmt.Sscanf(env, "%d", &kills)
	}
	if testing.Short() && kills > 20 {
		kills = 20
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cache.db")
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for v := range 4 {
		k := crashView(v)
		var objs []Object
		for i := range 600 {
			objs = append(objs, Object{Namespace: fmt.Sprintf("ns%d", v), Name: crashName(i), ResourceVersion: uint64(i + 1), Data: crashData(v, crashName(i), uint64(i+1))})
		}
		if err := s.ReplaceList(ctx, k, 1000, objs); err != nil {
			t.Fatal(err)
		}
		if err := s.ReplaceList(ctx, k, 2000, objs[:150]); err != nil { // free pages to reclaim
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	want, n := fingerprint(t, path)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	start := time.Now()
	var renamed, copied int
	for kill := 0; kill < kills; kill++ {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), compactChildEnv+"="+path)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(2+rng.IntN(120)) * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("kill %d: the child exited instead of being killed: %s", kill, stderr.String())
		}
		renamed += strings.Count(stdout.String(), "renamed")
		copied += strings.Count(stdout.String(), "copied")
		checkFile(t, path)
		if t.Failed() {
			t.Fatalf("kill %d: consistency check failed", kill)
		}
		if got, gn := fingerprint(t, path); got != want {
			t.Fatalf("kill %d: the file holds %d objects with fingerprint %s, want %d with %s", kill, gn, got, n, want)
		}
	}
	leftovers, _ := filepath.Glob(path + ".compact-*")
	t.Logf("%d SIGKILLs during compaction in %s (%d compactions completed, %d reached the rename): every time the file opened, passed tx.Check and held the same %d objects and 4 views; %d partial copies left for the next Compact to remove; file %d bytes",
		kills, time.Since(start).Round(time.Millisecond), renamed, copied, n, len(leftovers), fileSize(t, path))
	if _, err := Compact(path, CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(path + ".compact-*"); len(left) != 0 {
		t.Fatalf("Compact left partial copies: %v", left)
	}
}

// TestCompactDiskFull: with no room for the copy (a real full tmpfs), Compact fails
// with ErrNoSpace, leaves the file as it was and no partial copy behind.
func TestCompactDiskFull(t *testing.T) {
	dir := testenv.SmallFS(t, 16<<20)
	path := filepath.Join(dir, "cache.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	k := ListKey{Component: "kubelet", Resource: pods}
	var objs []Object
	for i := range 1500 {
		objs = append(objs, bigObj("default", fmt.Sprintf("p%04d", i), uint64(i+1)))
	}
	if err := s.ReplaceList(ctx, k, 2000, objs); err != nil {
		t.Fatal(err)
	}
	if err := s.ReplaceList(ctx, k, 3000, objs[:1000]); err != nil {
		t.Fatal(err)
	}
	s.Close()
	want, n := fingerprint(t, path)
	filler := testenv.FillDisk(t, dir)
	res, err := Compact(path, CompactOptions{Force: true})
	if !errors.Is(err, ErrNoSpace) || res.Compacted {
		t.Fatalf("Compact on a full disk: %+v, %v; want ErrNoSpace", res, err)
	}
	t.Logf("Compact on a full disk: %v", err)
	if got, _ := fingerprint(t, path); got != want {
		t.Fatal("the file changed")
	}
	if left, _ := filepath.Glob(path + ".compact-*"); len(left) != 0 {
		t.Fatalf("a partial copy was left: %v", left)
	}
	checkFile(t, path)
	// Room for the new file to start but not for the copy: it fails half-way.
	fi, err := os.Stat(filler)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filler, fi.Size()-512<<10); err != nil {
		t.Fatal(err)
	}
	res, err = Compact(path, CompactOptions{Force: true})
	if !errors.Is(err, ErrNoSpace) || res.Compacted {
		t.Fatalf("Compact with 512 KiB free: %+v, %v; want ErrNoSpace", res, err)
	}
	t.Logf("Compact with 512 KiB free: %v", err)
	if got, _ := fingerprint(t, path); got != want {
		t.Fatal("the file changed")
	}
	if left, _ := filepath.Glob(path + ".compact-*"); len(left) != 0 {
		t.Fatalf("a partial copy was left: %v", left)
	}
	checkFile(t, path)
	t.Logf("the file (%d objects) is intact", n)
}
