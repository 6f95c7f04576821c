package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/yurthub/yurthub/internal/admin"
	"github.com/yurthub/yurthub/internal/config"
	"github.com/yurthub/yurthub/internal/gc"
	"github.com/yurthub/yurthub/internal/store"
	"github.com/yurthub/yurthub/internal/testenv"
	"github.com/yurthub/yurthub/internal/testkube"
)

// runHub runs the daemon with its log captured (INFO and up) until the returned
// stop; it returns once /v1/readyz answers 200.
func runHub(t *testing.T, cfg *config.Config) (*testenv.LogBuffer, func()) {
	t.Helper()
	logs := &testenv.LogBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, slog.New(slog.NewTextHandler(logs, nil))) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("the hub did not stop within 30s")
		}
	}
	t.Cleanup(stop)
	waitHubReady(t, cfg)
	return logs, stop
}

func waitUntilTrue(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// hubPods is GET /pods: the code and the pods' "namespace/name".
func hubPods(t *testing.T, cfg *config.Config) (int, []string, string) {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/pods", cfg.ServePort))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil, string(body)
	}
	var l corev1.PodList
	if err := json.Unmarshal(body, &l); err != nil {
		t.Fatalf("/pods is not a PodList: %v: %s", err, body)
	}
	if l.Kind != "PodList" || l.APIVersion != "v1" {
		t.Fatalf("/pods: kind %q apiVersion %q", l.Kind, l.APIVersion)
	}
	var names []string
	for _, p := range l.Items {
		names = append(names, p.Namespace+"/"+p.Name)
	}
	return resp.StatusCode, names, fmt.Sprintf("%d pods, list resourceVersion %s", len(l.Items), l.ResourceVersion)
}

