package multiplexer_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/yurthub/yurthub/internal/config"
	"github.com/yurthub/yurthub/internal/daemon"
	"github.com/yurthub/yurthub/internal/multiplexer"
	"github.com/yurthub/yurthub/internal/testkube"
)

const testNode = "edge-1"

// hub is a daemon.Run started in-process (as the proxy's end-to-end tests do).
type hub struct {
	cfg    *config.Config
	cancel context.CancelFunc
	done   chan error
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

// hubConfig: a hub in front of servers with a node client certificate from the
// cluster CA (--bootstrap-mode=kubeletcertificate), default --pool-scope-resources.
func hubConfig(t testing.TB, c *testkube.Cluster, servers ...string) *config.Config {
	t.Helper()
	root := t.TempDir()
	certPEM, keyPEM := c.IssueNodeClientCert(testNode)
	clientFile := filepath.Join(root, "kubelet-client-current.pem")
	if err := os.WriteFile(clientFile, append(certPEM, keyPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	var urls []*url.URL
	for _, s := range servers {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		urls = append(urls, u)
	}
	cfg := config.Default()
	cfg.ServerAddrs, cfg.NodeName = urls, testNode
	cfg.ServePort, cfg.ProxyPort, cfg.ProxySecurePort = freePort(t), freePort(t), freePort(t)
	cfg.RootDir, cfg.DiskCachePath = filepath.Join(root, "hub"), filepath.Join(root, "no-openyurt-cache")
	cfg.EnableDummyIf, cfg.EnableIPTables = false, false
	cfg.BootstrapMode, cfg.KubeletCAFile, cfg.KubeletClientCertificate = config.BootstrapModeKubeletCertificate, c.CAFile(), clientFile
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	return cfg
}

func startHub(t testing.TB, cfg *config.Config) *hub {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h := &hub{cfg: cfg, cancel: cancel, done: make(chan error, 1)}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	go func() { h.done <- daemon.Run(ctx, cfg, log) }()
	t.Cleanup(h.stop)
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-h.done:
			h.done <- err
			t.Fatalf("daemon.Run returned early: %v", err)
		default:
		}
		resp, err := http.Get(h.serveURL() + "/v1/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return h
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("hub not ready after 30s (last: %v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (h *hub) stop() {
	h.cancel()
	select {
	case <-h.done:
	case <-time.After(20 * time.Second):
	}
}

func (h *hub) proxyURL() string {
	return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(h.cfg.ProxyPort))
}
func (h *hub) serveURL() string {
	return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(h.cfg.ServePort))
}

// metric sums the samples of name whose labels contain all of want (-1: none).
func (h *hub) metric(t testing.TB, name string, want ...string) float64 {
	t.Helper()
	resp, err := http.Get(h.serveURL() + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	return findMetric(resp.Body, name, want...)
}

func findMetric(r io.Reader, name string, want ...string) float64 {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	sum, found := 0.0, false
next:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		series := line[:i]
		if series != name && !strings.HasPrefix(series, name+"{") {
			continue
		}
		for _, w := range want {
			if !strings.Contains(series, w) {
				continue next
			}
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		sum += v
		found = true
	}
	if !found {
		return -1
	}
	return sum
}

// apiserverWatches is the apiserver's own count of the WATCH requests open on
// resource (apiserver_longrunning_requests), read directly with the admin token.
func apiserverWatches(t testing.TB, c *testkube.Cluster, s *testkube.APIServer, resource string) float64 {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.URL()+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+c.AdminToken())
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.CAPool()}}, Timeout: 10 * time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("apiserver metrics: %v", err)
	}
	defer resp.Body.Close()
	v := findMetric(resp.Body, "apiserver_longrunning_requests", `verb="WATCH"`, `resource="`+resource+`"`)
	return max(v, 0)
}

func waitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// informerSpec is one client-go informer: resource, encoding, watch-list,
// namespace and label selector.
type informerSpec struct {
	resource  string // "services" or "endpointslices"
	protobuf  bool
	watchList bool
	namespace string
	label     string
}

