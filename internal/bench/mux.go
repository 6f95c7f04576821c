package main

// The multiplexer's figures (issue 18): EndpointSlices are a pool-scope resource
// (--pool-scope-resources, default services and endpointslices), so every local
// watch of them through the hub is served from the hub's one upstream watch.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/yurthub/yurthub/internal/wire"
)

const epsNS = "bench-eps"

// populateEndpointSlices creates 100 EndpointSlices in bench-eps.
func (b *bench) populateEndpointSlices() error {
	ctx := context.Background()
	cs := b.protoAdmin()
	if _, err := cs.CoreV1().Namespaces().Get(ctx, epsNS, metav1.GetOptions{}); err != nil {
		if _, err := b.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: epsNS}}, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	ready := true
	for i := 0; i < 100; i++ {
		es := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: fmt.Sprintf("eps-%03d", i), Namespace: epsNS, Labels: map[string]string{"kubernetes.io/service-name": fmt.Sprintf("svc-%03d", i)}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{fmt.Sprintf("10.2.%d.%d", i/250, 1+i%250)},
				Conditions: discoveryv1.EndpointConditions{Ready: &ready}, NodeName: ptr(node)}},
			Ports: []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(8080))}},
		}
		if _, err := cs.DiscoveryV1().EndpointSlices(epsNS).Create(ctx, es, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create EndpointSlice: %w", err)
		}
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

func (b *bench) protoAdmin() *kubernetes.Clientset {
	cfg := b.c.AdminConfig()
	cfg.ContentType = protobuf
	cfg.QPS, cfg.Burst = -1, 0
	cfg.WarningHandler = rest.NoWarnings{}
	return kubernetes.NewForConfigOrDie(cfg)
}

// apiserverWatches is the apiserver's own count of open WATCH requests on a
// resource (apiserver_longrunning_requests), read with the admin token.
func (b *bench) apiserverWatches(resource string) (float64, error) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(b.c.CAPEM())
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest(http.MethodGet, b.c.URL()+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+b.c.AdminToken())
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("apiserver /metrics: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	sum := 0.0
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "apiserver_longrunning_requests{") || !strings.Contains(line, `verb="WATCH"`) || !strings.Contains(line, `resource="`+resource+`"`) {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			v, _ := strconv.ParseFloat(line[i+1:], 64)
			sum += v
		}
	}
	return sum, sc.Err()
}

// watchSpec is one watch load: 8 watchers of path in one encoding while 8
// writers patch objects for watchSeconds.
type watchSpec struct {
	name   string // for profile file names
	path   string // the collection, without query
	accept string // "" (JSON) or protobuf
	list   func(ctx context.Context) (string, error)
	patch  func(ctx context.Context, i int, run int) (uint64, error) // the object's new resourceVersion
	during func()                                                    // called once the watchers are open (samples)
	// seconds of churn (0: --watch-seconds) and how long the watchers may take to
	// receive every event after the last write (0: 10 s)
	seconds float64
	drain   time.Duration
	hub     *hubProc // a hub other than b.hub (not profiled)
}

// watchLoad returns the events delivered per second, summed over the watchers,
// from the first write until every watcher has seen the last write.
//
// The watchers behave as client-go's reflector: a watch the server ends (the
// apiserver cuts a watcher that cannot keep up; the hub ends one more than 1024
// events behind) is opened again from the last resourceVersion received, and an
// ERROR 410 Expired there means a relist (through the same target) and a watch from
// the list's resourceVersion. The events skipped by a relist are not delivered, so
// such a run counts fewer events; the cuts and relists are counted (watchCounts).
func (b *bench) watchLoad(t target, run int, s watchSpec) (float64, error) {
	rate, _, err := b.watchLoadCounted(t, run, s)
	return rate, err
}

// watchCounts are the server-side ends a watch load's watchers went through.
type watchCounts struct{ reopened, relisted int64 }

