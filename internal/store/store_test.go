package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/yurthub/yurthub/internal/store/schema"
	"github.com/yurthub/yurthub/migrations"
)

func TestObjects(t *testing.T) {
	s := openTest(t, Options{})
	k := ObjectKey{Component: "kubelet", Resource: pods, Namespace: "ns", Name: "p"}
	tests := []struct {
		name    string
		put     Object
		wantErr error
		wantRV  uint64
	}{
		{"first put", obj("ns", "p", 5), nil, 5},
		{"newer replaces", obj("ns", "p", 7), nil, 7},
		{"equal is a no-op", obj("ns", "p", 7), nil, 7},
		{"older refused", obj("ns", "p", 6), ErrStale, 7},
		{"protobuf", Object{Namespace: "ns", Name: "p", ResourceVersion: 9, Encoding: EncodingProtobuf, Data: []byte("k8s\x00xx")}, nil, 9},
		{"bad encoding", Object{Namespace: "ns", Name: "p", ResourceVersion: 10, Encoding: "xml"}, ErrInvalid, 9},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.PutObject(ctx, k, tc.put)
			if !errors.Is(err, tc.wantErr) && !(err == nil && tc.wantErr == nil) {
				t.Fatalf("PutObject: got %v, want %v", err, tc.wantErr)
			}
			got, err := s.GetObject(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			if got.ResourceVersion != tc.wantRV {
				t.Fatalf("stored RV %d, want %d", got.ResourceVersion, tc.wantRV)
			}
		})
	}
	got, _ := s.GetObject(ctx, k)
	if got.Encoding != EncodingProtobuf || string(got.Data) != "k8s\x00xx" {
		t.Fatalf("protobuf object came back as %q %q", got.Encoding, got.Data)
	}
	for _, bad := range []ObjectKey{
		{Resource: pods, Name: "x"},
		{Component: "c", Resource: Resource{Resource: "pods"}, Name: "x"},
		{Component: "c", Resource: pods},
		{Component: "c", Resource: pods, Namespace: "a/b", Name: "x"},
		{Component: "c", Resource: pods, Name: "x/y"},
	} {
		if err := s.PutObject(ctx, bad, obj("", "x", 1)); !errors.Is(err, ErrInvalid) {
			t.Errorf("PutObject(%+v) = %v, want ErrInvalid", bad, err)
		}
	}
	if _, err := s.GetObject(ctx, ObjectKey{Component: "kubelet", Resource: pods, Namespace: "ns", Name: "nope"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing object: %v", err)
	}
	if _, err := s.GetObject(ctx, ObjectKey{Component: "other", Resource: pods, Namespace: "ns", Name: "p"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("other component sees kubelet's object: %v", err)
	}
}

func TestRaw(t *testing.T) {
	s := openTest(t, Options{})
	if _, _, err := s.GetRaw(ctx, "kubelet", "/version"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetRaw before put: %v", err)
	}
	if err := s.PutRaw(ctx, "kubelet", "/version", "application/json", []byte(`{"major":"1"}`)); err != nil {
		t.Fatal(err)
	}
	ct, body, err := s.GetRaw(ctx, "kubelet", "/version")
	if err != nil || ct != "application/json" || string(body) != `{"major":"1"}` {
		t.Fatalf("GetRaw = %q %q %v", ct, body, err)
	}
	if err := s.PutRaw(ctx, "", "/version", "x", nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty component: %v", err)
	}
}

func TestListsAndEvents(t *testing.T) {
	s := openTest(t, Options{})
	all := ListKey{Component: "kubelet", Resource: pods}
	mine := ListKey{Component: "kubelet", Resource: pods, Selector: "fieldSelector=spec.nodeName=n1"}
	ns := ListKey{Component: "kubelet", Resource: pods, Namespace: "b"}
	type step struct {
		name      string
		do        func() error
		wantErr   error
		key       ListKey
		want      []string
		wantRV    uint64
		wantCount int
		complete  bool
		notSynced bool // List of key must say ErrNotSynced
	}
	steps := []step{
		{name: "never synced", do: func() error { return nil }, key: all, notSynced: true},
		{name: "replace all", do: func() error {
			return s.ReplaceList(ctx, all, 10, []Object{obj("a", "p1", 3), obj("a", "p2", 4), obj("b", "p3", 5)})
		}, key: all, want: []string{"a/p1@3", "a/p2@4", "b/p3@5"}, wantRV: 10, wantCount: 3, complete: true},
		{name: "second selector is its own view", do: func() error {
			return s.ReplaceList(ctx, mine, 11, []Object{obj("a", "p1", 3)})
		}, key: mine, want: []string{"a/p1@3"}, wantRV: 11, wantCount: 1, complete: true},
		{name: "first view unchanged by the second", do: func() error { return nil },
			key: all, want: []string{"a/p1@3", "a/p2@4", "b/p3@5"}, wantRV: 10, wantCount: 3, complete: true},
		{name: "modify through one view updates the shared object", do: func() error {
			return s.ApplyEvents(ctx, mine, []Event{{Type: Modified, Object: obj("a", "p1", 12)}})
		}, key: all, want: []string{"a/p1@12", "a/p2@4", "b/p3@5"}, wantRV: 10, wantCount: 3, complete: true},
		{name: "deleted in one view stays for the other", do: func() error {
			return s.ApplyEvents(ctx, mine, []Event{{Type: Deleted, Object: obj("a", "p1", 13)}})
		}, key: all, want: []string{"a/p1@12", "a/p2@4", "b/p3@5"}, wantRV: 10, wantCount: 3, complete: true},
		{name: "and is gone from the view that saw the delete", do: func() error { return nil },
			key: mine, want: nil, wantRV: 13, wantCount: 0, complete: true},
		{name: "stale event refused, others applied", do: func() error {
			return s.ApplyEvents(ctx, all, []Event{
				{Type: Modified, Object: obj("a", "p2", 3)},  // older than stored 4
				{Type: Added, Object: obj("c", "p4", 14)},    // new
				{Type: Modified, Object: obj("a", "p1", 11)}, // older than stored 12
			})
		}, wantErr: ErrStale, key: all, want: []string{"a/p1@12", "a/p2@4", "b/p3@5", "c/p4@14"}, wantRV: 14, wantCount: 4, complete: true},
		{name: "event older than the list RV refused", do: func() error {
			return s.ApplyEvents(ctx, all, []Event{{Type: Added, Object: obj("d", "p5", 13)}})
		}, wantErr: ErrStale, key: all, want: []string{"a/p1@12", "a/p2@4", "b/p3@5", "c/p4@14"}, wantRV: 14, wantCount: 4, complete: true},
		{name: "delete removes object held by no other view", do: func() error {
			return s.ApplyEvents(ctx, all, []Event{{Type: Deleted, Object: obj("a", "p1", 15)}})
		}, key: all, want: []string{"a/p2@4", "b/p3@5", "c/p4@14"}, wantRV: 15, wantCount: 3, complete: true},
		{name: "bookmark advances RV only", do: func() error {
			return s.ApplyEvents(ctx, all, []Event{{Type: Bookmark, Object: Object{ResourceVersion: 20}}})
		}, key: all, want: []string{"a/p2@4", "b/p3@5", "c/p4@14"}, wantRV: 20, wantCount: 3, complete: true},
		{name: "namespaced view", do: func() error {
			return s.ReplaceList(ctx, ns, 21, []Object{obj("b", "p3", 5)})
		}, key: ns, want: []string{"b/p3@5"}, wantRV: 21, wantCount: 1, complete: true},
		{name: "namespaced view refuses other namespaces", do: func() error {
			return s.ReplaceList(ctx, ns, 22, []Object{obj("a", "p2", 4)})
		}, wantErr: ErrInvalid, key: ns, want: []string{"b/p3@5"}, wantRV: 21, wantCount: 1, complete: true},
		{name: "replace drops missing members atomically", do: func() error {
			return s.ReplaceList(ctx, all, 30, []Object{obj("b", "p3", 5), obj("e", "p6", 29)})
		}, key: all, want: []string{"b/p3@5", "e/p6@29"}, wantRV: 30, wantCount: 2, complete: true},
		{name: "mark incomplete", do: func() error { return s.MarkIncomplete(ctx, all, "watch gap") },
			key: all, want: []string{"b/p3@5", "e/p6@29"}, wantRV: 30, wantCount: 2, complete: false},
		{name: "next replace is complete again", do: func() error { return s.ReplaceList(ctx, all, 31, nil) },
			key: all, want: nil, wantRV: 31, wantCount: 0, complete: true},
		{name: "watch without list creates an incomplete view", do: func() error {
			return s.ApplyEvents(ctx, ListKey{Component: "kube-proxy", Resource: pods}, []Event{{Type: Added, Object: obj("a", "x", 40)}})
		}, key: ListKey{Component: "kube-proxy", Resource: pods}, want: []string{"a/x@40"}, wantRV: 40, wantCount: 1, complete: false},
		{name: "mark incomplete on a never-synced view", do: func() error {
			return s.MarkIncomplete(ctx, ListKey{Component: "coredns", Resource: pods}, "x")
		}, wantErr: ErrNotSynced, key: ListKey{Component: "coredns", Resource: pods}, notSynced: true},
		{name: "unknown event type", do: func() error {
			return s.ApplyEvents(ctx, all, []Event{{Type: "ERROR", Object: obj("a", "x", 50)}})
		}, wantErr: ErrInvalid, key: all, want: nil, wantRV: 31, complete: true},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			err := st.do()
			if st.wantErr != nil && !errors.Is(err, st.wantErr) {
				t.Fatalf("got error %v, want %v", err, st.wantErr)
			}
			if st.wantErr == nil && err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			got, info, err := listNames(t, s, st.key)
			if st.notSynced {
				if !errors.Is(err, ErrNotSynced) {
					t.Fatalf("List: %v, want ErrNotSynced", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, st.want) {
				t.Fatalf("list %v, want %v", got, st.want)
			}
			if info.ResourceVersion != st.wantRV || info.Count != st.wantCount || info.Complete != st.complete {
				t.Fatalf("info %+v, want rv %d count %d complete %v", info, st.wantRV, st.wantCount, st.complete)
			}
		})
	}
	var se *StaleEventsError
	err := s.ApplyEvents(ctx, all, []Event{{Type: Added, Object: obj("z", "z", 1)}, {Type: Added, Object: obj("z", "y", 99)}})
	if !errors.As(err, &se) || !reflect.DeepEqual(se.Indexes, []int{0}) {
		t.Fatalf("StaleEventsError = %v", err)
	}
}

func TestListWriter(t *testing.T) {
	s := openTest(t, Options{})
	k := ListKey{Component: "kubelet", Resource: pods}
	w, err := s.BeginList(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 0, 64)
	for i := range 1000 {
		o := obj("ns", fmt.Sprintf("p%04d", i), uint64(i+1))
		buf = append(buf[:0], o.Data...) // the writer copies: reuse the buffer
		o.Data = buf
		if err := w.Add(o); err != nil {
			t.Fatal(err)
		}
	}
	// Before Commit readers still see nothing.
	if _, err := s.List(ctx, k, nil); !errors.Is(err, ErrNotSynced) {
		t.Fatalf("view visible before Commit: %v", err)
	}
	if err := w.Commit(5000); err != nil {
		t.Fatal(err)
	}
	n := 0
	info, err := s.List(ctx, k, func(o Object) error {
		want := obj("ns", fmt.Sprintf("p%04d", n), uint64(n+1))
		if o.Name != want.Name || string(o.Data) != string(want.Data) {
			t.Fatalf("item %d = %s %q", n, o.Name, o.Data)
		}
		n++
		return nil
	})
	if err != nil || n != 1000 || info.Count != 1000 || info.ResourceVersion != 5000 {
		t.Fatalf("List: n=%d info=%+v err=%v", n, info, err)
	}
	// Abort leaves the view alone.
	w2, _ := s.BeginList(ctx, k)
	_ = w2.Add(obj("ns", "other", 6000))
	w2.Abort()
	if err := w2.Commit(6000); err == nil {
		t.Fatal("Commit after Abort succeeded")
	}
	if info, _ := s.List(ctx, k, nil); info.Count != 1000 {
		t.Fatalf("aborted writer changed the view: %+v", info)
	}
	// fn's error stops the walk.
	stop := errors.New("stop")
	if _, err := s.List(ctx, k, func(Object) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("List fn error: %v", err)
	}
	// A bad item fails the writer, the view is untouched.
	w3, _ := s.BeginList(ctx, ListKey{Component: "kubelet", Resource: pods, Namespace: "only"})
	if err := w3.Add(obj("else", "x", 1)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Add outside the namespace: %v", err)
	}
	if err := w3.Commit(1); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Commit after a bad Add: %v", err)
	}
}

