package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/yurthub/yurthub/internal/store/schema"
	"github.com/yurthub/yurthub/migrations"
)

// damageInPlace overwrites n pseudo-random bytes of the real file at every place
// marker occurs (the live copy, and the stale copy in a freed page when the value's
// page was rewritten since), with the file closed. The pages stay valid for bbolt;
// only the value changes.
func damageInPlace(t testing.TB, path, marker string, n int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(marker)) {
		t.Fatalf("marker %q is not in %s", marker, path)
	}
	junk := make([]byte, n)
	r := rand.New(rand.NewPCG(19, 300))
	for i := range junk {
		junk[i] = byte(r.UintN(256))
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for off := 0; ; {
		i := bytes.Index(data[off:], []byte(marker))
		if i < 0 {
			break
		}
		if _, err := f.WriteAt(junk, int64(off+i)); err != nil {
			t.Fatal(err)
		}
		off += i + len(marker)
	}
}

// TestDamagedValue: 300 random bytes written inside one stored pod of a real file
// (bbolt's page check still passes). Open keeps the file; List refuses the whole view
// with ErrDamaged naming the pod, before calling fn at all, and marks every view
// covering it incomplete; GetObject refuses the pod and serves the others; Walk
// (hubctl dump) passes it as Damaged; the key is logged once and counted once; the
// next list (same objects, same resourceVersions) repairs it.
func TestDamagedValue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	all := ListKey{Component: "kubelet", Resource: pods}
	nsView := ListKey{Component: "kubelet", Resource: pods, Namespace: "default"}
	other := ListKey{Component: "kubelet", Resource: pods, Namespace: "other"}
	var objs []Object
	for i := range 5 {
		o := obj("default", fmt.Sprintf("pod-%d", i), uint64(100+i))
		o.Data = append(o.Data[:len(o.Data)-1], fmt.Sprintf(`,"pad":"MARK%d%s"}`, i, strings.Repeat("-", 500))...)
		objs = append(objs, o)
	}
	otherObj := obj("other", "x", 50)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []ListKey{all, nsView} {
		if err := s.ReplaceList(ctx, k, 200, objs); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.ReplaceList(ctx, other, 60, []Object{otherObj}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	damageInPlace(t, path, "MARK2-", 300)

	var logs strings.Builder
	s, err = Open(path, Options{Log: newTextLogger(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); checkFile(t, path) })
	if aside, _ := filepath.Glob(path + ".corrupt-*"); len(aside) != 0 {
		t.Fatalf("a damaged value inside intact pages moved the file aside: %v", aside)
	}

	for round := range 2 { // the second round: logged and counted once, not twice
		called := 0
		info, err := s.List(ctx, all, func(Object) error { called++; return nil })
		if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "default/pod-2") {
			t.Fatalf("round %d: List of a view with a damaged object: %v, want ErrDamaged naming default/pod-2", round, err)
		}
		if called != 0 {
			t.Fatalf("round %d: List called fn %d times before reporting the damage (a streamed list would be torn)", round, called)
		}
		if info.Complete {
			t.Fatalf("round %d: info of a damaged view says complete", round)
		}
		if _, err := s.GetObject(ctx, ObjectKey{Component: "kubelet", Resource: pods, Namespace: "default", Name: "pod-2"}); !errors.Is(err, ErrDamaged) {
			t.Fatalf("round %d: GetObject of the damaged pod: %v, want ErrDamaged", round, err)
		}
	}
	for _, k := range []ListKey{all, nsView} {
		li, err := s.GetListInfo(ctx, k)
		if err != nil || li.Complete || !strings.Contains(li.Reason, "default/pod-2") || !strings.Contains(li.Reason, "integrity") {
			t.Errorf("view %s after the damage was found: %+v %v, want incomplete naming default/pod-2", k, li, err)
		}
	}
	if li, err := s.GetListInfo(ctx, other); err != nil || !li.Complete {
		t.Errorf("a view not covering the damaged pod: %+v %v, want complete", li, err)
	}
	if got, err := s.GetObject(ctx, ObjectKey{Component: "kubelet", Resource: pods, Namespace: "default", Name: "pod-1"}); err != nil || !bytes.Equal(got.Data, objs[1].Data) {
		t.Errorf("an intact neighbour: %q %v", got.Data, err)
	}
	var walked []string
	if err := s.Walk(ctx, Filter{}, func(k ObjectKey, o Object) error {
		if o.Damaged != nil {
			if !errors.Is(o.Damaged, ErrDamaged) || o.Data != nil {
				t.Errorf("Walk: damaged %s: %v, data %q", k, o.Damaged, o.Data)
			}
			walked = append(walked, "damaged:"+k.Name)
		} else {
			walked = append(walked, k.Name)
		}
		return nil
	}); err != nil {
		t.Fatalf("Walk: %v", err)
	}
	if got := strings.Join(walked, " "); got != "pod-0 pod-1 damaged:pod-2 pod-3 pod-4 x" {
		t.Errorf("Walk saw %s", got)
	}
	if n := strings.Count(logs.String(), "key=default/pod-2"); n != 1 {
		t.Errorf("the damaged key was logged %d times, want once:\n%s", n, logs.String())
	}
	if n := s.DamagedValues(); n != 1 {
		t.Errorf("DamagedValues = %d, want 1", n)
	}
	st, err := s.Stats(ctx)
	if err != nil || len(st.Components) != 1 || fmt.Sprint(st.Components[0].Resources[0].Damaged) != "[default/pod-2]" {
		t.Errorf("Stats: damaged %+v %v", st.Components, err)
	}

	// The next list from the cloud, with the same objects at the same resourceVersions.
	if err := s.ReplaceList(ctx, all, 200, objs); err != nil {
		t.Fatal(err)
	}
	got, info, err := listNames(t, s, all)
	if err != nil || !info.Complete || len(got) != 5 {
		t.Fatalf("after the repair list: %v %+v %v", got, info, err)
	}
	if o, err := s.GetObject(ctx, ObjectKey{Component: "kubelet", Resource: pods, Namespace: "default", Name: "pod-2"}); err != nil || !bytes.Equal(o.Data, objs[2].Data) {
		t.Fatalf("after the repair: %q %v", o.Data, err)
	}
}

