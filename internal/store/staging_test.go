package store

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/yurthub/yurthub/internal/store/schema"
)

// heapPeak runs fn and returns the peak of the live heap above what was live
// before, sampled every millisecond.
func heapPeak(fn func()) uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	base := m.HeapAlloc
	var top atomic.Uint64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > base && m.HeapAlloc-base > top.Load() {
				top.Store(m.HeapAlloc - base)
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	fn()
	close(stop)
	<-done
	return top.Load()
}

// spoolPods starts a list of n pods of about size bytes each at resourceVersion base+i.
func spoolPods(t testing.TB, s *Store, k ListKey, n, size int, base uint64) *ListWriter {
	t.Helper()
	w, err := s.BeginList(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("x", size)
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("pod-%05d", i)
		if err := w.Add(Object{Namespace: k.Namespace, Name: name, ResourceVersion: base + uint64(i), Encoding: EncodingJSON,
			Data: fmt.Appendf(nil, `{"metadata":{"name":%q,"resourceVersion":"%d"},"pad":%q}`, name, base+uint64(i), pad)}); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// TestLargeListCommitHeap: committing a 10k-pod list (about 18 MB) must not put the
// whole list on the heap. One transaction held every record plus bbolt's dirty
// pages for them: a 44 MiB peak. Chunks into a staging generation bound it.
func TestLargeListCommitHeap(t *testing.T) {
	s := openTest(t, Options{})
	k := ListKey{Component: "kubelet", Resource: pods, Namespace: "bench"}
	w := spoolPods(t, s, k, 10000, 1800, 1)
	peak := heapPeak(func() {
		if err := w.Commit(20000); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("10k-pod list (18 MB) committed: heap peak %.1f MiB above idle", float64(peak)/(1<<20))
	names, info, err := listNames(t, s, k)
	if err != nil || len(names) != 10000 || info.Count != 10000 || !info.Complete || info.ResourceVersion != 20000 {
		t.Fatalf("after the commit: %d objects, %+v, %v", len(names), info, err)
	}
	if peak > 16<<20 {
		t.Fatalf("committing a 10k-pod list raised the heap by %.1f MiB (limit 16 MiB): the list is held in memory at commit", float64(peak)/(1<<20))
	}
}

// TestStagedCommitNeverMixed: readers during commits in chunks see the old list or
// the new one, never a mix, and never an object's bytes of the other list; a
// second view sharing the objects keeps its own members.
func TestStagedCommitNeverMixed(t *testing.T) {
	s := openTest(t, Options{ListChunkBytes: 8 << 10})
	k := ListKey{Component: "kubelet", Resource: pods, Namespace: "ns"}
	other := ListKey{Component: "kubelet", Resource: pods, Namespace: "ns", Selector: "other"}
	// Generation g: pods g%2==0 ? 0..299 : 100..399, every one at RV g*1000+i.
	gen := func(g int) *ListWriter {
		w, err := s.BeginList(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		lo := 0
		if g%2 == 1 {
			lo = 100
		}
		for i := lo; i < lo+300; i++ {
			o := obj("ns", fmt.Sprintf("p%03d", i), uint64(g*1000+i))
			o.Data = append(o.Data, bytes.Repeat([]byte(" "), 200)...)
			if err := w.Add(o); err != nil {
				t.Fatal(err)
			}
		}
		return w
	}
	if err := gen(1).Commit(1999); err != nil {
		t.Fatal(err)
	}
	if err := s.ReplaceList(ctx, other, 1500, []Object{obj("ns", "p150", 1150), obj("ns", "p399", 1399)}); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var reads atomic.Int64
	errc := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			var names []string
			var rvs []uint64
			info, err := s.List(ctx, k, func(o Object) error {
				names = append(names, o.Name)
				rvs = append(rvs, o.ResourceVersion)
				return nil
			})
			if err != nil {
				errc <- err
				return
			}
			g := int(info.ResourceVersion / 1000)
			lo := 0
			if g%2 == 1 {
				lo = 100
			}
			if len(names) != 300 || names[0] != fmt.Sprintf("p%03d", lo) || names[299] != fmt.Sprintf("p%03d", lo+299) {
				errc <- fmt.Errorf("list at RV %d: %d objects %v..., not generation %d's set: a mix", info.ResourceVersion, len(names), names[:min(3, len(names))], g)
				return
			}
			for i, rv := range rvs {
				if rv/1000 != uint64(g) {
					errc <- fmt.Errorf("list at RV %d: %s has RV %d, of another generation: a mix", info.ResourceVersion, names[i], rv)
					return
				}
			}
			reads.Add(1)
		}
	}()
	for g := 2; g < 12; g++ {
		if err := gen(g).Commit(uint64(g*1000 + 999)); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
	t.Logf("%d consistent reads during 10 commits in chunks", reads.Load())
	// The other view kept its two members, with the newer bytes the lists stored.
	got, info, err := listNames(t, s, other)
	if err != nil || info.Count != 2 || fmt.Sprint(got) != "[ns/p150@11150 ns/p399@11399]" {
		t.Fatalf("other view: %v %+v %v", got, info, err)
	}
	if err := s.view(func(tx *bolt.Tx) error {
		if sb := tx.Bucket(schema.BucketComponents).Bucket([]byte("kubelet")).Bucket(schema.BucketStaging); sb != nil {
			return sb.ForEachBucket(func(rk []byte) error {
				return sb.Bucket(rk).ForEachBucket(func(vk []byte) error { return fmt.Errorf("staging generation %s left after the commit", vk) })
			})
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestStagedCommitWithEvents: watch events applied to the view while a list is
// committed in chunks are not undone by the switch: the newer copy wins, before or
// after the switch, as with a one-transaction commit.
func TestStagedCommitWithEvents(t *testing.T) {
	for round := 0; round < 20; round++ {
		s := openTest(t, Options{ListChunkBytes: 4 << 10, NoSync: true})
		k := ListKey{Component: "kubelet", Resource: pods, Namespace: "ns"}
		w := func(base uint64, lo int) *ListWriter {
			w, err := s.BeginList(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			for i := lo; i < lo+300; i++ {
				if err := w.Add(obj("ns", fmt.Sprintf("p%03d", i), base+uint64(i))); err != nil {
					t.Fatal(err)
				}
			}
			return w
		}
		if err := w(1000, 100).Commit(1999); err != nil {
			t.Fatal(err)
		}
		next := w(2000, 0)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(round%5) * time.Millisecond)
			if err := s.ApplyEvents(ctx, k, []Event{{Type: Modified, Object: obj("ns", "p150", 5000)}, {Type: Added, Object: obj("ns", "p050", 5001)}}); err != nil {
				t.Error(err)
			}
		}()
		if err := next.Commit(2999); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		got := map[string]uint64{}
		info, err := s.List(ctx, k, func(o Object) error { got[o.Name] = o.ResourceVersion; return nil })
		if err != nil {
			t.Fatal(err)
		}
		if got["p150"] != 5000 || got["p050"] != 5001 || len(got) != 300 || info.Count != 300 {
			t.Fatalf("round %d: p150@%d p050@%d, %d members (count %d): want the events' newer copies in the 300 of the new list", round, got["p150"], got["p050"], len(got), info.Count)
		}
	}
}

// TestOpenRemovesStaging: a staging generation a crash left is removed by the next
// Open, with the objects it alone wrote (an orphan newer than its view would refuse
// the view's next watch events as stale); one another view covers is kept.
func TestOpenRemovesStaging(t *testing.T) {
	path := t.TempDir() + "/cache.db"
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	k := ListKey{Component: "kubelet", Resource: pods, Namespace: "ns"}
	other := ListKey{Component: "kubelet", Resource: pods, Namespace: "ns", Selector: "other"}
	if err := s.ReplaceList(ctx, k, 100, []Object{obj("ns", "a", 10)}); err != nil {
		t.Fatal(err)
	}
	if err := s.ReplaceList(ctx, other, 100, []Object{obj("ns", "shared", 20)}); err != nil {
		t.Fatal(err)
	}
	// What a commit in chunks killed before its switch leaves.
	if err := s.DB().Update(func(tx *bolt.Tx) error {
		st, err := stagingBucket(tx, true, k)
		if err != nil {
			return err
		}
		m, _ := st.CreateBucket(schema.BucketMembers)
		staged, _ := st.CreateBucket(schema.BucketStaged)
		objs, _ := objectsBucket(tx, false, k.Component, k.Resource)
		_ = m.Put([]byte("ns/orphan"), stagedDirect)
		_ = objs.Put([]byte("ns/orphan"), schema.EncodeObject(schema.EncodingJSON, 500, obj("ns", "orphan", 500).Data))
		_ = m.Put([]byte("ns/shared"), stagedDirect)
		_ = m.Put([]byte("ns/a"), memberMark)
		return staged.Put([]byte("ns/a"), schema.EncodeObject(schema.EncodingJSON, 400, obj("ns", "a", 400).Data))
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	s, err = Open(path, Options{Log: newTextLogger(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !strings.Contains(logs.String(), "removed the staging generations") {
		t.Errorf("Open did not say it removed a staging generation: %s", logs.String())
	}
	if n, err := s.removeStaging(); n != 0 || err != nil {
		t.Fatalf("%d staging generations left after Open (%v)", n, err)
	}
	if _, err := s.GetObject(ctx, ObjectKey{Component: "kubelet", Resource: pods, Namespace: "ns", Name: "orphan"}); err == nil {
		t.Fatal("the object only the interrupted commit wrote is still stored")
	}
	for view, want := range map[ListKey]string{k: "[ns/a@10]", other: "[ns/shared@20]"} {
		if got, _, err := listNames(t, s, view); err != nil || fmt.Sprint(got) != want {
			t.Fatalf("view %s after Open: %v %v, want %s unchanged", view, got, err, want)
		}
	}
}