// A replace is atomic: concurrent readers see the old or the new set, never a mix.
func TestReplaceAtomicForReaders(t *testing.T) {
	s := openTest(t, Options{})
	k := ListKey{Component: "kubelet", Resource: pods}
	gen := func(g int) []Object {
		out := make([]Object, 200)
		for i := range out {
			out[i] = obj("ns", fmt.Sprintf("g%d-%03d", g%2, i), uint64(g*1000+i+1))
		}
		return out
	}
	if err := s.ReplaceList(ctx, k, 1000, gen(0)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for g := 1; g < 40; g++ {
			if err := s.ReplaceList(ctx, k, uint64(g*1000+999), gen(g)); err != nil {
				t.Error(err)
			}
		}
		close(done)
	}()
	for {
		select {
		case <-done:
			wg.Wait()
			return
		default:
		}
		prefixes := map[string]bool{}
		n := 0
		info, err := s.List(ctx, k, func(o Object) error {
			prefixes[o.Name[:2]] = true
			n++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(prefixes) != 1 || n != 200 || info.Count != 200 {
			t.Fatalf("reader saw a mix: %v, %d objects, info %+v", prefixes, n, info)
		}
	}
}

func TestGroupCommitConcurrent(t *testing.T) {
	s := openTest(t, Options{MaxBatchDelay: 2 * time.Millisecond})
	var wg sync.WaitGroup
	for st := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := ListKey{Component: "kubelet", Resource: pods, Namespace: fmt.Sprintf("ns%d", st)}
			for i := range 100 {
				if err := s.ApplyEvents(ctx, k, []Event{{Type: Added, Object: obj(k.Namespace, fmt.Sprintf("p%d", i), uint64(i+1))}}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for st := range 8 {
		k := ListKey{Component: "kubelet", Resource: pods, Namespace: fmt.Sprintf("ns%d", st)}
		info, err := s.List(ctx, k, nil)
		if err != nil || info.Count != 100 || info.ResourceVersion != 100 {
			t.Fatalf("%s: %+v %v", k, info, err)
		}
	}
}

func TestClosed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	k := ListKey{Component: "kubelet", Resource: pods}
	if err := s.ApplyEvents(ctx, k, []Event{{Type: Added, Object: obj("a", "b", 1)}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("ApplyEvents after Close: %v", err)
	}
	if _, err := s.List(ctx, k, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("List after Close: %v", err)
	}
	checkFile(t, path)
}

func TestOpenMode0600AndSchema(t *testing.T) {
	s := openTest(t, Options{})
	fi, err := os.Stat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("cache file mode %v, want 0600", fi.Mode().Perm())
	}
	st, err := s.Stats(ctx)
	if err != nil || st.SchemaVersion != migrations.Latest() {
		t.Fatalf("schema version %d (%v), want %d", st.SchemaVersion, err, migrations.Latest())
	}
}

func TestLockTimeout(t *testing.T) {
	s := openTest(t, Options{})
	start := time.Now()
	_, err := Open(s.Path(), Options{LockTimeout: 200 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("lock wait took %s", d)
	}
	if _, err := Open(s.Path(), Options{ReadOnly: true, LockTimeout: 200 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		t.Fatalf("read-only Open while locked: %v, want ErrLocked", err)
	}
}

// damaged files are moved aside with the reason logged, and a fresh cache is created.
func TestOpenMovesAsideDamagedFiles(t *testing.T) {
	valid := func(t *testing.T, path string) {
		s, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		k := ListKey{Component: "kubelet", Resource: pods}
		objs := make([]Object, 300)
		for i := range objs {
			objs[i] = obj("ns", fmt.Sprintf("p%d", i), uint64(i+1))
			objs[i].Data = append(objs[i].Data, strings.Repeat(" ", 1500)...)
		}
		if err := s.ReplaceList(ctx, k, 1000, objs); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	tests := []struct {
		name   string
		make   func(t *testing.T, path string)
		reason string
	}{
		{"not bbolt at all", func(t *testing.T, path string) {
			os.WriteFile(path, []byte("this is a text file, not a database\n"), 0o600)
		}, "invalid"},
		{"empty file", func(t *testing.T, path string) { os.WriteFile(path, nil, 0o600) }, ""},
		{"truncated", func(t *testing.T, path string) {
			valid(t, path)
			fi, _ := os.Stat(path)
			if fi.Size() < 256<<10 {
				t.Fatalf("test file too small to truncate meaningfully: %d", fi.Size())
			}
			os.Truncate(path, 64<<10) // the data goes on well past 64 KiB
		}, ""},
		{"garbage pages", func(t *testing.T, path string) {
			valid(t, path)
			f, _ := os.OpenFile(path, os.O_RDWR, 0)
			defer f.Close()
			junk := []byte(strings.Repeat("\xde\xad\xbe\xef", 1024))
			for off := int64(4 * 4096); off < 60*4096; off += 8192 {
				f.WriteAt(junk, off)
			}
		}, ""},
		{"foreign bbolt file", func(t *testing.T, path string) {
			db, _ := bolt.Open(path, 0o600, nil)
			db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("someone-elses")); return err })
			db.Close()
		}, "foreign"},
		{"other schema name", func(t *testing.T, path string) {
			db, _ := bolt.Open(path, 0o600, nil)
			db.Update(func(tx *bolt.Tx) error {
				b, _ := tx.CreateBucket(schema.BucketMeta)
				return b.Put(schema.KeySchema, []byte("something/v9"))
			})
			db.Close()
		}, "not a yurthub cache"},
		{"newer schema version", func(t *testing.T, path string) {
			valid(t, path)
			db, _ := bolt.Open(path, 0o600, nil)
			db.Update(func(tx *bolt.Tx) error {
				return tx.Bucket(schema.BucketMeta).Put(schema.KeyVersion, schema.Uint64(migrations.Latest()+1))
			})
			db.Close()
		}, "newer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "cache.db")
			tc.make(t, path)
			var logs strings.Builder
			s, err := Open(path, Options{Log: newTextLogger(&logs)})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			// Usable and empty.
			k := ListKey{Component: "kubelet", Resource: pods}
			if err := s.ReplaceList(ctx, k, 1, []Object{obj("a", "b", 1)}); err != nil {
				t.Fatal(err)
			}
			s.Close()
			checkFile(t, path)
			aside, _ := filepath.Glob(path + ".corrupt-*")
			if tc.name == "empty file" {
				// bbolt initialises an empty file: nothing to move aside.
				return
			}
			if len(aside) != 1 {
				t.Fatalf("moved-aside files %v (logs: %s)", aside, logs.String())
			}
			if !strings.Contains(logs.String(), "moved aside") || !strings.Contains(logs.String(), tc.reason) {
				t.Fatalf("log does not give the reason %q: %s", tc.reason, logs.String())
			}
		})
	}
}

// Read-only opens never move or change a damaged file.
func TestReadOnlyNeverMoves(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	os.WriteFile(path, []byte("junk junk junk"), 0o600)
	if _, err := Open(path, Options{ReadOnly: true}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read-only open of junk: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "junk junk junk" {
		t.Fatal("read-only open changed the file")
	}
	if _, err := Open(filepath.Join(t.TempDir(), "none.db"), Options{ReadOnly: true}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("read-only open of a missing file: %v", err)
	}
}

// txid is the id of the last committed write transaction.
func txid(t *testing.T, s *Store) int {
	t.Helper()
	var id int
	if err := s.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}

// A GET that returns what is cached must not commit (no fsync per kubelet GET), a
// stale one neither; concurrent changed objects share commits.
func TestPutObjectCommits(t *testing.T) {
	s := openTest(t, Options{MaxBatchDelay: 20 * time.Millisecond})
	k := ObjectKey{Component: "kubelet", Resource: pods, Namespace: "ns", Name: "p"}
	if err := s.PutObject(ctx, k, obj("ns", "p", 5)); err != nil {
		t.Fatal(err)
	}
	before := txid(t, s)
	for i := 0; i < 10; i++ {
		if err := s.PutObject(ctx, k, obj("ns", "p", 5)); err != nil {
			t.Fatalf("same resourceVersion: %v", err)
		}
	}
	if err := s.PutObject(ctx, k, obj("ns", "p", 4)); !errors.Is(err, ErrStale) {
		t.Fatalf("older resourceVersion: %v, want ErrStale", err)
	}
	if after := txid(t, s); after != before {
		t.Fatalf("unchanged and stale puts committed %d transactions, want 0", after-before)
	}

	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("c%d", i)
			errs <- s.PutObject(ctx, ObjectKey{Component: "kubelet", Resource: pods, Namespace: "ns", Name: name}, obj("ns", name, 3))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	commits := txid(t, s) - before
	if commits >= n {
		t.Fatalf("%d concurrent puts took %d commits, want them batched", n, commits)
	}
	for i := range n {
		if _, err := s.GetObject(ctx, ObjectKey{Component: "kubelet", Resource: pods, Namespace: "ns", Name: fmt.Sprintf("c%d", i)}); err != nil {
			t.Fatalf("batched put %d not stored: %v", i, err)
		}
	}
	t.Logf("%d concurrent puts in %d commits", n, commits)
}
