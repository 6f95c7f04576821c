package store

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestDeleteObjectsDropsFromEveryView(t *testing.T) {
	s := openTest(t, Options{})
	a := ListKey{Component: "kubelet", Resource: pods, Selector: "fieldSelector=spec.nodeName%3Dn1"}
	b := ListKey{Component: "kubelet", Resource: pods, Namespace: "ns"}
	if err := s.ReplaceList(ctx, a, 10, []Object{obj("ns", "p1", 1), obj("ns", "p2", 2), obj("ns", "p3", 3)}); err != nil {
		t.Fatal(err)
	}
	if err := s.ReplaceList(ctx, b, 10, []Object{obj("ns", "p1", 1), obj("ns", "p2", 2)}); err != nil {
		t.Fatal(err)
	}
	get := ObjectKey{Component: "kubelet", Resource: pods, Namespace: "ns", Name: "byget"}
	if err := s.PutObject(ctx, get, obj("ns", "byget", 5)); err != nil {
		t.Fatal(err)
	}
	// Coverage as the GC sees it.
	covered := map[string]bool{}
	if err := s.WalkCoverage(ctx, Filter{Component: "kubelet"}, func(k ObjectKey, o Object, c bool) error {
		covered[k.Name] = c
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(covered) != "map[byget:false p1:true p2:true p3:true]" {
		t.Fatalf("coverage: %v", covered)
	}
	n, err := s.DeleteObjects(ctx, []ObjectKey{
		{Component: "kubelet", Resource: pods, Namespace: "ns", Name: "p1"},
		get,
		{Component: "kubelet", Resource: pods, Namespace: "ns", Name: "absent"},
	})
	if err != nil || n != 2 {
		t.Fatalf("DeleteObjects = %d, %v; want 2 removed", n, err)
	}
	for _, k := range []ListKey{a, b} {
		names, info, err := listNames(t, s, k)
		if err != nil {
			t.Fatal(err)
		}
		for _, nm := range names {
			if nm == "ns/p1@1" {
				t.Errorf("%s still lists p1: %v", k, names)
			}
		}
		if info.Count != len(names) || !info.Complete || info.ResourceVersion != 10 {
			t.Errorf("%s info after delete: %+v (names %v)", k, info, names)
		}
	}
	if _, err := s.GetObject(ctx, get); !errors.Is(err, ErrNotFound) {
		t.Errorf("GET-only object after delete: %v", err)
	}
}

func TestLastRefreshed(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := openTest(t, Options{Now: func() time.Time { return now }})
	k := ObjectKey{Component: "kubelet", Resource: pods, Namespace: "ns", Name: "p"}
	if got := s.LastRefreshed(k); !got.Equal(now) {
		t.Fatalf("never seen: %v, want the open time %v", got, now)
	}
	now = now.Add(time.Hour)
	if err := s.PutObject(ctx, k, obj("ns", "p", 3)); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Hour)
	if err := s.PutObject(ctx, k, obj("ns", "p", 3)); err != nil { // unchanged: no commit, still a refresh
		t.Fatal(err)
	}
	if got := s.LastRefreshed(k); !got.Equal(now) {
		t.Fatalf("after an unchanged GET: %v, want %v", got, now)
	}
}

func TestPutLocalEventCap(t *testing.T) {
	s := openTest(t, Options{})
	events := Resource{Version: "v1", Resource: "events"}
	newEvents := Resource{Group: "events.k8s.io", Version: "v1", Resource: "events"}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ev := func(i int) Object {
		return Object{Namespace: "ns", Name: fmt.Sprintf("e%03d", i), Encoding: EncodingJSON,
			Data: fmt.Appendf(nil, `{"t":%d}`, i)}
	}
	when := func(o Object) time.Time {
		var i int
		fmt.Sscanf(string(o.Data), `{"t":%d}`, &i)
		return base.Add(time.Duration(i) * time.Second)
	}
	// A listed event (covered by a view) is not local and never counted or evicted.
	if err := s.ReplaceList(ctx, ListKey{Component: "kubelet", Resource: events}, 5, []Object{obj("ns", "listed", 1)}); err != nil {
		t.Fatal(err)
	}
	var evicted []ObjectKey
	for i := 0; i < 12; i++ {
		r := events
		if i%3 == 0 {
			r = newEvents // the cap is per component, across both Event APIs
		}
		// Written newest-first for a few, so eviction must go by time, not order.
		j := i
		if i == 11 {
			j = -1 // created last, but the oldest: still kept (the new one always is)
		}
		ev, err := s.PutLocalEvent(ctx, ObjectKey{Component: "kubelet", Resource: r, Namespace: "ns", Name: fmt.Sprintf("e%03d", i)}, ev(j), 5, when)
		if err != nil {
			t.Fatal(err)
		}
		evicted = append(evicted, ev...)
	}
	kept := map[string]bool{}
	if err := s.WalkCoverage(ctx, Filter{Component: "kubelet"}, func(k ObjectKey, o Object, covered bool) error {
		if !covered {
			kept[k.Name] = true
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(kept) != 5 || !kept["e011"] || !kept["e010"] || !kept["e009"] || !kept["e008"] || !kept["e007"] {
		t.Fatalf("kept %v, want the 5 newest (e007-e010) plus the one just created (e011)", kept)
	}
	if len(evicted) != 7 {
		t.Fatalf("evicted %d: %v", len(evicted), evicted)
	}
	names, _, err := listNames(t, s, ListKey{Component: "kubelet", Resource: events})
	if err != nil || len(names) != 1 {
		t.Fatalf("the listed event: %v %v", names, err)
	}
	t.Logf("cap 5: kept %v, evicted %d oldest", kept, len(evicted))
}

func TestDeleteObjectsAtKeepsNewerCopies(t *testing.T) {
	s := openTest(t, Options{})
	a := ObjectKey{Component: "kubelet", Resource: pods, Namespace: "ns", Name: "a"}
	b := ObjectKey{Component: "kubelet", Resource: pods, Namespace: "ns", Name: "b"}
	for _, k := range []ObjectKey{a, b} {
		if err := s.PutObject(ctx, k, obj("ns", k.Name, 5)); err != nil {
			t.Fatal(err)
		}
	}
	// b was recreated in the cloud (a newer copy) after the caller looked at RV 5.
	if err := s.PutObject(ctx, b, obj("ns", "b", 9)); err != nil {
		t.Fatal(err)
	}
	removed, err := s.DeleteObjectsAt(ctx, []ObjectKey{a, b}, []uint64{5, 5})
	if err != nil || len(removed) != 1 || removed[0] != a {
		t.Fatalf("removed %v, %v; want only a", removed, err)
	}
	if o, err := s.GetObject(ctx, b); err != nil || o.ResourceVersion != 9 {
		t.Fatalf("the newer copy: %+v %v", o, err)
	}
	if _, err := s.DeleteObjectsAt(ctx, []ObjectKey{a}, []uint64{1, 2}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("mismatched lengths: %v", err)
	}
}

func TestPruneRefreshes(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := openTest(t, Options{Now: func() time.Time { return now }})
	v := ListKey{Component: "kubelet", Resource: pods}
	gone := ObjectKey{Component: "kubelet", Resource: pods, Namespace: "ns", Name: "gone"}
	kept := ObjectKey{Component: "kubelet", Resource: pods, Namespace: "ns", Name: "kept"}
	if err := s.ReplaceList(ctx, v, 3, []Object{obj("ns", "gone", 3), obj("ns", "kept", 3)}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []ObjectKey{gone, kept} { // kubelet GETs both
		if err := s.PutObject(ctx, k, obj("ns", k.Name, 3)); err != nil {
			t.Fatal(err)
		}
	}
	// A list without "gone" removes it from the file (no GC involved).
	if err := s.ReplaceList(ctx, v, 4, []Object{obj("ns", "kept", 3)}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PruneRefreshes(ctx); err != nil || n != 0 {
		t.Fatalf("prune right away: %d %v (entries seen in the last hour stay)", n, err)
	}
	now = now.Add(2 * time.Hour)
	if n, err := s.PruneRefreshes(ctx); err != nil || n != 1 {
		t.Fatalf("prune 2h later: %d %v, want the one entry of the object gone from the file", n, err)
	}
	if got := s.LastRefreshed(kept); !got.Equal(now.Add(-2 * time.Hour)) {
		t.Fatalf("kept entry: %v", got)
	}
}

func TestViews(t *testing.T) {
	s := openTest(t, Options{})
	if v, err := s.Views(ctx, "kubelet", pods); err != nil || len(v) != 0 {
		t.Fatalf("no views: %v %v", v, err)
	}
	for i, sel := range []string{"", "fieldSelector=spec.nodeName%3Dn1"} {
		if err := s.ReplaceList(ctx, ListKey{Component: "kubelet", Resource: pods, Selector: sel}, uint64(10+i), []Object{obj("ns", "a", 1)}); err != nil {
			t.Fatal(err)
		}
	}
	v, err := s.Views(ctx, "kubelet", pods)
	if err != nil || len(v) != 2 || v[1].Selector != "fieldSelector=spec.nodeName%3Dn1" || v[1].ResourceVersion != 11 || v[1].Count != 1 {
		t.Fatalf("views: %+v %v", v, err)
	}
}