func (b *bench) watchLoadCounted(t target, run int, s watchSpec) (float64, watchCounts, error) {
	const watchers, writers = 8, 8
	var counts watchCounts
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rv, err := s.list(ctx)
	if err != nil {
		return 0, counts, err
	}
	startRV, err := strconv.ParseUint(rv, 10, 64)
	if err != nil {
		return 0, counts, fmt.Errorf("list resourceVersion %q: %w", rv, err)
	}
	var events, reopened, relisted atomic.Int64
	var wg sync.WaitGroup
	seen := make([]atomic.Uint64, watchers) // each watcher's last resourceVersion
	errc := make(chan error, watchers)
	ready := make(chan struct{}, watchers)
	open := func(from uint64) (*http.Response, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s%s?watch=true&allowWatchBookmarks=true&resourceVersion=%d", t.base, s.path, from), nil)
		req.Header.Set("User-Agent", userAgent)
		if s.accept != "" {
			req.Header.Set("Accept", s.accept)
		}
		resp, err := t.client.Do(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, fmt.Errorf("watch %s: %s", s.path, resp.Status)
		}
		return resp, nil
	}
	for w := 0; w < watchers; w++ {
		seen[w].Store(startRV)
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := open(startRV)
			ready <- struct{}{}
			if err != nil {
				errc <- err
				return
			}
			for {
				expired := false
				countEvents(resp.Body, s.accept == protobuf, func(typ string, obj []byte) {
					if typ == "ERROR" {
						expired = bytes.Contains(obj, []byte("410")) || bytes.Contains(obj, []byte("Expired"))
						return
					}
					if typ == "MODIFIED" {
						events.Add(1)
					}
					if v := objectRV(obj, s.accept == protobuf); v > seen[w].Load() {
						seen[w].Store(v)
					}
				})
				resp.Body.Close()
				if ctx.Err() != nil {
					return
				}
				if expired {
					relisted.Add(1)
					lrv, err := listRV(ctx, t, s.path)
					if err != nil {
						if ctx.Err() == nil {
							errc <- err
						}
						return
					}
					seen[w].Store(lrv)
				} else {
					reopened.Add(1)
				}
				if resp, err = open(seen[w].Load()); err != nil {
					if ctx.Err() == nil {
						errc <- err
					}
					return
				}
			}
		}()
	}
	for w := 0; w < watchers; w++ {
		<-ready
	}
	select {
	case err := <-errc:
		return 0, counts, err
	default:
	}
	if s.during != nil {
		s.during()
	}
	var profiled sync.WaitGroup
	if b.f.profileDir != "" && t.name == "hub" && s.hub == nil {
		profiled.Add(1)
		go func() {
			defer profiled.Done()
			b.hub.cpuProfile(fmt.Sprintf("%s-run%d.pprof", s.name, run), b.f.watchSeconds)
		}()
	}
	defer profiled.Wait()
	began := time.Now()
	seconds := b.f.watchSeconds
	if s.seconds > 0 {
		seconds = s.seconds
	}
	end := began.Add(time.Duration(seconds * float64(time.Second)))
	var lastWrite atomic.Uint64
	var ww sync.WaitGroup
	for w := 0; w < writers; w++ {
		ww.Add(1)
		go func() {
			defer ww.Done()
			for i := w; time.Now().Before(end); i += writers {
				if v, err := s.patch(ctx, i, run); err == nil {
					for cur := lastWrite.Load(); v > cur && !lastWrite.CompareAndSwap(cur, v); cur = lastWrite.Load() {
					}
				}
			}
		}()
	}
	ww.Wait()
	final := lastWrite.Load()
	drain := 10 * time.Second
	if s.drain > 0 {
		drain = s.drain
	}
	deadline := time.Now().Add(drain)
	caughtUp := func() bool {
		for w := range seen {
			if seen[w].Load() < final {
				return false
			}
		}
		return true
	}
	for !caughtUp() && time.Now().Before(deadline) {
		select {
		case err := <-errc:
			return 0, counts, err
		case <-time.After(2 * time.Millisecond):
		}
	}
	done := time.Now()
	cancel()
	wg.Wait()
	counts = watchCounts{reopened: reopened.Load(), relisted: relisted.Load()}
	if !caughtUp() {
		behind := 0
		for w := range seen {
			if seen[w].Load() < final {
				behind++
			}
		}
		return 0, counts, fmt.Errorf("%d of %d watchers had not seen the last write (resourceVersion %d) %s after it (%d events delivered, %d watches re-opened, %d relists)",
			behind, watchers, final, drain, events.Load(), counts.reopened, counts.relisted)
	}
	return float64(events.Load()) / done.Sub(began).Seconds(), counts, nil
}

// objectRV is an event object's metadata.resourceVersion (0 if unreadable).
func objectRV(obj []byte, proto bool) uint64 {
	var it wire.Item
	var err error
	if proto {
		err = wire.ParseProtoEnvelope(obj, false, &it)
	} else {
		err = wire.ParseJSONItem(obj, "", "", false, &it)
	}
	if err != nil {
		return 0
	}
	return it.RV
}

