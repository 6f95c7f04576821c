package localproxy

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	"github.com/yurthub/yurthub/internal/store"
	"github.com/yurthub/yurthub/internal/testenv"
)

// TestOfflineWriteOnFullDisk: offline, kubelet's pod status patch is kept in the
// cache; on a real full filesystem (a small tmpfs) it cannot be, and kubelet gets a
// 503 that says so, while reads keep being served and the cached pod is unchanged.
func TestOfflineWriteOnFullDisk(t *testing.T) {
	dir := testenv.SmallFS(t, 4<<20)
	st, err := store.Open(filepath.Join(dir, "cache.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	fillPods(t, st, "kubelet", 2, store.EncodingJSON)
	s := newServer(t, st, Options{})
	kubelet := s.client(t, "kubelet", false)
	ctx := context.Background()

	testenv.FillDisk(t, dir)
	patch := `{"status":{"phase":"Failed","message":"offline"}}`
	_, err = kubelet.CoreV1().Pods("ns1").Patch(ctx, "pod-00001", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}, "status")
	if !apierrors.IsServiceUnavailable(err) || !strings.Contains(err.Error(), "disk is full") {
		t.Fatalf("pod status patch on a full disk: %v, want 503 saying the disk is full", err)
	}
	p, err := kubelet.CoreV1().Pods("ns1").Get(ctx, "pod-00001", metav1.GetOptions{})
	if err != nil || p.Status.Phase == "Failed" || p.ResourceVersion != "101" {
		t.Fatalf("cached pod after the refused patch: %v phase=%q rv=%s, want it unchanged", err, p.Status.Phase, p.ResourceVersion)
	}
}

// TestOfflineListOnFullDisk: offline answers are spooled to a file next to the
// cache; on a full filesystem the spool cannot be written, and every list (JSON,
// protobuf) and watch-list is still answered whole, straight from one read
// transaction.
func TestOfflineListOnFullDisk(t *testing.T) {
	dir := testenv.SmallFS(t, 8<<20)
	st, err := store.Open(filepath.Join(dir, "cache.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	fillPods(t, st, "kubelet", 300, store.EncodingJSON) // about 180 KB as JSON: spooling fails part-way
	var logs lockedLog
	s := newServer(t, st, Options{Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	testenv.FillDisk(t, dir)
	ctx := context.Background()
	sel := "spec.nodeName=" + testNode
	for _, proto := range []bool{false, true} {
		cs := s.client(t, "kubelet", proto)
		l, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: sel})
		if err != nil || len(l.Items) != 300 || l.ResourceVersion != "1300" {
			t.Fatalf("list (protobuf %v) on a full disk: %v, %d items at %q; want 300 at 1300", proto, err, len(l.Items), l.ResourceVersion)
		}
		w, err := cs.CoreV1().Pods("").Watch(ctx, metav1.ListOptions{FieldSelector: sel, SendInitialEvents: ptr.To(true),
			AllowWatchBookmarks: true, ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan})
		if err != nil {
			t.Fatal(err)
		}
		evs := collectWatch(t, w, func(ev watch.Event) bool { return ev.Type == watch.Bookmark })
		w.Stop()
		if len(evs) != 301 || evs[300].Type != watch.Bookmark {
			t.Fatalf("watch-list (protobuf %v) on a full disk: %d events, want 300 ADDED and the bookmark", proto, len(evs))
		}
	}
	// The answers did come from the fallback: spooling failed each time.
	if n := strings.Count(logs.String(), "spooling the"); n != 4 {
		t.Fatalf("%d spool failures logged, want 4 (2 lists, 2 watch-lists):\n%s", n, logs.String())
	}
}

// lockedLog is a log sink written by server goroutines and read by the test.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
