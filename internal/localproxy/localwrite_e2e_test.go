package localproxy

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/yurthub/yurthub/internal/store"
	"github.com/yurthub/yurthub/internal/testkube"
)

// TestOfflineWriteYieldsToCloud (issue 15 item 5): kubelet patches its pod's status
// through the hub while the cloud is unreachable; the hub applies it to the cached
// copy, which keeps the cloud's resourceVersion. The cloud never saw the change.
// Once the cloud is back, kubelet's next GET returns the cloud's pod at that same
// resourceVersion, and it must replace the local copy in the cache: otherwise the
// next outage would serve a status the cloud never had, for as long as the cloud
// leaves the pod unchanged. Real kube-apiserver + etcd, real bbolt file, the hub's
// real request path (proxy, health checker, cache manager, this package).
func TestOfflineWriteYieldsToCloud(t *testing.T) {
	c := testkube.Start(t, testkube.Options{Nodes: []string{testNode}})
	ctx := context.Background()
	admin := kubernetes.NewForConfigOrDie(c.AdminConfig())
	_, err := admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: testNode}}, metav1.CreateOptions{})
	must(t, err)
	_, err = admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: appNS}}, metav1.CreateOptions{})
	must(t, err)
	cloudPod, err := admin.CoreV1().Pods(appNS).Create(ctx, e2ePod(appNS, "web"), metav1.CreateOptions{})
	must(t, err)

	hub := startE2EHub(t, c, filepath.Join(t.TempDir(), "cache.db"))
	hub.waitHealthy(true)
	kubelet := kubernetes.NewForConfigOrDie(hub.config("kubelet", true))
	key := store.ObjectKey{Component: "kubelet", Resource: podsRes, Namespace: appNS, Name: "web"}
	cached := func() store.Object {
		o, _ := hub.st.GetObject(ctx, key)
		return o
	}
	_, err = kubelet.CoreV1().Pods(appNS).Get(ctx, "web", metav1.GetOptions{})
	must(t, err)
	waitFor(t, 10*time.Second, "the pod cached", func() bool { return cached().ResourceVersion != 0 })
	rv := cached().ResourceVersion

	c.APIServer().Stop(t)
	hub.waitHealthy(false)
	const mark = "status written while the cloud was unreachable"
	patch := []byte(`{"status":{"message":"` + mark + `"}}`)
	p, err := kubelet.CoreV1().Pods(appNS).Patch(ctx, "web", types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	must(t, err)
	if p.Status.Message != mark || p.ResourceVersion != cloudPod.ResourceVersion {
		t.Fatalf("offline patch answered message %q at RV %s, want %q at the cloud's RV %s", p.Status.Message, p.ResourceVersion, mark, cloudPod.ResourceVersion)
	}
	if o := cached(); !o.Local || o.ResourceVersion != rv || !strings.Contains(string(o.Data), mark) {
		t.Fatalf("cache after the offline patch: local=%v RV %d (want %d), has the patch: %v", o.Local, o.ResourceVersion, rv, strings.Contains(string(o.Data), mark))
	}

	c.APIServer().Start(t)
	hub.waitHealthy(true)
	got, err := kubelet.CoreV1().Pods(appNS).Get(ctx, "web", metav1.GetOptions{})
	must(t, err)
	if got.ResourceVersion != cloudPod.ResourceVersion || got.Status.Message == mark {
		t.Fatalf("the cloud's pod: RV %s message %q; the test needs it unchanged at RV %s", got.ResourceVersion, got.Status.Message, cloudPod.ResourceVersion)
	}
	waitFor(t, 10*time.Second, "the cloud's copy at the same resourceVersion replaces the local one in the cache", func() bool {
		o := cached()
		return !o.Local && o.ResourceVersion == rv && !strings.Contains(string(o.Data), mark)
	})

	// The next outage serves what the cloud has, not the old local change.
	c.APIServer().Stop(t)
	hub.waitHealthy(false)
	off, err := kubelet.CoreV1().Pods(appNS).Get(ctx, "web", metav1.GetOptions{})
	must(t, err)
	if off.Status.Message == mark {
		t.Fatalf("offline GET after the cloud came back and went again still serves the local change the cloud never saw")
	}
	c.APIServer().Start(t)
}