// listRV lists path through t (JSON) and returns the list's resourceVersion.
func listRV(ctx context.Context, t target, path string) (uint64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, t.base+path, nil)
	req.Header.Set("User-Agent", userAgent)
	resp, err := t.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("relist %s: %s", path, resp.Status)
	}
	var l struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
		return 0, fmt.Errorf("relist %s: %w", path, err)
	}
	return strconv.ParseUint(l.Metadata.ResourceVersion, 10, 64)
}

// countEvents reads a watch stream and calls fn with each event's type and
// object bytes (JSON lines, or length-prefixed protobuf WatchEvent frames).
func countEvents(r io.Reader, proto bool, fn func(typ string, obj []byte)) {
	if !proto {
		events := wire.NewJSONEvents(r, 16<<20)
		for {
			_, typ, obj, err := events.Next()
			if err != nil {
				return
			}
			fn(typ, obj)
		}
	}
	br := bufio.NewReaderSize(r, 64<<10)
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return
		}
		frame := make([]byte, binary.BigEndian.Uint32(hdr[:]))
		if _, err := io.ReadFull(br, frame); err != nil {
			return
		}
		var ev metav1.WatchEvent
		if ev.Unmarshal(frame) != nil {
			return
		}
		fn(ev.Type, ev.Object.Raw)
	}
}

// podWatch is the 8-writer churn on bench-watch's pods.
func (b *bench) podWatch(accept string) watchSpec {
	cs := b.protoAdmin()
	return watchSpec{
		name: "pods-" + map[string]string{"": "json", protobuf: "protobuf"}[accept],
		path: "/api/v1/namespaces/bench-watch/pods", accept: accept,
		list: func(ctx context.Context) (string, error) {
			l, err := b.admin.CoreV1().Pods("bench-watch").List(ctx, metav1.ListOptions{})
			if err != nil {
				return "", err
			}
			return l.ResourceVersion, nil
		},
		patch: func(ctx context.Context, i, run int) (uint64, error) {
			patch := fmt.Sprintf(`{"metadata":{"labels":{"churn":"p%d-%d"}}}`, run, i)
			p, err := cs.CoreV1().Pods("bench-watch").Patch(ctx, fmt.Sprintf("pod-%05d", i%100), types.MergePatchType, []byte(patch), metav1.PatchOptions{})
			if err != nil {
				return 0, err
			}
			return strconv.ParseUint(p.ResourceVersion, 10, 64)
		},
	}
}

// epsWatch is the 8-writer churn on bench-eps's EndpointSlices.
func (b *bench) epsWatch(accept string) watchSpec {
	cs := b.protoAdmin()
	return watchSpec{
		name: "endpointslices",
		path: "/apis/discovery.k8s.io/v1/namespaces/" + epsNS + "/endpointslices", accept: accept,
		list: func(ctx context.Context) (string, error) {
			l, err := b.admin.DiscoveryV1().EndpointSlices(epsNS).List(ctx, metav1.ListOptions{})
			if err != nil {
				return "", err
			}
			return l.ResourceVersion, nil
		},
		patch: func(ctx context.Context, i, run int) (uint64, error) {
			patch := fmt.Sprintf(`{"metadata":{"labels":{"churn":"e%d-%d"}}}`, run, i)
			es, err := cs.DiscoveryV1().EndpointSlices(epsNS).Patch(ctx, fmt.Sprintf("eps-%03d", i%100), types.MergePatchType, []byte(patch), metav1.PatchOptions{})
			if err != nil {
				return 0, err
			}
			return strconv.ParseUint(es.ResourceVersion, 10, 64)
		},
	}
}