func (s informerSpec) String() string {
	enc := "json"
	if s.protobuf {
		enc = "protobuf"
	}
	wl := "list+watch"
	if s.watchList {
		wl = "watch-list"
	}
	return fmt.Sprintf("%s/%s/%s ns=%q label=%q", s.resource, enc, wl, s.namespace, s.label)
}

// informer is a running client-go informer; bad records the first event that
// went back in time for an object (an update to an older resourceVersion).
type informer struct {
	spec informerSpec
	name string
	inf  cache.SharedIndexInformer
	mu   sync.Mutex
	bad  string
}

// noWatchList makes client-go's reflector list and then watch (watch-list off)
// for one informer, whatever the WatchListClient feature says.
type noWatchList struct{ *cache.ListWatch }

func (noWatchList) IsWatchListSemanticsUnSupported() bool { return true }

func startInformer(t testing.TB, ctx context.Context, base *rest.Config, userAgent string, spec informerSpec) *informer {
	t.Helper()
	cfg := rest.CopyConfig(base)
	cfg.UserAgent = userAgent
	cfg.QPS = -1
	if spec.protobuf {
		cfg.ContentType = "application/vnd.kubernetes.protobuf"
		cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	tweak := func(o *metav1.ListOptions) { o.LabelSelector = spec.label }
	lw := &cache.ListWatch{}
	var obj runtime.Object
	switch spec.resource {
	case "services":
		obj = &corev1.Service{}
		lw.ListWithContextFunc = func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			tweak(&o)
			return cs.CoreV1().Services(spec.namespace).List(ctx, o)
		}
		lw.WatchFuncWithContext = func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			tweak(&o)
			return cs.CoreV1().Services(spec.namespace).Watch(ctx, o)
		}
	case "endpointslices":
		obj = &discoveryv1.EndpointSlice{}
		lw.ListWithContextFunc = func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			tweak(&o)
			return cs.DiscoveryV1().EndpointSlices(spec.namespace).List(ctx, o)
		}
		lw.WatchFuncWithContext = func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			tweak(&o)
			return cs.DiscoveryV1().EndpointSlices(spec.namespace).Watch(ctx, o)
		}
	default:
		t.Fatalf("resource %q", spec.resource)
	}
	var lister cache.ListerWatcher = cache.ToListWatcherWithWatchListSemantics(lw, cs)
	if !spec.watchList {
		lister = noWatchList{lw}
	}
	in := &informer{spec: spec, name: userAgent}
	in.inf = cache.NewSharedIndexInformer(lister, obj, 0, cache.Indexers{})
	_, _ = in.inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(oldObj, newObj any) {
			o, _ := meta.Accessor(oldObj)
			n, _ := meta.Accessor(newObj)
			or, _ := strconv.ParseUint(o.GetResourceVersion(), 10, 64)
			nr, _ := strconv.ParseUint(n.GetResourceVersion(), 10, 64)
			if nr < or {
				in.mu.Lock()
				if in.bad == "" {
					in.bad = fmt.Sprintf("%s/%s went back from resourceVersion %d to %d", n.GetNamespace(), n.GetName(), or, nr)
				}
				in.mu.Unlock()
			}
		},
	})
	go in.inf.RunWithContext(ctx)
	return in
}

func (in *informer) synced() bool { return in.inf.HasSynced() }

// state is the informer's objects: namespace/name => resourceVersion and labels.
func (in *informer) state() map[string]string {
	out := map[string]string{}
	for _, o := range in.inf.GetStore().List() {
		a, err := meta.Accessor(o)
		if err != nil {
			continue
		}
		var ls []string
		for k, v := range a.GetLabels() {
			ls = append(ls, k+"="+v)
		}
		sort.Strings(ls)
		out[a.GetNamespace()+"/"+a.GetName()] = a.GetResourceVersion() + " " + strings.Join(ls, ",")
	}
	return out
}

func (in *informer) firstBad() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.bad
}

// diff describes how two states differ ("" when equal), at most a few entries.
func diff(got, want map[string]string) string { return multiplexer.StateDiff(got, want) }
