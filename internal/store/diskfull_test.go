package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/yurthub/yurthub/internal/testenv"
)

func bigObj(ns, name string, rv uint64) Object {
	o := obj(ns, name, rv)
	o.Data = fmt.Appendf(nil, `{"apiVersion":"v1","kind":"Pod","metadata":{"namespace":%q,"name":%q,"resourceVersion":"%d"},"spec":{"pad":%q}}`, ns, name, rv, strings.Repeat("x", 2000))
	return o
}

// TestDiskFull fills the filesystem under a real cache file (a small tmpfs): every
// kind of write fails with ErrNoSpace and says what to do, what was committed stays
// exactly as it was (the view is the old set, complete, at its old resourceVersion),
// reopening the file on the full disk neither fails nor moves it aside, and once
// space is freed the same writes succeed. A new cache file on a full disk fails with
// ErrNoSpace too, and is not mistaken for a corrupt one.
func TestDiskFull(t *testing.T) {
	dir := testenv.SmallFS(t, 16<<20)
	path := filepath.Join(dir, "cache.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer func() { s.Close() }()
	k := ListKey{Component: "kubelet", Resource: pods}
	var before, after []Object
	var wantBefore, wantAfter []string
	for i := 0; i < 50; i++ {
		o := bigObj("default", fmt.Sprintf("old-%02d", i), uint64(100+i))
		before, wantBefore = append(before, o), append(wantBefore, fmt.Sprintf("default/%s@%d", o.Name, o.ResourceVersion))
	}
	for i := 0; i < 600; i++ {
		o := bigObj("default", fmt.Sprintf("new-%04d", i), uint64(300+i))
		after, wantAfter = append(after, o), append(wantAfter, fmt.Sprintf("default/%s@%d", o.Name, o.ResourceVersion))
	}
	if err := s.ReplaceList(ctx, k, 200, before); err != nil {
		t.Fatalf("ReplaceList: %v", err)
	}
	filler := testenv.FillDisk(t, dir)

	streamList := func() error {
		w, err := s.BeginList(ctx, k)
		if err != nil {
			return err
		}
		for _, o := range after {
			if err := w.Add(o); err != nil {
				w.Abort()
				return err
			}
		}
		return w.Commit(5000)
	}
	writes := []struct {
		name  string
		write func() error
	}{
		{"ReplaceList", func() error { return s.ReplaceList(ctx, k, 5000, after) }},
		{"streamed list (BeginList/Add/Commit)", streamList},
		{"ApplyEvents", func() error {
			return s.ApplyEvents(ctx, k, []Event{{Type: Added, Object: bigObj("default", "ev", 6000)}})
		}},
		{"PutObject", func() error {
			return s.PutObject(ctx, ObjectKey{Component: "kubelet", Resource: pods, Namespace: "default", Name: "get"}, bigObj("default", "get", 6001))
		}},
	}
	for _, w := range writes {
		name, err := w.name, w.write()
		if !errors.Is(err, ErrNoSpace) || !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("%s on a full disk: err = %v, want ErrNoSpace wrapping ENOSPC", name, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, dir) || !strings.Contains(msg, "free space") {
			t.Errorf("%s: the error does not name the directory and what to do: %s", name, msg)
		}
	}
	got, info, err := listNames(t, s, k)
	if err != nil || !slices.Equal(got, wantBefore) || info.ResourceVersion != 200 || !info.Complete {
		t.Fatalf("view after the failed writes: %d objects, %+v, %v; want the 50 old ones, complete at RV 200", len(got), info, err)
	}

	// Restart on the full disk: the file is fine, so it opens as it is.
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if s, err = Open(path, Options{}); err != nil {
		t.Fatalf("reopen on a full disk: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("files after reopening: %v, want only cache.db and the filler (nothing moved aside)", ents)
	}
	if got, info, err = listNames(t, s, k); err != nil || !slices.Equal(got, wantBefore) || info.ResourceVersion != 200 {
		t.Fatalf("view after reopening: %d objects, %+v, %v", len(got), info, err)
	}

	// A new cache file cannot even be initialised on the full disk.
	other := filepath.Join(dir, "other.db")
	if _, err := Open(other, Options{}); !errors.Is(err, ErrNoSpace) || errors.Is(err, ErrCorrupt) {
		t.Errorf("Open of a new file on a full disk: err = %v, want ErrNoSpace (and not ErrCorrupt)", err)
	}
	if m, _ := filepath.Glob(other + ".corrupt-*"); len(m) > 0 {
		t.Errorf("the new file was moved aside as corrupt: %v", m)
	}
	_ = os.Remove(other)

	// Space again: the same writes succeed.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for _, w := range writes {
		if err := w.write(); err != nil {
			t.Errorf("%s once space is free: %v", w.name, err)
		}
	}
	if got, info, err = listNames(t, s, k); err != nil || len(got) != len(wantAfter)+1 || info.ResourceVersion != 6000 {
		t.Errorf("view once space is free: %d objects, %+v, %v; want the 600 new ones and the event, at RV 6000", len(got), info, err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	checkFile(t, path)
}
