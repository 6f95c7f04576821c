package localproxy_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/yurthub/yurthub/internal/config"
	"github.com/yurthub/yurthub/internal/daemon"
	"github.com/yurthub/yurthub/internal/testkube"
)

// TestDaemonOfflineRestart runs the real daemon (daemon.Run, as the binary does):
// kubelet's informer fills the cache through it, the apiserver is stopped, the hub
// is stopped and started again with the cloud still unreachable, and a new kubelet
// informer syncs from the warm cache. A hub started offline on an empty cache is
// ready and answers clear errors.
func TestDaemonOfflineRestart(t *testing.T) {
	const node = "edge-1"
	c := testkube.Start(t, testkube.Options{Nodes: []string{node}})
	c.GrantNodeReadAll(t, node)
	ctx := context.Background()
	admin := kubernetes.NewForConfigOrDie(c.AdminConfig())
	_, err := admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		_, err := admin.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p" + strconv.Itoa(i)},
			Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}

	root := t.TempDir()
	cfg := daemonConfig(t, c, node, root)
	stop := runDaemon(t, cfg)
	kubelet := kubernetes.NewForConfigOrDie(kubeletConfig(cfg))
	waitFor(t, 30*time.Second, "pods listed through the hub from the cloud", func() bool {
		l, err := kubelet.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
		return err == nil && len(l.Items) == 5
	})
	inf, done := podInformer(t, kubelet, node)
	if n := len(inf.GetStore().List()); n != 5 {
		t.Fatalf("online informer: %d pods", n)
	}
	time.Sleep(2 * time.Second) // the cache manager commits what it teed
	close(done)

	c.APIServer().Stop(t)
	stop()

	start := time.Now()
	stop = runDaemon(t, cfg)
	ready := time.Since(start)
	var pods int
	waitFor(t, 10*time.Second, "kubelet's pod list served offline after the restart", func() bool {
		l, err := kubelet.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
		if err == nil {
			pods = len(l.Items)
		}
		return err == nil
	})
	t.Logf("hub restarted offline: /v1/readyz after %s, kubelet's pod list served after %s", ready, time.Since(start))
	if pods != 5 {
		t.Fatalf("offline after restart: %d pods, want 5", pods)
	}
	inf, done = podInformer(t, kubelet, node)
	if n := len(inf.GetStore().List()); n != 5 {
		t.Fatalf("informer started offline after the restart: %d pods, want 5", n)
	}
	close(done)
	stop()

	// Empty cache, cloud unreachable: ready, and clear errors.
	cfg2 := daemonConfig(t, c, node, t.TempDir())
	start = time.Now()
	stop = runDaemon(t, cfg2)
	t.Logf("hub started offline on an empty cache: /v1/readyz after %s", time.Since(start))
	_, err = kubernetes.NewForConfigOrDie(kubeletConfig(cfg2)).CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
	if !apierrors.IsServiceUnavailable(err) {
		t.Fatalf("empty cache offline: want a clear 503, got %v", err)
	}
	t.Logf("empty cache answer: %v", err)
	stop()
}

func podInformer(t *testing.T, cs kubernetes.Interface, node string) (cache.SharedIndexInformer, chan struct{}) {
	t.Helper()
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", node).String()
	}))
	inf := f.Core().V1().Pods().Informer()
	done := make(chan struct{})
	f.Start(done)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		close(done)
		t.Fatal("pod informer did not sync through the hub")
	}
	return inf, done
}

func kubeletConfig(cfg *config.Config) *rest.Config {
	rc := &rest.Config{Host: "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.ProxyPort)),
		UserAgent: "kubelet/v1.36.3 (linux/amd64) kubernetes/test", QPS: -1}
	rc.ContentType, rc.AcceptContentTypes = runtime.ContentTypeProtobuf, runtime.ContentTypeProtobuf+","+runtime.ContentTypeJSON
	return rc
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// daemonConfig is a hub in front of the cluster with --bootstrap-mode=kubeletcertificate
// and a node client certificate from the cluster CA; root is its --root-dir.
func daemonConfig(t *testing.T, c *testkube.Cluster, node, root string) *config.Config {
	t.Helper()
	certPEM, keyPEM := c.IssueNodeClientCert(node)
	clientFile := filepath.Join(root, "kubelet-client-current.pem")
	if err := os.WriteFile(clientFile, append(certPEM, keyPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(c.URL())
	cfg := config.Default()
	cfg.ServerAddrs, cfg.NodeName = []*url.URL{u}, node
	cfg.ServePort, cfg.ProxyPort, cfg.ProxySecurePort = freePort(t), freePort(t), freePort(t)
	cfg.RootDir, cfg.DiskCachePath = filepath.Join(root, "hub"), filepath.Join(root, "no-openyurt-cache")
	cfg.EnableDummyIf, cfg.EnableIPTables = false, false
	cfg.BootstrapMode, cfg.KubeletCAFile, cfg.KubeletClientCertificate = config.BootstrapModeKubeletCertificate, c.CAFile(), clientFile
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	return cfg
}

// runDaemon runs daemon.Run until the returned stop is called; it returns once
// /v1/readyz answers 200.
func runDaemon(t *testing.T, cfg *config.Config) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	go func() { done <- daemon.Run(ctx, cfg, log) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("daemon did not stop within 20s")
		}
	}
	t.Cleanup(stop)
	ready := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.ServePort)) + "/v1/readyz"
	waitFor(t, 30*time.Second, "/v1/readyz", func() bool {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("daemon.Run returned early: %v", err)
		default:
		}
		resp, err := http.Get(ready)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return stop
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