// muxFigures: the multiplexer online (issue 18's table).
func (b *bench) muxFigures() {
	log.Printf("online: multiplexer (EndpointSlices) and identical watchers of a non-multiplexed view")
	failed := map[string]bool{}
	for run := 0; run < b.f.runs; run++ {
		for _, t := range b.targets() {
			if failed[t.name] {
				continue
			}
			spec := b.epsWatch("")
			// The hub's figure counts every watch it holds (its own included) above
			// what the apiserver had before the hub started; direct, the watches the
			// 8 watchers add.
			base := b.epsBase
			if t.name == "direct" {
				base, _ = b.apiserverWatches("endpointslices")
			}
			var upstream float64
			var uerr error
			spec.during = func() {
				time.Sleep(500 * time.Millisecond) // the watchers registered
				n, err := b.apiserverWatches("endpointslices")
				upstream, uerr = n-base, err
			}
			rate, err := b.watchLoad(t, run, spec)
			b.res.add("watch events/s to 8 watchers of EndpointSlices (multiplexed)", "events/s", t.name, rate, err)
			if uerr == nil && err == nil {
				b.res.add("upstream watches of EndpointSlices with 8 local watchers (apiserver's own metric)", "watches", t.name, upstream, nil)
			}
			failed[t.name] = err != nil
		}
	}
	// (JSON: the watch figure in online(), which also samples the RSS meanwhile.)
	for _, enc := range []struct{ label, accept string }{{"protobuf", protobuf}} {
		failed := map[string]bool{}
		for run := 0; run < b.f.runs; run++ {
			for _, t := range b.targets() {
				if failed[t.name] {
					continue
				}
				rate, err := b.watchLoad(t, run, b.podWatch(enc.accept))
				b.res.add("watch events/s to 8 identical watchers of a non-multiplexed view (pods, "+enc.label+")", "events/s", t.name, rate, err)
				failed[t.name] = err != nil
			}
		}
	}
	log.Printf("online: event latency through the multiplexer")
	for run := 0; run < b.f.runs; run++ {
		for _, t := range b.targets() {
			p50, p99, err := b.eventLatency(t, run)
			b.res.add("event latency p99, cloud write to local watcher (EndpointSlices, multiplexed)", "ms", t.name, p99, err)
			b.res.add("event latency p50, cloud write to local watcher (EndpointSlices, multiplexed)", "ms", t.name, p50, err)
		}
	}
}

// eventLatency patches one EndpointSlice 200 times, 10 ms apart, with a sequence
// number, and measures from just before each patch is sent until a watcher
// (protobuf, as kube-proxy) receives the event carrying it.
func (b *bench) eventLatency(t target, run int) (p50, p99 float64, err error) {
	const n = 200
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cs := b.protoAdmin()
	l, err := b.admin.DiscoveryV1().EndpointSlices(epsNS).List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, 0, err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, t.base+"/apis/discovery.k8s.io/v1/namespaces/"+epsNS+"/endpointslices?watch=true&resourceVersion="+l.ResourceVersion, nil)
	req.Header.Set("User-Agent", "kube-proxy/v1.36.3 (linux/amd64) kubernetes/bench")
	req.Header.Set("Accept", protobuf)
	resp, err := t.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("watch: %s", resp.Status)
	}
	var mu sync.Mutex
	sent := make([]time.Time, n)
	lat := make([]float64, 0, n)
	got := make(chan struct{}, n)
	marker := fmt.Sprintf("lat-%s-%d-", t.name, run)
	go countEvents(resp.Body, true, func(typ string, obj []byte) {
		i := bytes.Index(obj, []byte(marker))
		if typ != "MODIFIED" || i < 0 {
			return
		}
		rest := obj[i+len(marker):]
		j := 0
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		k, _ := strconv.Atoi(string(rest[:j]))
		mu.Lock()
		if k < n && !sent[k].IsZero() {
			lat = append(lat, float64(time.Since(sent[k]).Microseconds())/1000)
			sent[k] = time.Time{}
		}
		mu.Unlock()
		got <- struct{}{}
	})
	for k := 0; k < n; k++ {
		patch := fmt.Sprintf(`{"metadata":{"labels":{"latency":"%s%d"}}}`, marker, k)
		mu.Lock()
		sent[k] = time.Now()
		mu.Unlock()
		if _, err := cs.DiscoveryV1().EndpointSlices(epsNS).Patch(ctx, "eps-000", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			return 0, 0, err
		}
		time.Sleep(10 * time.Millisecond)
	}
	deadline := time.After(10 * time.Second)
	for {
		mu.Lock()
		done := len(lat)
		mu.Unlock()
		if done >= n {
			break
		}
		select {
		case <-got:
		case <-deadline:
			return 0, 0, fmt.Errorf("the watcher received %d of %d marked events within 10s", done, n)
		}
	}
	slices.Sort(lat)
	return lat[len(lat)/2], lat[len(lat)*99/100], nil
}