// TestDamagedListInfo: a view's info record changed in place is refused (ErrDamaged)
// rather than read as some other resourceVersion or count, and a list replaces it.
func TestDamagedListInfo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	k := ListKey{Component: "kubelet", Resource: pods, Selector: "labelSelector=app=MARKINFO"}
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.MarkIncomplete(ctx, k, "x"); !errors.Is(err, ErrNotSynced) {
		t.Fatal(err)
	}
	if err := s.ReplaceList(ctx, k, 200, []Object{obj("a", "b", 5)}); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkIncomplete(ctx, k, "REASONMARK-reason"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	damageInPlace(t, path, "REASONMARK", 4)
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); checkFile(t, path) })
	if _, err := s.GetListInfo(ctx, k); !errors.Is(err, ErrDamaged) {
		t.Fatalf("damaged info: %v, want ErrDamaged", err)
	}
	if err := s.ReplaceList(ctx, k, 300, []Object{obj("a", "b", 6)}); err != nil {
		t.Fatalf("a list over a damaged info: %v", err)
	}
	if li, err := s.GetListInfo(ctx, k); err != nil || !li.Complete || li.ResourceVersion != 300 || li.Count != 1 {
		t.Fatalf("after the list: %+v %v", li, err)
	}
}

// TestMovedAsideFilesPruned: each unusable file is moved aside whole; after five,
// only the newest KeepCorrupt remain, and the log says which were deleted.
func TestMovedAsideFilesPruned(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cache.db")
	var logs strings.Builder
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		if err := os.WriteFile(path, []byte(fmt.Sprintf("not a database %d\n", i)), 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(path, Options{Log: newTextLogger(&logs), Now: func() time.Time { return now.Add(time.Duration(i) * time.Hour) }})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	aside, _ := filepath.Glob(path + ".corrupt-*")
	var got []string
	for _, a := range aside {
		b, _ := os.ReadFile(a)
		got = append(got, strings.TrimSpace(string(b)))
	}
	if want := "not a database 2,not a database 3,not a database 4"; strings.Join(got, ",") != want {
		t.Fatalf("moved-aside files kept: %v (%q), want the newest %d (%s)\nlog:\n%s", aside, got, KeepCorrupt, want, logs.String())
	}
	if n := strings.Count(logs.String(), "deleted an old moved-aside cache file"); n != 2 {
		t.Errorf("the log names %d deletions, want 2:\n%s", n, logs.String())
	}
}

// TestListWalksMembersOverGaps: List walks a view's members and the shared objects
// bucket together; a view holding every 10th object of a larger one (gaps the walk
// seeks over) and one holding neighbours (steps) both list exactly their members,
// with their own bytes.
func TestListWalksMembersOverGaps(t *testing.T) {
	s := openTest(t, Options{NoSync: true})
	all := ListKey{Component: "kubelet", Resource: pods}
	var objs, tenth, first []Object
	for i := range 100 {
		o := obj("ns", fmt.Sprintf("p%03d", i), uint64(i+1))
		objs = append(objs, o)
		if i%10 == 7 {
			tenth = append(tenth, o)
		}
		if i < 3 || i == 99 {
			first = append(first, o)
		}
	}
	if err := s.ReplaceList(ctx, all, 500, objs); err != nil {
		t.Fatal(err)
	}
	for sel, want := range map[string][]Object{"labelSelector=a=tenth": tenth, "labelSelector=a=first": first} {
		k := ListKey{Component: "kubelet", Resource: pods, Selector: sel}
		if err := s.ReplaceList(ctx, k, 500, want); err != nil {
			t.Fatal(err)
		}
		i := 0
		if _, err := s.List(ctx, k, func(o Object) error {
			if i >= len(want) || o.Name != want[i].Name || !bytes.Equal(o.Data, want[i].Data) {
				t.Errorf("%s: item %d is %s %q", sel, i, o.Name, o.Data)
			}
			i++
			return nil
		}); err != nil || i != len(want) {
			t.Errorf("%s: listed %d of %d: %v", sel, i, len(want), err)
		}
	}
}

// TestOpenUpgradesFormat1File: a file as schema version 2 wrote it (records without
// checksums, spelled here byte by byte) opens, is migrated to version 3 in place (not
// moved aside), and serves the same objects and list info.
func TestOpenUpgradesFormat1File(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	data := `{"apiVersion":"v1","kind":"Pod","metadata":{"namespace":"ns","name":"p","resourceVersion":"7"}}`
	if err := db.Update(func(tx *bolt.Tx) error {
		env := migrations.Env{Now: time.Now}
		for _, m := range migrations.Migrations[:2] {
			if err := m.Migrate(tx, env); err != nil {
				return err
			}
		}
		if err := tx.Bucket(schema.BucketMeta).Put(schema.KeyVersion, schema.Uint64(2)); err != nil {
			return err
		}
		comp, _ := tx.Bucket(schema.BucketComponents).CreateBucket([]byte("kubelet"))
		objs, _ := comp.CreateBucket(schema.BucketObjects)
		pb, _ := objs.CreateBucket([]byte("core/v1/pods"))
		rec := append([]byte{1, 'j', 0, 0, 0, 0, 0, 0, 0, 7}, data...)
		if err := pb.Put([]byte("ns/p"), rec); err != nil {
			return err
		}
		lists, _ := comp.CreateBucket(schema.BucketLists)
		lb, _ := lists.CreateBucket([]byte("core/v1/pods"))
		vb, _ := lb.CreateBucket([]byte("?"))
		mb, _ := vb.CreateBucket(schema.BucketMembers)
		if err := mb.Put([]byte("ns/p"), []byte{1}); err != nil {
			return err
		}
		info := []byte{1, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1}
		return vb.Put(schema.KeyInfo, info)
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	var logs strings.Builder
	s, err := Open(path, Options{Log: newTextLogger(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); checkFile(t, path) })
	if aside, _ := filepath.Glob(path + ".corrupt-*"); len(aside) != 0 {
		t.Fatalf("a version-2 file was moved aside: %s", logs.String())
	}
	got, info, err := listNames(t, s, ListKey{Component: "kubelet", Resource: pods})
	if err != nil || fmt.Sprint(got) != "[ns/p@7]" || info.ResourceVersion != 9 || !info.Complete || info.Count != 1 {
		t.Fatalf("after the upgrade: %v %+v %v\n%s", got, info, err, logs.String())
	}
	o, err := s.GetObject(ctx, ObjectKey{Component: "kubelet", Resource: pods, Namespace: "ns", Name: "p"})
	if err != nil || string(o.Data) != data {
		t.Fatalf("GetObject after the upgrade: %q %v", o.Data, err)
	}
	if st, err := s.Stats(ctx); err != nil || st.SchemaVersion != 3 {
		t.Fatalf("schema version %d after the upgrade (%v)", st.SchemaVersion, err)
	}
	if !strings.Contains(logs.String(), "cache records now carry checksums") || !strings.Contains(logs.String(), "records=2") {
		t.Errorf("the migration does not say what it did:\n%s", logs.String())
	}
}

// The GC's walk (WalkCoverage) passes over a damaged value instead of failing the
// whole sweep: the read paths report it, the next list repairs it.
func TestWalkCoverageSkipsDamagedValue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	view := ListKey{Component: "kubelet", Resource: pods}
	var objs []Object
	for i := range 3 {
		o := obj("default", fmt.Sprintf("pod-%d", i), uint64(100+i))
		o.Data = append(o.Data[:len(o.Data)-1], fmt.Sprintf(`,"pad":"MARK%d%s"}`, i, strings.Repeat("-", 500))...)
		objs = append(objs, o)
	}
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ReplaceList(ctx, view, 200, objs); err != nil {
		t.Fatal(err)
	}
	s.Close()
	damageInPlace(t, path, "MARK1-", 300)
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var seen []string
	err = s.WalkCoverage(ctx, Filter{Component: "kubelet"}, func(k ObjectKey, o Object, covered bool) error {
		if !covered {
			t.Errorf("%s: not covered by the list view", k)
		}
		seen = append(seen, k.Name)
		return nil
	})
	if err != nil || strings.Join(seen, ",") != "pod-0,pod-2" {
		t.Fatalf("WalkCoverage over a damaged value: saw %v, err %v; want pod-0 and pod-2, no error", seen, err)
	}
}
