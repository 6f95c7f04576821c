package store

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/yurthub/yurthub/internal/testenv"
)

// rssFileKiB reads RssFile (the file-backed pages mapped into this process) from
// /proc/self/status.
func rssFileKiB(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		testenv.Missing(t, "RssFile needs /proc/self/status: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "RssFile:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("RssFile line %q: %v", sc.Text(), err)
			}
			return n
		}
	}
	testenv.Missing(t, "no RssFile in /proc/self/status (kernel older than 4.5?)")
	return 0
}

// TestOpenDropsCheckedPages: Open reads every page of the file to check it; those
// pages must not stay in the process's RSS (docs/cache.md "Resident memory"). A cache
// file of two 10k-pod views (about 85 MB) is written, closed and opened again; the open
// may leave only a small part of the file mapped, and the data must still read back
// (the pages come back from the page cache).
func TestOpenDropsCheckedPages(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	// Streamed (spoolPods), not a slice: a 20 MB live slice would raise the GC target
	// of the heap tests that run after this one in the same process.
	const pods10k = 10000
	for _, c := range []string{"kubelet", "kube-proxy"} {
		if err := spoolPods(t, s, ListKey{Component: c, Resource: pods}, pods10k, 2048, 1).Commit(20_000); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	fileKiB := fi.Size() / 1024
	if fileKiB < 40<<10 {
		t.Fatalf("cache file is %d KiB; the test needs a file of tens of MB", fileKiB)
	}

	before := rssFileKiB(t)
	s, err = Open(path, Options{NoSync: true, DropPagesIdle: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	afterOpen := rssFileKiB(t)
	grew := afterOpen - before
	t.Logf("cache file %d KiB; RssFile %d KiB before Open, %d KiB after (+%d)", fileKiB, before, afterOpen, grew)
	if grew > fileKiB/8 {
		t.Errorf("Open left %d KiB of the %d KiB cache file mapped in RSS (allowed %d): the start-up check's pages were not dropped", grew, fileKiB, fileKiB/8)
	}

	n := 0
	if _, err := s.List(ctx, ListKey{Component: "kube-proxy", Resource: pods}, func(o Object) error {
		if len(o.Data) == 0 {
			t.Fatalf("empty object %s/%s after the drop", o.Namespace, o.Name)
		}
		n++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != pods10k {
		t.Fatalf("listed %d objects after the drop, want %d", n, pods10k)
	}
	afterList := rssFileKiB(t)
	t.Logf("RssFile after listing one 10k view: %d KiB", afterList)
	if afterList-afterOpen < 10<<10 {
		t.Fatalf("listing 10k pods of 2 KiB mapped only %d KiB: the test does not measure what it should", afterList-afterOpen)
	}

	// Idle after a large list: its pages are dropped too (DropPagesIdle).
	deadline := time.Now().Add(5 * time.Second)
	idle := rssFileKiB(t)
	for ; idle-afterOpen > fileKiB/8 && time.Now().Before(deadline); idle = rssFileKiB(t) {
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("RssFile idle after the list: %d KiB", idle)
	if idle-afterOpen > fileKiB/8 {
		t.Errorf("%d KiB of the list's pages still mapped 5s after a large list (DropPagesIdle 300ms)", idle-afterOpen)
	}

	// A walk of every object (GC, hubctl inspect through the admin socket) too.
	if err := s.Walk(ctx, Filter{}, func(ObjectKey, Object) error { return nil }); err != nil {
		t.Fatal(err)
	}
	afterWalk := rssFileKiB(t)
	deadline = time.Now().Add(5 * time.Second)
	idle = rssFileKiB(t)
	for ; idle-afterOpen > fileKiB/8 && time.Now().Before(deadline); idle = rssFileKiB(t) {
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("RssFile after a walk of every object: %d KiB, idle after it: %d KiB", afterWalk, idle)
	if idle-afterOpen > fileKiB/8 {
		t.Errorf("%d KiB of the walk's pages still mapped 5s after it (DropPagesIdle 300ms)", idle-afterOpen)
	}
}

// TestDropDuringReadsAndWrites: pages dropped over and over while lists are read and
// replaced never change what a reader sees (List verifies every object's checksum
// and fails with ErrDamaged on changed bytes), and writers commit in between (run it
// with -race).
func TestDropDuringReadsAndWrites(t *testing.T) {
	s := openTest(t, Options{NoSync: true})
	k := ListKey{Component: "kubelet", Resource: pods, Namespace: "drop"}
	if err := spoolPods(t, s, k, 2000, 2048, 1).Commit(5000); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	drops := make(chan int)
	go func() {
		n := 0
		defer func() { drops <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := s.dropMappedPages(); err != nil {
				t.Errorf("drop: %v", err)
				return
			}
			n++
		}
	}()
	for i := range 10 {
		if i%3 == 0 { // a writer that grows the file
			other := ListKey{Component: fmt.Sprintf("c%d", i), Resource: pods, Namespace: "drop"}
			if err := spoolPods(t, s, other, 4000, 4096, 1).Commit(9000); err != nil {
				t.Fatal(err)
			}
		}
		names, info, err := listNames(t, s, k)
		if err != nil || len(names) != 2000 || info.ResourceVersion != 5000 {
			t.Fatalf("read %d: %d objects, rv %d, %v", i, len(names), info.ResourceVersion, err)
		}
	}
	close(stop)
	n := <-drops
	t.Logf("%d drops during 10 reads of 2,000 objects and 4 writes of 4,000", n)
	if n == 0 {
		t.Fatal("no drop ran during the reads")
	}
}

// TestAfterIdleDrop: the hook the daemon uses to return freed heap to the OS runs
// once the store is idle after a large list, and not after a small one.
func TestAfterIdleDrop(t *testing.T) {
	var calls atomic.Int32
	s, err := Open(filepath.Join(t.TempDir(), "cache.db"), Options{NoSync: true,
		DropPagesIdle: 100 * time.Millisecond, AfterIdleDrop: func() { calls.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := spoolPods(t, s, ListKey{Component: "kubelet", Resource: pods}, largeListObjects-1, 256, 1).Commit(10); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	if n := calls.Load(); n != 0 {
		t.Fatalf("AfterIdleDrop ran %d times after a list of %d objects (under largeListObjects)", n, largeListObjects-1)
	}
	if err := spoolPods(t, s, ListKey{Component: "kube-proxy", Resource: pods}, largeListObjects, 256, 1).Commit(20); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for calls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // one idle period: one call, not a loop
	if n := calls.Load(); n != 1 {
		t.Fatalf("AfterIdleDrop ran %d times in the 3s after a list of %d objects, want 1", n, largeListObjects)
	}
}
