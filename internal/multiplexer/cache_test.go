package multiplexer

import (
	"bufio"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// svc is a Service as the cloud would send it in JSON.
func svc(t *testing.T, name, app string, rv uint64) *object {
	t.Helper()
	s := corev1.Service{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, ResourceVersion: fmt.Sprint(rv), Labels: map[string]string{"app": app}}}
	b, err := json.Marshal(&s)
	if err != nil {
		t.Fatal(err)
	}
	return &object{namespace: "ns", name: name, rv: rv, data: b}
}

// TestWindowResumeAndExpiry: a watch from a resourceVersion the window covers gets
// exactly the events after it; one older than the window gets errExpired.
func TestWindowResumeAndExpiry(t *testing.T) {
	c := newWatchCache(resource{name: "/v1/services", gvr: schema.GroupVersionResource{Version: "v1", Resource: "services"}, kind: "Service"}, 4, 0, nil)
	c.replace(10, true)
	for i := 1; i <= 6; i++ {
		c.apply(added, svc(t, fmt.Sprintf("s%d", i), "a", uint64(10+i)), nil)
	}
	// The window holds the last 4 events (13..16): complete from 12 on.
	if _, exp, ok := c.watch(newWatcher(), 11); !ok || exp == nil {
		t.Fatalf("watch from 11 with the window at 12: expired=%v, want 410", exp)
	}
	backlog, exp, ok := c.watch(newWatcher(), 13)
	if !ok || exp != nil {
		t.Fatalf("watch from 13: expired=%v", exp)
	}
	var got []uint64
	for _, ev := range backlog {
		got = append(got, ev.rv)
	}
	if fmt.Sprint(got) != "[14 15 16]" {
		t.Fatalf("events after 13 = %v, want [14 15 16]", got)
	}
	// A relist ends open watches and restarts the window at the list.
	w := newWatcher()
	c.watch(w, 16)
	c.replace(30, true)
	select {
	case <-w.done:
	default:
		t.Fatal("a relist left a watch open")
	}
	if _, exp, _ := c.watch(newWatcher(), 16); exp == nil {
		t.Fatal("a watch from before the relist was not expired")
	}
	// The byte bound: room for two events of this size.
	b := newWatchCache(c.res, 100, 2*eventBytes(&event{obj: svc(t, "s1", "a", 1)})+10, nil)
	b.replace(10, true)
	for i := 1; i <= 5; i++ {
		b.apply(added, svc(t, fmt.Sprintf("s%d", i), "a", uint64(10+i)), nil)
	}
	if backlog, exp, _ := b.watch(newWatcher(), 13); exp != nil || len(backlog) != 2 {
		t.Fatalf("byte-bounded window: from 13 expired=%v backlog=%d, want the 2 events 14, 15", exp, len(backlog))
	}
	if _, exp, _ := b.watch(newWatcher(), 12); exp == nil {
		t.Fatal("byte-bounded window: a watch from 12 was not expired")
	}
}

// TestSelectorTransitionsAndSharedFrames: an object leaving a watch's label
// selector is sent as DELETED, one entering it as ADDED; a watcher without
// selector or filter gets the shared frame, encoded once for all.
func TestSelectorTransitionsAndSharedFrames(t *testing.T) {
	m := &Multiplexer{log: discardLog()}
	c := newWatchCache(resource{name: "/v1/services", gvr: schema.GroupVersionResource{Version: "v1", Resource: "services"}, kind: "Service"}, 16, 0, nil)
	c.replace(10, true)
	evB := c.apply(modified, svc(t, "x", "b", 11), svc(t, "x", "a", 10)) // leaves app=a
	evA := c.apply(modified, svc(t, "x", "a", 12), evB.obj)              // comes back
	sel, err := newSelector("", "app=a", "")
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	s := &stream{m: m, w: rec, bw: bufio.NewWriter(rec), f: formatJSON, sel: sel}
	for _, ev := range []*event{evB, evA} {
		if err := s.event(ev); err != nil {
			t.Fatal(err)
		}
	}
	s.bw.Flush()
	var types []string
	for _, line := range strings.Split(strings.TrimSpace(rec.Body.String()), "\n") {
		var we struct{ Type string }
		if err := json.Unmarshal([]byte(line), &we); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		types = append(types, we.Type)
	}
	if fmt.Sprint(types) != "[DELETED ADDED]" {
		t.Fatalf("app=a watcher got %v, want [DELETED ADDED]", types)
	}
	f1, _ := evA.frame(formatProtobuf)
	f2, _ := evA.frame(formatProtobuf)
	if len(f1) == 0 || &f1[0] != &f2[0] {
		t.Fatal("the protobuf frame of one event was encoded twice")
	}
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }
