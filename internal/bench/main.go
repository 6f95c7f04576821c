// Command bench is make bench: it measures yurthub against talking to the apiserver
// directly, in one run against one real kube-apiserver (internal/testkube), and writes
// results.md and results.json into --out (testdata/bench/chart renders chart.png from
// the JSON). It is a program, not a timed test: its figures are for reading, not for
// passing.
//
//	YURTHUB_KUBE_BIN_DIR=$(testdata/kube/build.sh | tail -n1) go run ./internal/bench --out docs/bench/latest
//
// What it does, in order (every figure through the hub and directly, median of --runs
// runs with min and max):
//
//  1. starts etcd + kube-apiserver and creates a node with 1,000 pods in namespace
//     bench-1k, 10,000 in bench-10k and 100 in bench-watch (about 2 KiB each as JSON);
//  2. starts bin/yurthub in edge mode (--bootstrap-mode=kubeletcertificate, default
//     heartbeat flags) and sends kubelet-shaped requests (User-Agent kubelet/...) to its
//     HTTP proxy port; direct requests go to the apiserver over TLS with the node's
//     client certificate, as kubelet's would;
//  3. GET one pod (p50, p99 over --gets requests), LIST 1k and 10k pods in JSON and
//     protobuf (the whole body read; --list-runs samples each, at least 20); the hub's
//     anonymous memory (RssAnon) peak above idle during its first 10k-pod JSON list,
//     the one it caches (goal: < 16 MiB); LIST --large EndpointSlices as kube-proxy,
//     which the hub filters with servicetopology (filters.go), and the hub's anonymous
//     memory above idle during those lists;
//  4. watch: 8 concurrent watchers of bench-watch while 8 writers patch its pods for
//     --watch-seconds; events/s delivered to all watchers together; the hub's RSS is
//     sampled meanwhile;
//  5. the hub's RSS idle with the 10k list cached; its start-up time to /v1/readyz with
//     that cache, online;
//  6. the apiserver stopped: time until the hub notices (its
//     node_yurthub_server_healthy_status gauge), GET and LIST from the cache, start-up
//     time to /v1/readyz offline; the apiserver started: time until the hub notices;
//  7. the binary's size.
//
// Hub and direct take turns within each run, and the side that goes first alternates
// from one run to the next (inTurn), so neither always runs right after the other's
// warm-up or under the same phase of background load. results.md prints the hub's exact
// command line.
//
// A figure the hub cannot produce (a feature not landed, an error) is recorded as such,
// with the reason, never made up.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/yurthub/yurthub/internal/testkube"
)

const (
	node      = "bench-node"
	userAgent = "kubelet/v1.36.3 (linux/amd64) kubernetes/bench"
	protobuf  = "application/vnd.kubernetes.protobuf"
)

type flags struct {
	out          string
	hubBin       string
	runs         int
	listRuns     int
	gets         int
	watchSeconds float64
	small, large int
	keep         bool
	readme       string
	profileDir   string
	hubArgs      string
}

func main() {
	var f flags
	flag.StringVar(&f.out, "out", "docs/bench/latest", "directory for results.md and results.json")
	flag.StringVar(&f.hubBin, "hub", "bin/yurthub", "the yurthub binary to measure (make build)")
	flag.StringVar(&f.hubArgs, "hub-args", "", "more flags for the hub, space-separated (experiments: results.md prints the command line as run)")
	flag.IntVar(&f.runs, "runs", 5, "runs per figure (median, min and max are reported)")
	flag.IntVar(&f.listRuns, "list-runs", minListRuns, "samples per LIST figure (median, min and max are reported)")
	flag.IntVar(&f.gets, "gets", 300, "GET requests per latency run")
	flag.Float64Var(&f.watchSeconds, "watch-seconds", 4, "seconds of churn per watch run")
	flag.IntVar(&f.small, "small", 1000, "pods in the small list")
	flag.IntVar(&f.large, "large", 10000, "pods in the large list")
	flag.BoolVar(&f.keep, "keep", false, "keep the work directory (logs, cache file)")
	flag.StringVar(&f.readme, "readme", "", "also rewrite the goals table between the bench markers in this README")
	flag.StringVar(&f.profileDir, "profile-dir", "", "save a CPU profile of the hub (its /debug/pprof) during each watch load through it, and its heap profile when idle online and offline, into this directory")
	flag.Parse()
	if f.runs < 1 || f.listRuns < 1 {
		fmt.Fprintf(os.Stderr, "bench: --runs=%d and --list-runs=%d must be at least 1\n", f.runs, f.listRuns)
		os.Exit(2)
	}
	log.SetFlags(log.Ltime)
	log.SetPrefix("bench: ")
	if err := run(f); err != nil {
		log.Fatal(err)
	}
}

// bench holds what every phase uses.
type bench struct {
	f       flags
	dir     string
	sa      *testkube.Standalone
	c       *testkube.Cluster
	admin   *kubernetes.Clientset
	direct  *http.Client
	hubC    *http.Client
	hub     *hubProc
	res     *Results
	podSize int
	epsBase float64 // WATCH requests on endpointslices open before the hub started (the apiserver's own)
}

func run(f flags) error {
	began := time.Now()
	hubBin, err := filepath.Abs(f.hubBin)
	if err != nil {
		return err
	}
	f.hubBin = hubBin
	st, err := os.Stat(f.hubBin)
	if err != nil {
		return fmt.Errorf("%s: %w (run make build first)", f.hubBin, err)
	}
	dir, err := os.MkdirTemp("", "yurthub-bench.")
	if err != nil {
		return err
	}
	if !f.keep {
		defer os.RemoveAll(dir)
	} else {
		log.Printf("work directory %s", dir)
	}
	b := &bench{f: f, dir: dir, res: newResults(f)}
	b.res.Machine = machine()
	b.res.Versions.Yurthub = hubVersion(f.hubBin)
	b.res.Versions.Go = runtime.Version()
	b.res.BinaryBytes = st.Size()

	if os.Getenv("YURTHUB_KUBE_BIN_DIR") == "" {
		// Run from the repository's top directory (make bench does): build.sh finds or
		// builds the control plane and prints its directory last.
		log.Printf("YURTHUB_KUBE_BIN_DIR is unset: running testdata/kube/build.sh (a first build takes about 6 minutes)")
		cmd := exec.Command("testdata/kube/build.sh")
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("testdata/kube/build.sh (run bench from the repository's top directory, or set YURTHUB_KUBE_BIN_DIR): %w", err)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		os.Setenv("YURTHUB_KUBE_BIN_DIR", strings.TrimSpace(lines[len(lines)-1]))
	}
	log.Printf("starting etcd + kube-apiserver")
	b.sa, b.c, err = testkube.StartStandalone(filepath.Join(dir, "cluster"), testkube.Options{Nodes: []string{node}}, nil)
	if err != nil {
		return err
	}
	defer b.sa.Close()
	if err := b.sa.Do(func(t testing.TB) { b.c.GrantNodeReadAll(t, node) }); err != nil {
		return err
	}
	adminCfg := b.c.AdminConfig()
	adminCfg.WarningHandler = rest.NoWarnings{}
	b.admin = kubernetes.NewForConfigOrDie(adminCfg)
	// Built from the k8s.io/kubernetes module, it reports v0.0.0-master in /version.
	b.res.Versions.KubeAPIServer = "v1.36.3 (k8s.io/kubernetes module, built by testdata/kube/build.sh)"
	if err := b.clients(); err != nil {
		return err
	}
	if err := b.populate(); err != nil {
		return err
	}
	if err := b.populateSlices(); err != nil {
		return err
	}
	if err := b.populateEndpointSlices(); err != nil {
		return err
	}
	if b.epsBase, err = b.apiserverWatches("endpointslices"); err != nil {
		return err
	}
	b.hub = &hubProc{b: b}
	defer b.hub.stop()
	if _, err := b.hub.start(); err != nil {
		return err
	}
	if err := b.online(); err != nil {
		return err
	}
	if err := b.offline(); err != nil {
		return err
	}
	b.res.Seconds = time.Since(began).Seconds()
	log.Printf("done in %.0fs; writing %s", b.res.Seconds, f.out)
	if err := b.res.write(f.out); err != nil {
		return err
	}
	if f.readme != "" {
		rel, err := filepath.Rel(filepath.Dir(f.readme), filepath.Join(f.out, "results.md"))
		if err != nil {
			return err
		}
		return b.res.UpdateReadme(f.readme, filepath.ToSlash(rel))
	}
	return nil
}

// clients builds the direct client (TLS with the node's certificate, HTTP/2 as
// client-go negotiates it) and the hub client (plain HTTP to the proxy port). Both
// ask for gzip, as client-go does unless DisableCompression is set, so both get the
// same response: the apiserver gzips large lists (over 128 KiB) for either, and the
// hub passes the compressed body through (and decompresses a copy for its cache).
func (b *bench) clients() error {
	certPEM, keyPEM := b.c.IssueNodeClientCert(node)
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(b.c.CAPEM())
	b.direct = &http.Client{Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}},
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 64,
	}}
	b.hubC = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	pem := append(append([]byte{}, certPEM...), keyPEM...)
	if err := os.WriteFile(filepath.Join(b.dir, "node.pem"), pem, 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(b.dir, "ca.crt"), b.c.CAPEM(), 0o600)
}

// pod is about 2 KiB as JSON once the apiserver has added managedFields and status:
// labels, an annotation, one container with env and ports.
func pod(ns, name string) *corev1.Pod {
	env := []corev1.EnvVar{}
	for i := 0; i < 2; i++ {
		env = append(env, corev1.EnvVar{Name: fmt.Sprintf("BENCH_SETTING_%02d", i), Value: fmt.Sprintf("value-%02d-of-a-typical-setting", i)})
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: ns,
			Labels:      map[string]string{"app": "bench", "tier": "backend", "release": "stable"},
			Annotations: map[string]string{"bench.yurthub.io/note": strings.Repeat("x", 100)},
		},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{
			Name: "main", Image: "registry.k8s.io/pause:3.10",
			Env:   env,
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "metrics", ContainerPort: 9090}},
		}}},
	}
}

func (b *bench) populate() error {
	ctx := context.Background()
	if _, err := b.admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	cfg := b.c.AdminConfig()
	cfg.ContentType = protobuf
	cfg.QPS, cfg.Burst = -1, 0
	cfg.WarningHandler = rest.NoWarnings{}
	cs := kubernetes.NewForConfigOrDie(cfg)
	sets := []struct {
		ns string
		n  int
	}{{"bench-1k", b.f.small}, {"bench-10k", b.f.large}, {"bench-watch", 100}}
	began := time.Now()
	total := 0
	for _, s := range sets {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: s.ns}}, metav1.CreateOptions{}); err != nil {
			return err
		}
		jobs := make(chan int)
		errc := make(chan error, 32)
		var wg sync.WaitGroup
		for w := 0; w < 32; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range jobs {
					if _, err := cs.CoreV1().Pods(s.ns).Create(ctx, pod(s.ns, fmt.Sprintf("pod-%05d", i)), metav1.CreateOptions{}); err != nil {
						select {
						case errc <- err:
						default:
						}
					}
				}
			}()
		}
		for i := 0; i < s.n; i++ {
			jobs <- i
		}
		close(jobs)
		wg.Wait()
		select {
		case err := <-errc:
			return fmt.Errorf("create pods in %s: %w", s.ns, err)
		default:
		}
		total += s.n
	}
	raw, err := json.Marshal(must(b.admin.CoreV1().Pods("bench-1k").Get(ctx, "pod-00000", metav1.GetOptions{})))
	if err != nil {
		return err
	}
	b.podSize = len(raw)
	b.res.PodBytes = len(raw)
	log.Printf("created %d pods (%d bytes each as JSON) in %.1fs", total, len(raw), time.Since(began).Seconds())
	return nil
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// target is where a request goes.
type target struct {
	name   string // "hub" or "direct"
	base   string
	client *http.Client
}

func (b *bench) targets() []target {
	return []target{
		{"direct", b.c.URL(), b.direct},
		{"hub", "http://" + b.hub.proxyAddr, b.hubC},
	}
}

// do sends one GET and reads the whole body. Status other than 200 is an error.
func do(t target, path, accept string) (int64, error) { return doAs(t, path, accept, userAgent) }

// doAs is do with another client's User-Agent.
func doAs(t target, path, accept, ua string) (int64, error) {
	req, err := http.NewRequest(http.MethodGet, t.base+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("User-Agent", ua)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return n, err
	}
	if resp.StatusCode != http.StatusOK {
		return n, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return n, nil
}

// latency runs n GETs and returns p50 and p99 in milliseconds.
func latency(t target, path, accept string, n int) (p50, p99 float64, err error) {
	ds := make([]float64, 0, n)
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if _, err := do(t, path, accept); err != nil {
			return 0, 0, err
		}
		ds = append(ds, float64(time.Since(t0).Microseconds())/1000)
	}
	slices.Sort(ds)
	return ds[len(ds)/2], ds[min(len(ds)-1, len(ds)*99/100)], nil
}

// minListRuns is the default and the least --list-runs a full run (make bench) takes:
// a LIST of 10k pods varies by tens of ms from one run to the next on a shared
// machine, and a median of 5 moved the hub/direct ratio by more than its goal's margin.
const minListRuns = 20

// inTurn is the order the targets take in run number run: as given in even runs,
// reversed in odd ones, so with two targets each goes first in every other run (a
// target that always ran first would always meet the other's leftovers, or none).
func inTurn[T any](ts []T, run int) []T {
	out := slices.Clone(ts)
	if run%2 == 1 {
		slices.Reverse(out)
	}
	return out
}

// getFigures and listFigures run the targets in turn within each run (inTurn: the
// one that goes first alternates), after one untimed request each, so that both see
// the same background load on a shared machine. A target that fails stops its runs;
// the error is recorded.
func (b *bench) getFigures(prefix string, ts []target) {
	path := "/api/v1/namespaces/bench-1k/pods/pod-00000"
	failed := map[string]bool{}
	for _, t := range ts {
		_, _ = do(t, path, "")
	}
	for run := 0; run < b.f.runs; run++ {
		for _, t := range inTurn(ts, run) {
			if failed[t.name] {
				continue
			}
			var profiled sync.WaitGroup
			if b.f.profileDir != "" && t.name == "hub" && prefix == "" && run == 0 {
				// an execution trace of the GETs (go tool trace -pprof=sched: where
				// a request waits for a thread)
				profiled.Add(1)
				go func() { defer profiled.Done(); b.hub.trace("get-trace.out", time.Second) }()
				time.Sleep(50 * time.Millisecond)
			}
			p50, p99, err := latency(t, path, "", b.f.gets)
			profiled.Wait()
			b.res.add(prefix+"GET one pod p50 (JSON)", "ms", t.name, p50, err)
			b.res.add(prefix+"GET one pod p99 (JSON)", "ms", t.name, p99, err)
			failed[t.name] = err != nil
		}
	}
}

// countLabel names a list size in a figure: "10k" for 10000, "300" for 300 (a reduced
// run's lists must not share a name, and so a figure, with each other).
func countLabel(n int) string {
	if n >= 1000 && n%1000 == 0 {
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

func (b *bench) listFigures(prefix string, ts []target) {
	for _, l := range []struct {
		label, ns string
	}{{countLabel(b.f.small), "bench-1k"}, {countLabel(b.f.large), "bench-10k"}} {
		for _, enc := range []struct{ label, accept string }{{"JSON", "application/json"}, {"protobuf", protobuf}} {
			name := fmt.Sprintf("%sLIST %s pods (%s)", prefix, l.label, enc.label)
			path := "/api/v1/namespaces/" + l.ns + "/pods"
			failed := map[string]bool{}
			for _, t := range ts {
				if b.hub != nil && t.name == "hub" && prefix == "" && l.ns == "bench-10k" && enc.label == "JSON" {
					// The first list through the hub is the one it caches (spooled, then
					// committed in chunks): its memory above idle is the figure.
					idle, peak := b.hub.anonPeak(func() { _, _ = do(t, path, enc.accept) })
					b.res.add("hub anonymous memory (heap) peak above idle, first 10k-pod JSON list (cached)", "MiB", "hub", float64(peak-idle)/(1<<20), nil)
					continue
				}
				_, _ = do(t, path, enc.accept)
			}
			for run := 0; run < b.f.listRuns; run++ {
				for _, t := range inTurn(ts, run) {
					if failed[t.name] {
						continue
					}
					t0 := time.Now()
					_, err := do(t, path, enc.accept)
					b.res.add(name, "ms", t.name, float64(time.Since(t0).Microseconds())/1000, err)
					failed[t.name] = err != nil
				}
			}
		}
	}
}

func (b *bench) online() error {
	// In edge mode the hub counts an apiserver healthy after its first good heartbeats.
	if _, err := b.waitHealth(true, 60*time.Second); err != nil {
		return err
	}
	log.Printf("online: GET latency")
	b.getFigures("", b.targets())
	log.Printf("online: GET latency through a hub in cloud mode (the hop alone)")
	b.hopFigures()
	log.Printf("online: LIST")
	b.listFigures("", b.targets())
	log.Printf("online: LIST EndpointSlices as kube-proxy (servicetopology)")
	b.sliceFigures()

	log.Printf("online: watch")
	failed := map[string]bool{}
	for run := 0; run < b.f.runs; run++ {
		for _, t := range inTurn(b.targets(), run) {
			if failed[t.name] {
				continue
			}
			var rss, anon atomic.Int64
			stopSample := make(chan struct{})
			sampled := make(chan struct{})
			go func() {
				defer close(sampled)
				for {
					if m := b.hub.mem(); m.rss > rss.Load() {
						rss.Store(m.rss)
						anon.Store(m.anon)
					}
					select {
					case <-stopSample:
						return
					case <-time.After(100 * time.Millisecond):
					}
				}
			}()
			rate, err := b.watchLoad(t, run, b.podWatch("")) // mux.go
			close(stopSample)
			<-sampled
			b.res.add("watch events/s to 8 identical watchers of a non-multiplexed view (pods, JSON)", "events/s", t.name, rate, err)
			if t.name == "hub" {
				b.res.add("hub RSS under the watch load", "MiB", "hub", float64(rss.Load())/(1<<20), nil)
				b.res.add("↳ of which anonymous (heap, stacks), at the peak", "MiB", "hub", float64(anon.Load())/(1<<20), nil)
			}
			failed[t.name] = err != nil
		}
	}

	b.muxFigures() // mux.go
	log.Printf("online: multiplexer over a shaped cloud link")
	if err := b.linkFigures(); err != nil { // link.go
		return err
	}

	log.Printf("online: idle RSS and start-up time")
	// The large list once more through the hub so the cache holds it, then idle.
	if _, err := do(b.targets()[1], "/api/v1/namespaces/bench-10k/pods", ""); err != nil {
		return fmt.Errorf("list through the hub: %w", err)
	}
	n, err := b.hub.cachedObjects()
	b.res.add("objects in the hub's cache after the lists", "objects", "hub", float64(n), err)
	time.Sleep(idleSettle)
	for run := 0; run < b.f.runs; run++ {
		time.Sleep(2 * time.Second)
		m := b.hub.mem()
		b.res.add("hub RSS idle, after the lists", "MiB", "hub", float64(m.rss)/(1<<20), nil)
		b.res.add("↳ of which anonymous (heap, stacks)", "MiB", "hub", float64(m.anon)/(1<<20), nil)
		b.res.add("↳ of which file-backed (the mmap'd cache file, the binary)", "MiB", "hub", float64(m.file)/(1<<20), nil)
		b.memFigures("online")
		if run == 0 {
			b.hub.heapProfile("heap-idle-online")
		}
		if run < b.f.runs-1 {
			time.Sleep(500 * time.Millisecond)
		}
	}
	for run := 0; run < b.f.runs; run++ {
		b.hub.stop()
		d, err := b.hub.start()
		b.res.add("start to /v1/readyz, online, after the lists", "ms", "hub", d.Seconds()*1000, err)
		if err != nil {
			return err
		}
		if _, err := b.waitHealth(true, 60*time.Second); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) healthy() (bool, error) { return b.hub.healthy() }

// healthy reads the hub's health gauge of its --server-addr.
func (h *hubProc) healthy() (bool, error) {
	resp, err := http.Get("http://" + h.serveAddr + "/metrics")
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	want := fmt.Sprintf("node_yurthub_server_healthy_status{server=%q} ", h.serverURL())
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, want); ok {
			return v == "1", nil
		}
	}
	return false, fmt.Errorf("the hub's /metrics has no %s", want)
}

// waitHealth polls the hub's health gauge every 10 ms until it reads want.
func (b *bench) waitHealth(want bool, limit time.Duration) (time.Duration, error) {
	return b.hub.waitHealth(want, limit)
}

func (h *hubProc) waitHealth(want bool, limit time.Duration) (time.Duration, error) {
	t0 := time.Now()
	for time.Since(t0) < limit {
		if ok, err := h.healthy(); err == nil && ok == want {
			return time.Since(t0), nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0, fmt.Errorf("the hub did not report the apiserver %s within %s", map[bool]string{true: "healthy", false: "unhealthy"}[want], limit)
}

func (b *bench) offline() error {
	hubOnly := b.targets()[1:]
	// Loss and recovery: up to 3 cycles with kubelet-shaped traffic flowing (a GET every
	// 100 ms, as on a real node: a proxied request that fails counts as a sign of loss
	// too) and as many with an idle hub (only its own health checks can notice).
	cycles := 2 * min(b.f.runs, 3)
	for run := 0; run < cycles; run++ {
		traffic := run%2 == 0
		log.Printf("offline: cut %d/%d (client traffic: %v)", run+1, cycles, traffic)
		if _, err := b.waitHealth(true, 60*time.Second); err != nil {
			return err
		}
		stopTraffic := make(chan struct{})
		trafficDone := make(chan struct{})
		go func() {
			defer close(trafficDone)
			for traffic {
				_, _ = do(hubOnly[0], "/api/v1/namespaces/bench-1k/pods/pod-00001", "")
				select {
				case <-stopTraffic:
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		}()
		// Timed from the moment the apiserver is told to stop (SIGTERM), while it shuts
		// down: Stop returns only once it has exited.
		stopped := make(chan error, 1)
		cut := time.Now()
		go func() { stopped <- b.sa.Do(func(t testing.TB) { b.c.APIServer().Stop(t) }) }()
		_, err := b.waitHealth(false, 60*time.Second)
		d := time.Since(cut)
		close(stopTraffic)
		<-trafficDone
		if serr := <-stopped; serr != nil {
			return serr
		}
		name := "cloud loss noticed, idle hub (from the apiserver's SIGTERM)"
		if traffic {
			name = "cloud loss noticed, kubelet GET every 100 ms (from the apiserver's SIGTERM)"
		}
		b.res.add(name, "ms", "hub", d.Seconds()*1000, err)
		if run == 0 {
			log.Printf("offline: GET and LIST from the cache")
			b.getFigures("offline: ", hubOnly)
			b.listFigures("offline: ", hubOnly)
			time.Sleep(idleSettle)
			for r := 0; r < b.f.runs; r++ {
				time.Sleep(2 * time.Second)
				b.memFigures("offline (JSON and protobuf lists from the cache)")
				if r == 0 {
					b.hub.heapProfile("heap-idle-offline")
				}
			}
			for r := 0; r < b.f.runs; r++ {
				b.hub.stop()
				d, err := b.hub.start()
				b.res.add("start to /v1/readyz, offline, after the lists", "ms", "hub", d.Seconds()*1000, err)
				if err != nil {
					return err
				}
			}
		}
		if err := b.sa.Do(func(t testing.TB) { b.c.APIServer().Start(t) }); err != nil {
			return err
		}
		d, err = b.waitHealth(true, 60*time.Second)
		b.res.add("cloud recovery noticed (after the apiserver is ready)", "ms", "hub", d.Seconds()*1000, err)
	}
	return nil
}

// hubProc is bin/yurthub as a child process.
type hubProc struct {
	b                    *bench
	server               string   // --server-addr; "" is the apiserver itself
	args                 []string // more flags for this hub
	name                 string   // its directory under the work directory; "" is "hub"
	cmd                  *exec.Cmd
	done                 chan struct{}
	proxyAddr, serveAddr string
	securePort           string
	logf                 *os.File
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start runs the hub and returns the time from exec to /v1/readyz answering 200.
func (h *hubProc) start() (time.Duration, error) {
	if h.proxyAddr == "" {
		ports := make([]int, 3)
		for i := range ports {
			p, err := freePort()
			if err != nil {
				return 0, err
			}
			ports[i] = p
		}
		h.proxyAddr = fmt.Sprintf("127.0.0.1:%d", ports[0])
		h.serveAddr = fmt.Sprintf("127.0.0.1:%d", ports[1])
		h.securePort = fmt.Sprint(ports[2])
	}
	_, proxyPort, _ := net.SplitHostPort(h.proxyAddr)
	_, servePort, _ := net.SplitHostPort(h.serveAddr)
	root := filepath.Join(h.b.dir, h.dirName())
	args := []string{
		"--server-addr=" + h.serverURL(), "--node-name=" + node,
		"--bootstrap-mode=kubeletcertificate",
		"--kubelet-ca-file=" + filepath.Join(h.b.dir, "ca.crt"),
		"--kubelet-client-certificate=" + filepath.Join(h.b.dir, "node.pem"),
		"--root-dir=" + root,
		"--disk-cache-path=" + filepath.Join(root, "openyurt-cache"),
		"--proxy-port=" + proxyPort, "--serve-port=" + servePort, "--proxy-secure-port=" + h.securePort,
		"--enable-dummy-if=false", "--enable-iptables=false",
		"--max-requests-in-flight=0",
	}
	args = append(args, strings.Fields(h.b.f.hubArgs)...)
	args = append(args, h.args...)
	var err error
	if h.logf == nil {
		if h.logf, err = os.OpenFile(filepath.Join(h.b.dir, h.dirName()+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
			return 0, err
		}
	}
	h.cmd = exec.Command(h.b.f.hubBin, args...)
	if h == h.b.hub {
		h.b.res.HubArgs = slices.Clone(h.cmd.Args) // exactly what runs, path and flags
	}
	h.cmd.Stdout, h.cmd.Stderr = h.logf, h.logf
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	t0 := time.Now()
	if err := h.cmd.Start(); err != nil {
		return 0, err
	}
	h.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(h.cmd, h.done)
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for time.Since(t0) < 30*time.Second {
		resp, err := client.Get("http://" + h.serveAddr + "/v1/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(t0), nil
			}
		}
		select {
		case <-h.done:
			return 0, fmt.Errorf("yurthub exited during start-up; see %s", filepath.Join(h.b.dir, h.dirName()+".log"))
		case <-time.After(2 * time.Millisecond):
		}
	}
	return 0, errors.New("yurthub not ready within 30s")
}

func (h *hubProc) serverURL() string {
	if h.server != "" {
		return h.server
	}
	return h.b.c.URL()
}

func (h *hubProc) dirName() string {
	if h.name != "" {
		return h.name
	}
	return "hub"
}

func (h *hubProc) stop() {
	if h.cmd == nil || h.cmd.Process == nil {
		return
	}
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.done:
	case <-time.After(15 * time.Second):
		_ = h.cmd.Process.Kill()
		<-h.done
	}
	h.cmd = nil
}

// cachedObjects asks the running hub (yurthub inspect -o json, over its admin socket)
// how many objects its cache holds.
func (h *hubProc) cachedObjects() (int, error) {
	out, err := exec.Command(h.b.f.hubBin, "inspect", "-o", "json", "--root-dir", filepath.Join(h.b.dir, "hub")).Output()
	if err != nil {
		return 0, fmt.Errorf("yurthub inspect: %w", err)
	}
	var st struct {
		Components []struct {
			Resources []struct {
				Objects int `json:"objects"`
			} `json:"resources"`
		} `json:"components"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return 0, fmt.Errorf("yurthub inspect -o json: %w", err)
	}
	n := 0
	for _, c := range st.Components {
		for _, r := range c.Resources {
			n += r.Objects
		}
	}
	return n, nil
}

// anonPeak runs fn and returns the hub's anonymous resident memory (RssAnon: heap,
// stacks) before it and its peak while it runs, sampled every 5 ms.
func (h *hubProc) anonPeak(fn func()) (idle, peak int64) {
	idle = h.mem().anon
	peak = idle
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			if m := h.mem(); m.anon > peak {
				peak = m.anon
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	fn()
	close(stop)
	<-done
	return idle, peak
}

// memStat is the hub's resident memory in bytes from /proc/<pid>/status: VmRSS and
// its parts RssAnon (heap, stacks) and RssFile (file pages mapped: bbolt's mmap of the
// cache file, the executable). Zero when unknown.
type memStat struct{ rss, anon, file int64 }

func (h *hubProc) mem() memStat {
	var m memStat
	if h.cmd == nil || h.cmd.Process == nil {
		return m
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", h.cmd.Process.Pid))
	if err != nil {
		return m
	}
	for _, line := range strings.Split(string(data), "\n") {
		name, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		switch name {
		case "VmRSS":
			m.rss = kb * 1024
		case "RssAnon":
			m.anon = kb * 1024
		case "RssFile":
			m.file = kb * 1024
		}
	}
	return m
}

// hopFigures: GET latency through a second hub in cloud working mode, which caches
// nothing and runs none of kubelet's pod filters (serviceenvupdater is off in cloud
// mode): what the extra hop itself costs, the floor under the edge hub's GET figure.
func (b *bench) hopFigures() {
	const name = "GET one pod p50 (JSON), through a hub in cloud mode (the hop alone: no cache, no filter)"
	hub := &hubProc{b: b, name: "hub-cloud", args: []string{"--working-mode=cloud"}}
	defer hub.stop()
	if _, err := hub.start(); err != nil {
		b.res.add(name, "ms", "hub", 0, err)
		return
	}
	if _, err := hub.waitHealth(true, 60*time.Second); err != nil {
		b.res.add(name, "ms", "hub", 0, err)
		return
	}
	path := "/api/v1/namespaces/bench-1k/pods/pod-00000"
	ts := []target{b.targets()[0], {"hub", "http://" + hub.proxyAddr, b.hubC}}
	for _, t := range ts {
		_, _ = do(t, path, "")
	}
	for run := 0; run < b.f.runs; run++ {
		for _, t := range inTurn(ts, run) {
			p50, _, err := latency(t, path, "", b.f.gets)
			b.res.add(name, "ms", t.name, p50, err)
		}
	}
}