// dumpedPods is what `hubctl dump --resource pods` shows for a stopped hub.
func dumpedPods(t *testing.T, cfg *config.Config) []string {
	t.Helper()
	var b bytes.Buffer
	err := admin.Query(context.Background(), admin.Target{Socket: cfg.AdminSocket(), CacheFile: cfg.CacheFile()},
		admin.Request{Op: "dump", Format: "json", Dump: admin.DumpOptions{Filter: store.Filter{Resource: store.Resource{Resource: "pods"}}}}, &b)
	if err != nil {
		t.Fatal(err)
	}
	var l struct {
		Items []corev1.Pod `json:"items"`
	}
	if err := json.Unmarshal(b.Bytes(), &l); err != nil {
		t.Fatal(err)
	}
	set := map[string]bool{}
	for _, p := range l.Items {
		set[p.Namespace+"/"+p.Name] = true
	}
	var out []string
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func nodePod(node, name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
}

// TestPodsEndpointAndStartupGC: GET /pods online and offline; pods deleted in the
// cloud while the hub was stopped are gone from every component's cache after the
// next start; an answer that would remove every pod (more than a few cached) is
// not trusted.
func TestPodsEndpointAndStartupGC(t *testing.T) {
	const node = "edge-1"
	c := testkube.Start(t, testkube.Options{Nodes: []string{node}})
	c.GrantNodeReadAll(t, node)
	ctx := context.Background()
	adm := kubernetes.NewForConfigOrDie(c.AdminConfig())
	if _, err := adm.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		if _, err := adm.CoreV1().Pods("default").Create(ctx, nodePod(node, fmt.Sprintf("p%d", i)), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := adm.CoreV1().Pods("default").Create(ctx, nodePod("edge-2", "elsewhere"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg := kubeletHubConfig(t, c, node, t.TempDir())
	logs, stop := runHub(t, cfg)
	code, _, body := hubPods(t, cfg)
	if code != http.StatusServiceUnavailable {
		t.Fatalf("/pods before kubelet listed anything: %d %s, want 503", code, body)
	}
	t.Logf("/pods before kubelet listed: %d %s", code, strings.TrimSpace(body))

	kubelet := kubernetes.NewForConfigOrDie(kubeletRESTConfig(c, fmt.Sprintf("http://127.0.0.1:%d", cfg.ProxyPort)))
	l, err := kubelet.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
	if err != nil || len(l.Items) != 8 {
		t.Fatalf("kubelet's list through the hub: %v", err)
	}
	// kubelet also GETs one pod (cached by the GET as well as by the list).
	if _, err := kubelet.CoreV1().Pods("default").Get(ctx, "p0", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	var names []string
	waitUntilTrue(t, 10*time.Second, "/pods online lists the 8 pods", func() bool {
		code, names, body = hubPods(t, cfg)
		return code == 200 && len(names) == 8
	})
	t.Logf("/pods online: %s: %v", body, names)

	c.APIServer().Stop(t)
	waitUntilTrue(t, 10*time.Second, "/pods offline", func() bool {
		code, names, body = hubPods(t, cfg)
		return code == 200 && len(names) == 8
	})
	t.Logf("/pods offline: %s", body)
	c.APIServer().Start(t)
	stop()

	// Deleted in the cloud while the hub is stopped.
	zero := int64(0)
	for _, n := range []string{"p1", "p2"} {
		if err := adm.CoreV1().Pods("default").Delete(ctx, n, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
			t.Fatal(err)
		}
	}
	if got := dumpedPods(t, cfg); len(got) != 8 {
		t.Fatalf("hubctl dump before the restart: %v", got)
	}
	logs, stop = runHub(t, cfg)
	waitUntilTrue(t, 20*time.Second, "the start-up pod GC", func() bool { return strings.Contains(logs.String(), "start-up pod GC done") })
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", cfg.ServePort))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if line := grepLines(string(m), "node_yurthub_gc_objects_total{"); line != `node_yurthub_gc_objects_total{kind="pods",reason="deleted_in_cloud"} 2` {
		t.Fatalf("/metrics after the GC: %q", line)
	} else {
		t.Logf("/metrics: %s", line)
	}
	stop()
	t.Logf("GC log lines:\n%s", grepLines(logs.String(), "gc:"))
	got := dumpedPods(t, cfg)
	if strings.Join(got, ",") != "default/p0,default/p3,default/p4,default/p5,default/p6,default/p7" {
		t.Fatalf("hubctl dump after the start-up GC: %v", got)
	}
	if !strings.Contains(logs.String(), `msg="gc: dropped a pod deleted in the cloud" part=gc node=edge-1 component=kubelet pod=default/p1`) {
		t.Errorf("no log line for p1")
	}
	t.Logf("hubctl dump --resource pods after the GC: %v", got)

	// Every pod gone in the cloud: 6 cached > FewPods, so the answer is not trusted.
	for _, n := range got {
		if err := adm.CoreV1().Pods("default").Delete(ctx, strings.TrimPrefix(n, "default/"), metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
			t.Fatal(err)
		}
	}
	logs, stop = runHub(t, cfg)
	waitUntilTrue(t, 20*time.Second, "the start-up pod GC's verdict", func() bool {
		return strings.Contains(logs.String(), "start-up pod GC skipped")
	})
	stop()
	t.Logf("GC log lines (empty answer):\n%s", grepLines(logs.String(), "gc:"))
	if after := dumpedPods(t, cfg); len(after) != 6 {
		t.Fatalf("an empty answer dropped pods: %v", after)
	}
	if !strings.Contains(logs.String(), "would remove every cached pod") {
		t.Errorf("the skip does not say why")
	}
	_ = os.Remove(cfg.AdminSocket())
}

// TestOfflineEventCap: events kubelet creates while the cloud is unreachable are
// kept up to gc.MaxLocalEvents per component, the oldest dropped, and counted in
// /metrics.
func TestOfflineEventCap(t *testing.T) {
	const node = "edge-1"
	c := testkube.Start(t, testkube.Options{Nodes: []string{node}})
	c.GrantNodeReadAll(t, node)
	cfg := kubeletHubConfig(t, c, node, t.TempDir())
	_, stop := runHub(t, cfg)
	defer stop()
	c.APIServer().Stop(t)
	rc := kubeletRESTConfig(c, fmt.Sprintf("http://127.0.0.1:%d", cfg.ProxyPort))
	rc.ContentType = "application/json"
	kubelet := kubernetes.NewForConfigOrDie(rc)
	ctx := context.Background()
	waitUntilTrue(t, 10*time.Second, "the hub to answer event creates offline", func() bool {
		_, err := kubelet.CoreV1().Events("default").Create(ctx, offlineEvent(-1), metav1.CreateOptions{})
		return err == nil
	})
	const total = gc.MaxLocalEvents + 10
	start := time.Now()
	for i := range total {
		if _, err := kubelet.CoreV1().Events("default").Create(ctx, offlineEvent(i), metav1.CreateOptions{}); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	t.Logf("%d events created offline in %s", total, time.Since(start).Round(time.Millisecond))
	var b bytes.Buffer
	if err := admin.Query(ctx, admin.Target{Socket: cfg.AdminSocket(), CacheFile: cfg.CacheFile()},
		admin.Request{Op: "dump", Format: "json", Dump: admin.DumpOptions{Filter: store.Filter{Component: "kubelet", Resource: store.Resource{Resource: "events"}}}}, &b); err != nil {
		t.Fatal(err)
	}
	var l struct {
		Items []corev1.Event `json:"items"`
	}
	if err := json.Unmarshal(b.Bytes(), &l); err != nil {
		t.Fatal(err)
	}
	kept := map[string]bool{}
	for _, e := range l.Items {
		kept[e.Name] = true
	}
	if len(kept) != gc.MaxLocalEvents {
		t.Fatalf("%d events kept, want the cap %d", len(kept), gc.MaxLocalEvents)
	}
	for i := -1; i < total; i++ {
		if want := i >= 10; kept[offlineEvent(i).Name] != want {
			t.Fatalf("event %d kept=%v, want %v (the newest %d)", i, !want, want, gc.MaxLocalEvents)
		}
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", cfg.ServePort))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	line := grepLines(string(m), "node_yurthub_gc_objects_total{")
	if line != `node_yurthub_gc_objects_total{kind="events",reason="event_cap"} 11` {
		t.Fatalf("/metrics: %q", line)
	}
	t.Logf("kept the newest %d of %d; /metrics: %s", len(kept), total+1, line)
}

// offlineEvent i: kubelet's style of event.
func offlineEvent(i int) *corev1.Event {
	at := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	// Names in no particular order (as generateName's are): the cap goes by time.
	return &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p.%08x", uint32(i+1)*2654435761), Namespace: "default"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "p"},
		Reason:         "BackOff", Message: "Back-off restarting failed container", Type: "Warning",
		FirstTimestamp: at, LastTimestamp: at, Count: 1, Source: corev1.EventSource{Component: "kubelet", Host: "edge-1"}}
}
