package gc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/yurthub/yurthub/internal/kubescheme"
	"github.com/yurthub/yurthub/internal/store"
)

var ctx = context.Background()

func openStore(t *testing.T, now func() time.Time) *store.Store {
	t.Helper()
	s, err := store.Open(filepath.Join(t.TempDir(), "cache.db"), store.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func podObj(t *testing.T, ns, name, node string, rv uint64, protobuf bool) store.Object {
	t.Helper()
	p := &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, ResourceVersion: fmt.Sprint(rv)},
		Spec:       corev1.PodSpec{NodeName: node}}
	if protobuf {
		var b bytes.Buffer
		if err := kubescheme.Protobuf.Encode(p, &b); err != nil {
			t.Fatal(err)
		}
		return store.Object{Namespace: ns, Name: name, ResourceVersion: rv, Encoding: store.EncodingProtobuf, Data: b.Bytes()}
	}
	return store.Object{Namespace: ns, Name: name, ResourceVersion: rv, Encoding: store.EncodingJSON,
		Data: fmt.Appendf(nil, `{"apiVersion":"v1","kind":"Pod","metadata":{"namespace":%q,"name":%q,"resourceVersion":"%d"},"spec":{"nodeName":%q}}`, ns, name, rv, node)}
}

func cachedPods(t *testing.T, s *store.Store) []string {
	t.Helper()
	var out []string
	if err := s.Walk(ctx, store.Filter{Resource: PodsResource}, func(k store.ObjectKey, _ store.Object) error {
		out = append(out, k.Component+":"+k.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// fillPods caches n pods of node n1 for kubelet (protobuf, a list view) and the
// same for another component (JSON, by GET), plus one pod of another node.
func fillPods(t *testing.T, s *store.Store, n int) {
	t.Helper()
	var objs []store.Object
	for i := range n {
		objs = append(objs, podObj(t, "ns", fmt.Sprintf("p%d", i), "n1", uint64(i+1), true))
	}
	objs = append(objs, podObj(t, "ns", "other", "n2", 99, true))
	if err := s.ReplaceList(ctx, store.ListKey{Component: "kubelet", Resource: PodsResource}, 100, objs); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		k := store.ObjectKey{Component: "coredns", Resource: PodsResource, Namespace: "ns", Name: fmt.Sprintf("p%d", i)}
		if err := s.PutObject(ctx, k, podObj(t, "ns", k.Name, "n1", uint64(i+1), false)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPodGC(t *testing.T) {
	counted := map[string]int{}
	count := func(kind, reason string, n int) { counted[kind+"/"+reason] += n }
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	for _, tc := range []struct {
		name    string
		cached  int
		list    CloudPods
		want    int // pods of n1 left per component
		skipped string
	}{
		{"two deleted", 5, listOf("p0", "p1", "p4"), 3, ""},
		{"list fails", 5, func(context.Context) (map[string]bool, error) { return nil, errors.New("connection refused") }, 5, "failed"},
		{"list times out", 5, func(ctx context.Context) (map[string]bool, error) { <-ctx.Done(); return nil, ctx.Err() }, 5, "failed"},
		{"empty answer, many cached", 5, listOf(), 5, "every cached pod"},
		{"empty answer, few cached", 3, listOf(), 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, nil)
			fillPods(t, s, tc.cached)
			logs.Reset()
			g := &PodGC{Store: s, Node: "n1", List: tc.list, Timeout: 200 * time.Millisecond, Log: log, Count: count}
			res, err := g.Run(ctx)
			if err != nil {
				t.Fatal(err)
			}
			left := 0
			for _, p := range cachedPods(t, s) {
				if p != "kubelet:other" {
					left++
				}
			}
			if left != 2*tc.want || !strings.Contains(res.Skipped, tc.skipped) || (tc.skipped == "") != (res.Skipped == "") {
				t.Fatalf("%+v: left %v", res, cachedPods(t, s))
			}
			if !strings.Contains(strings.Join(cachedPods(t, s), ","), "kubelet:other") {
				t.Fatal("a pod of another node was dropped")
			}
			t.Logf("%+v\n%s", res, strings.TrimSpace(logs.String()))
		})
	}
	if counted["pods/deleted_in_cloud"] != 2*2+3*2 {
		t.Errorf("counted %v", counted)
	}
}

func listOf(names ...string) CloudPods {
	return func(context.Context) (map[string]bool, error) {
		m := map[string]bool{}
		for _, n := range names {
			m["ns/"+n] = true
		}
		return m, nil
	}
}

func eventJSON(ns, name string, last time.Time) store.Object {
	return store.Object{Namespace: ns, Name: name, Encoding: store.EncodingJSON,
		Data: fmt.Appendf(nil, `{"apiVersion":"v1","kind":"Event","metadata":{"namespace":%q,"name":%q,"creationTimestamp":%q},"lastTimestamp":%q}`,
			ns, name, last.Add(-time.Hour*5).Format(time.RFC3339), last.Format(time.RFC3339))}
}

func TestSweep(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	s := openStore(t, clock)
	events := store.Resource{Version: "v1", Resource: "events"}
	newEvents := store.Resource{Group: "events.k8s.io", Version: "v1", Resource: "events"}
	put := func(k store.ObjectKey, o store.Object) {
		t.Helper()
		if err := s.PutObject(ctx, k, o); err != nil {
			t.Fatal(err)
		}
	}
	// Events: one local and old, one local and fresh (an old creation but a recent
	// lastTimestamp), one protobuf events.k8s.io old one listed by a view.
	put(store.ObjectKey{Component: "kubelet", Resource: events, Namespace: "ns", Name: "old"}, eventJSON("ns", "old", now.Add(-2*time.Hour)))
	put(store.ObjectKey{Component: "kubelet", Resource: events, Namespace: "ns", Name: "fresh"}, eventJSON("ns", "fresh", now.Add(-10*time.Minute)))
	var b bytes.Buffer
	ev := &corev1.Event{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Event"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "listed", ResourceVersion: "5", CreationTimestamp: metav1.NewTime(now.Add(-3 * time.Hour))}}
	if err := kubescheme.Protobuf.Encode(ev, &b); err != nil {
		t.Fatal(err)
	}
	if err := s.ReplaceList(ctx, store.ListKey{Component: "kube-proxy", Resource: events}, 5,
		[]store.Object{{Namespace: "ns", Name: "listed", ResourceVersion: 5, Encoding: store.EncodingProtobuf, Data: b.Bytes()}}); err != nil {
		t.Fatal(err)
	}
	put(store.ObjectKey{Component: "kubelet", Resource: newEvents, Namespace: "ns", Name: "new-api-fresh"},
		store.Object{Namespace: "ns", Name: "new-api-fresh", Encoding: store.EncodingJSON,
			Data: fmt.Appendf(nil, `{"apiVersion":"events.k8s.io/v1","kind":"Event","metadata":{"namespace":"ns","name":"new-api-fresh"},"eventTime":%q}`, now.Add(-time.Minute).Format(time.RFC3339Nano))})
	// Objects: a secret only a GET stored, refreshed at open; a listed configmap.
	secret := store.ObjectKey{Component: "kubelet", Resource: store.Resource{Version: "v1", Resource: "secrets"}, Namespace: "ns", Name: "s"}
	put(secret, store.Object{Namespace: "ns", Name: "s", ResourceVersion: 3, Data: []byte(`{}`)})
	read := store.ObjectKey{Component: "kubelet", Resource: store.Resource{Version: "v1", Resource: "secrets"}, Namespace: "ns", Name: "read"}
	put(read, store.Object{Namespace: "ns", Name: "read", ResourceVersion: 4, Data: []byte(`{}`)})
	if err := s.ReplaceList(ctx, store.ListKey{Component: "kubelet", Resource: store.Resource{Version: "v1", Resource: "configmaps"}}, 9,
		[]store.Object{{Namespace: "ns", Name: "cm", ResourceVersion: 9, Data: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}

	counted := map[string]int{}
	online := false
	var logs bytes.Buffer
	c := &Collector{Store: s, Frequency: time.Minute, Online: func() bool { return online }, Now: clock,
		Log: slog.New(slog.NewTextHandler(&logs, nil)), Count: func(k, r string, n int) { counted[k+"/"+r] += n }}

	// 25h later, offline: events go by age; objects are kept (offline, what the
	// node reads is what it has). The secret "read" is read offline at 24h.
	now = now.Add(24 * time.Hour)
	if _, err := s.GetObject(ctx, read); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Hour)
	res, err := c.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.EventsExpired != 4 || res.NotRefreshed != 0 {
		t.Fatalf("offline sweep 25h later: %+v", res)
	}
	// Online: the secret stored by a GET 25h ago and never refreshed goes; the one
	// read an hour ago and the listed configmap stay.
	online = true
	if res, err = c.Sweep(ctx); err != nil || res.NotRefreshed != 1 {
		t.Fatalf("online sweep: %+v %v", res, err)
	}
	var left []string
	_ = s.WalkCoverage(ctx, store.Filter{}, func(k store.ObjectKey, _ store.Object, covered bool) error {
		left = append(left, fmt.Sprintf("%s/%s/%s(covered=%v)", k.Component, Kind(k.Resource), k.Name, covered))
		return nil
	})
	want := "kubelet/configmaps/cm(covered=true),kubelet/secrets/read(covered=false)"
	if strings.Join(left, ",") != want {
		t.Fatalf("left %v, want %s", left, want)
	}
	if counted["events/event_expired"] != 3 || counted["events.events.k8s.io/event_expired"] != 1 || counted["secrets/not_refreshed"] != 1 {
		t.Fatalf("counted %v", counted)
	}
	t.Logf("counted %v\n%s", counted, strings.TrimSpace(logs.String()))
}

func TestSweepEventAges(t *testing.T) {
	// The first sweep (at now) must drop only events whose latest time is > 1h ago.
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	s := openStore(t, func() time.Time { return now })
	events := store.Resource{Version: "v1", Resource: "events"}
	for _, tc := range []struct {
		name string
		age  time.Duration
	}{{"a59m", 59 * time.Minute}, {"a61m", 61 * time.Minute}, {"a3h", 3 * time.Hour}} {
		if err := s.PutObject(ctx, store.ObjectKey{Component: "kubelet", Resource: events, Namespace: "ns", Name: tc.name}, eventJSON("ns", tc.name, now.Add(-tc.age))); err != nil {
			t.Fatal(err)
		}
	}
	res, err := (&Collector{Store: s, Frequency: time.Minute, Now: func() time.Time { return now }}).Sweep(ctx)
	if err != nil || res.EventsExpired != 2 {
		t.Fatalf("%+v %v", res, err)
	}
	if _, err := s.GetObject(ctx, store.ObjectKey{Component: "kubelet", Resource: events, Namespace: "ns", Name: "a59m"}); err != nil {
		t.Fatalf("the 59-minute-old event was dropped: %v", err)
	}
}

func TestRunSweepsAtStartThenWaits(t *testing.T) {
	now := time.Now()
	s := openStore(t, nil)
	k := store.ObjectKey{Component: "kubelet", Resource: store.Resource{Version: "v1", Resource: "events"}, Namespace: "ns", Name: "old"}
	if err := s.PutObject(ctx, k, eventJSON("ns", "old", now.Add(-3*time.Hour))); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		(&Collector{Store: s, Frequency: time.Hour}).Run(rctx)
		close(done)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := s.GetObject(ctx, k); errors.Is(err, store.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first sweep did not run at start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
