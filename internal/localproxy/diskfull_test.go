package localproxy

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

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