// fileRSS splits the hub's file-backed resident memory by what is mapped, from
// /proc/<pid>/smaps: the cache file (bbolt's mmap), the executable, the rest.
func (h *hubProc) fileRSS() (cache, binary, other int64) {
	if h.cmd == nil || h.cmd.Process == nil {
		return
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps", h.cmd.Process.Pid))
	if err != nil {
		return
	}
	defer f.Close()
	root := filepath.Join(h.b.dir, "hub")
	kind := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			kind = ""
			if len(fields) >= 6 && strings.HasPrefix(fields[5], "/") {
				switch {
				case strings.HasPrefix(fields[5], root):
					kind = "cache"
				case fields[5] == h.b.f.hubBin:
					kind = "binary"
				default:
					kind = "other"
				}
			}
			continue
		}
		if kind == "" || len(fields) < 2 || fields[0] != "Rss:" {
			continue
		}
		kb, _ := strconv.ParseInt(fields[1], 10, 64)
		switch kind {
		case "cache":
			cache += kb * 1024
		case "binary":
			binary += kb * 1024
		default:
			other += kb * 1024
		}
	}
	return
}

// idleSettle is how long the hub is left alone after the lists before its idle memory
// is sampled: the store's default Options.DropPagesIdle (5 s), after which the hub
// drops the cache file's pages the lists mapped (internal/store/mapdrop.go), plus 1 s.
// Sampled earlier, the file-backed figure counts the last list's pages still mapped.
const idleSettle = 6 * time.Second

// memFigures records the hub's memory, idle, under the given name: anonymous
// (heap, stacks) and file-backed split into the cache file's map and the binary.
func (b *bench) memFigures(when string) {
	m := b.hub.mem()
	cache, bin, other := b.hub.fileRSS()
	b.res.add("hub RSS anonymous (heap, stacks), idle after the 10k-pod lists, "+when, "MiB", "hub", float64(m.anon)/(1<<20), nil)
	b.res.add("hub RSS file-backed, idle after the 10k-pod lists, "+when, "MiB", "hub", float64(m.file)/(1<<20), nil)
	b.res.add("↳ the cache file's map (bbolt mmap), "+when, "MiB", "hub", float64(cache)/(1<<20), nil)
	b.res.add("↳ the yurthub binary, "+when, "MiB", "hub", float64(bin)/(1<<20), nil)
	b.res.add("↳ other files, "+when, "MiB", "hub", float64(other)/(1<<20), nil)
}

// heapProfile saves the hub's heap profile (inuse and alloc, gzipped pprof) and its
// text form, whose tail is runtime.MemStats (HeapInuse, HeapIdle, HeapReleased,
// StackInuse: what RssAnon is made of), into --profile-dir.
func (h *hubProc) heapProfile(name string) {
	if h.b.f.profileDir == "" {
		return
	}
	if err := os.MkdirAll(h.b.f.profileDir, 0o755); err != nil {
		log.Printf("profile: %v", err)
		return
	}
	for _, q := range []struct{ query, file string }{{"", name + ".pprof"}, {"?debug=1", name + ".txt"}} {
		resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/heap%s", h.serveAddr, q.query))
		if err != nil {
			log.Printf("profile: %v", err)
			return
		}
		f, err := os.Create(filepath.Join(h.b.f.profileDir, q.file))
		if err == nil {
			_, _ = io.Copy(f, resp.Body)
			f.Close()
		}
		resp.Body.Close()
	}
}

// trace saves an execution trace of the hub over d (its /debug/pprof/trace) into
// --profile-dir.
func (h *hubProc) trace(name string, d time.Duration) {
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/trace?seconds=%g", h.serveAddr, d.Seconds()))
	if err != nil {
		log.Printf("trace: %v", err)
		return
	}
	defer resp.Body.Close()
	if err := os.MkdirAll(h.b.f.profileDir, 0o755); err != nil {
		log.Printf("trace: %v", err)
		return
	}
	f, err := os.Create(filepath.Join(h.b.f.profileDir, name))
	if err != nil {
		log.Printf("trace: %v", err)
		return
	}
	defer f.Close()
	_, _ = io.Copy(f, resp.Body)
}

// cpuProfile saves a CPU profile of the hub over seconds (its /debug/pprof,
// --profiling is on by default) into --profile-dir.
func (h *hubProc) cpuProfile(name string, seconds float64) {
	if err := os.MkdirAll(h.b.f.profileDir, 0o755); err != nil {
		log.Printf("profile: %v", err)
		return
	}
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", h.serveAddr, max(1, int(seconds))))
	if err != nil {
		log.Printf("profile: %v", err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(filepath.Join(h.b.f.profileDir, name))
	if err != nil {
		log.Printf("profile: %v", err)
		return
	}
	defer f.Close()
	_, _ = io.Copy(f, resp.Body)
}
