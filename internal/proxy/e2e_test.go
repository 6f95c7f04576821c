package proxy_test

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/yurthub/yurthub/internal/config"
	"github.com/yurthub/yurthub/internal/testkube"
)

// The daemon starts, becomes ready and answers with a metav1.Status 503 when no
// apiserver is reachable; the secure port stays closed without a serving certificate.
func TestHubStartsWithoutCloud(t *testing.T) {
	c := testkube.Start(t, testkube.Options{Nodes: []string{testNode}})
	dead := fmt.Sprintf("https://127.0.0.1:%d", freePort(t)) // nothing listens there
	cfg := hubConfig(t, c, dead)
	notify := listenNotify(t)
	h := startHub(t, cfg)
	select {
	case msg := <-notify:
		if msg != "READY=1" {
			t.Fatalf("first sd_notify message %q, want READY=1", msg)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no READY=1 on $NOTIFY_SOCKET with the cloud unreachable")
	}

	resp, err := http.Get(h.proxyURL() + "/api/v1/namespaces/default/pods")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("proxy with no cloud: %s %s, want 503", resp.Status, body)
	}
	var st metav1.Status
	if err := json.Unmarshal(body, &st); err != nil || st.Kind != "Status" || st.Reason != metav1.StatusReasonServiceUnavailable ||
		!strings.Contains(st.Message, "unreachable") {
		t.Fatalf("body %s is not a ServiceUnavailable metav1.Status saying the cloud is unreachable (err %v)", body, err)
	}
	if v := h.metric(t, "node_yurthub_server_healthy_status", `server="`+dead+`"`); v != 0 {
		t.Fatalf("node_yurthub_server_healthy_status for the dead server = %v, want 0", v)
	}
	for _, name := range []string{"node_yurthub_rejected_requests_counter", "node_yurthub_in_flight_requests_collector",
		"node_yurthub_aggregated_in_flight_requests_collector", "node_yurthub_cache_writes_total", "node_yurthub_cache_active_streams"} {
		if h.metric(t, name) < 0 {
			t.Errorf("/metrics has no %s", name)
		}
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(h.secureURL(), "https://"), time.Second); err == nil {
		t.Fatal("secure port open without a serving certificate")
	}
	for _, path := range []string{"/v1/healthz", "/debug/pprof/"} {
		resp, err := http.Get(h.serveURL() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", path, resp.Status)
		}
	}
}

// One apiserver behind the hub: credentials, protobuf, gzip, upgrade, the Lease
// heartbeat, the secure port, and losing and regaining the cloud.
func TestProxyAgainstAPIServer(t *testing.T) {
	c := testkube.Start(t, testkube.Options{Nodes: []string{testNode}})
	c.GrantNodeReadAll(t, testNode)
	cfg := hubConfig(t, c, c.URL())
	servingCA := writeServingCert(t, cfg.RootDir)
	h := startHub(t, cfg)
	waitUntil(t, 10*time.Second, "the apiserver to be healthy", func() bool { return h.serverHealthy(t, c.URL()) })
	admin := kubernetes.NewForConfigOrDie(c.AdminConfig())
	ctx := context.Background()

	t.Run("credentials", func(t *testing.T) {
		// Without a token the hub's client certificate is used upstream.
		who := func(cfg *rest.Config) string {
			cs := kubernetes.NewForConfigOrDie(cfg)
			r, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnReview, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("SelfSubjectReview through the hub: %v", err)
			}
			return r.Status.UserInfo.Username
		}
		if u := who(h.restConfig("kubelet")); u != "system:node:"+testNode {
			t.Fatalf("request without a token reached the apiserver as %q, want the hub's system:node:%s", u, testNode)
		}
		withToken := h.restConfig("kubectl")
		withToken.BearerToken = c.AdminToken()
		if u := who(withToken); u == "system:node:"+testNode || u == "" {
			t.Fatalf("request with a bearer token reached the apiserver as %q, want the token's user", u)
		}
	})

	t.Run("protobuf", func(t *testing.T) {
		cfg := h.restConfig("kubelet")
		cfg.ContentType = "application/vnd.kubernetes.protobuf"
		cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf"
		cs := kubernetes.NewForConfigOrDie(cfg)
		ns, err := cs.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
		if err != nil || ns.Name != "default" {
			t.Fatalf("protobuf GET through the hub: %v", err)
		}
	})

	t.Run("gzip", func(t *testing.T) {
		const n = 20 // 20 x 8KiB: above the apiserver's 128KiB compression threshold
		ns := "gzip"
		if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i)}, Data: map[string]string{"d": strings.Repeat("x", 8<<10)}}
			if _, err := admin.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		req, _ := http.NewRequest(http.MethodGet, h.proxyURL()+"/api/v1/namespaces/"+ns+"/configmaps", nil)
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("LIST with Accept-Encoding gzip: %s, Content-Encoding %q, want 200 gzip", resp.Status, resp.Header.Get("Content-Encoding"))
		}
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatalf("body is not gzip: %v", err)
		}
		var list corev1.ConfigMapList
		if err := json.NewDecoder(zr).Decode(&list); err != nil || len(list.Items) != n {
			t.Fatalf("gunzipped list: %d items, err %v; want %d", len(list.Items), err, n)
		}
	})

	t.Run("upgrade", func(t *testing.T) {
		// The apiserver serves watches over WebSocket (an HTTP/1.1 Upgrade): a real
		// upgrade that needs no kubelet, checked in both directions (the event
		// reaches the client; the client's ping and close reach the apiserver).
		ns := "default"
		if _, err := admin.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "ws-probe"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		ev := websocketWatchFirstEvent(t, strings.TrimPrefix(h.proxyURL(), "http://"),
			"/api/v1/namespaces/"+ns+"/configmaps?watch=true&fieldSelector=metadata.name%3Dws-probe")
		if ev.Type != "ADDED" || !strings.Contains(string(ev.Object), `"ws-probe"`) {
			t.Fatalf("first websocket watch event = %s %s, want ADDED ws-probe", ev.Type, ev.Object)
		}
	})

	t.Run("lease", func(t *testing.T) {
		waitUntil(t, 15*time.Second, "the hub to create Lease kube-node-lease/"+testNode, func() bool {
			l, err := admin.CoordinationV1().Leases("kube-node-lease").Get(ctx, testNode, metav1.GetOptions{})
			return err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity == testNode && l.Spec.RenewTime != nil
		})
	})

	t.Run("secure-port", func(t *testing.T) {
		certPEM, keyPEM := c.IssueNodeClientCert("some-client")
		good, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		client := func(certs ...tls.Certificate) *http.Client {
			return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
				ForceAttemptHTTP2: true,
				TLSClientConfig:   &tls.Config{RootCAs: servingCA, Certificates: certs},
			}}
		}
		waitUntil(t, 10*time.Second, "the secure port to open", func() bool {
			_, err := client(good).Get(h.secureURL() + "/version")
			return err == nil
		})
		resp, err := client(good).Get(h.secureURL() + "/api/v1/namespaces/default")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
			t.Fatalf("secure port with a cluster-CA client cert: %s over %s, want 200 over HTTP/2", resp.Status, resp.Proto)
		}
		foreign := foreignClientCert(t)
		sendForeign := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: servingCA,
			// Sent even though the hub names the cluster CA as the one it accepts
			// (a Go client would otherwise send no certificate at all).
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &foreign, nil }}}}
		if _, err := sendForeign.Get(h.secureURL() + "/version"); err == nil {
			t.Fatal("secure port accepted a client certificate from a foreign CA")
		}
		// No certificate: the handshake succeeds (pods come with a bearer token);
		// without a token either, only the node itself (here: loopback) is served.
		resp, err = client().Get(h.secureURL() + "/api/v1/namespaces/default")
		if err != nil {
			t.Fatalf("secure port, no client certificate, from loopback: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("secure port, no client certificate, from loopback: %s, want 200 (forwarded as the node)", resp.Status)
		}
	})

	t.Run("cloud-lost-and-back", func(t *testing.T) {
		c.APIServer().Stop(t)
		waitUntil(t, 10*time.Second, "the hub to notice the cloud is gone", func() bool { return !h.serverHealthy(t, c.URL()) })
		resp, err := http.Get(h.proxyURL() + "/api/v1/namespaces/default")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("cloud gone: %s, want 503 from the local handler", resp.Status)
		}
		c.APIServer().Start(t)
		waitUntil(t, 10*time.Second, "the hub to notice the cloud is back", func() bool { return h.serverHealthy(t, c.URL()) })
		resp, err = http.Get(h.proxyURL() + "/api/v1/namespaces/default")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("cloud back: %s, want 200", resp.Status)
		}
	})
}

// Two kube-apiservers on one etcd: rr spreads, priority sticks to the first, and
// stopping one moves traffic to the other with no failed informer request.
func TestLoadBalancing(t *testing.T) {
	c := testkube.Start(t, testkube.Options{Nodes: []string{testNode}})
	first, second := c.APIServer(), c.StartExtraAPIServer(t)
	c.GrantNodeReadAll(t, testNode)
	ctx := context.Background()

	listLimitRanges := func(h *hub, n int) {
		cs := kubernetes.NewForConfigOrDie(h.restConfig("lbtest"))
		for i := 0; i < n; i++ {
			if _, err := cs.CoreV1().LimitRanges("default").List(ctx, metav1.ListOptions{}); err != nil {
				t.Fatalf("LIST through the hub: %v", err)
			}
		}
	}
	lists := func(s *testkube.APIServer) float64 {
		return apiserverRequests(t, c, s, `resource="limitranges"`, `verb="LIST"`)
	}

	for _, mode := range []string{config.LBModeRoundRobin, config.LBModePriority} {
		t.Run(mode, func(t *testing.T) {
			cfg := hubConfig(t, c, first.URL(), second.URL())
			cfg.LBMode = mode
			h := startHub(t, cfg)
			waitUntil(t, 10*time.Second, "both apiservers healthy", func() bool {
				return h.serverHealthy(t, first.URL()) && h.serverHealthy(t, second.URL())
			})
			a0, b0 := lists(first), lists(second)
			listLimitRanges(h, 40)
			da, db := lists(first)-a0, lists(second)-b0
			t.Logf("%s: 40 LISTs -> first %v, second %v", mode, da, db)
			if mode == config.LBModeRoundRobin && (da < 15 || db < 15) {
				t.Fatalf("rr: first got %v and second %v of 40 requests, want both at least 15", da, db)
			}
			if mode == config.LBModePriority && (da != 40 || db != 0) {
				t.Fatalf("priority: first got %v and second %v of 40 requests, want 40 and 0", da, db)
			}
		})
	}

	t.Run("failover", func(t *testing.T) {
		cfg := hubConfig(t, c, first.URL(), second.URL())
		h := startHub(t, cfg)
		waitUntil(t, 10*time.Second, "both apiservers healthy", func() bool {
			return h.serverHealthy(t, first.URL()) && h.serverHealthy(t, second.URL())
		})
		adminCfg := c.AdminConfig() // talks to first directly, until first is stopped
		admin := kubernetes.NewForConfigOrDie(adminCfg)
		const ns = "failover"
		if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		var (
			mu       sync.Mutex
			failures []string
			requests int
		)
		icfg := h.restConfig("kubelet/v1.36.3")
		icfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
			return roundTripFunc(func(req *http.Request) (*http.Response, error) {
				resp, err := rt.RoundTrip(req)
				mu.Lock()
				defer mu.Unlock()
				requests++
				if err != nil {
					failures = append(failures, fmt.Sprintf("%s %s: %v", req.Method, req.URL, err))
				} else if resp.StatusCode >= 500 || resp.StatusCode == 429 {
					failures = append(failures, fmt.Sprintf("%s %s: %s", req.Method, req.URL, resp.Status))
				}
				return resp, err
			})
		}
		cs := kubernetes.NewForConfigOrDie(icfg)
		factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns))
		inf := factory.Core().V1().ConfigMaps().Informer()
		var watchErrs []string
		_ = inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
			mu.Lock()
			watchErrs = append(watchErrs, err.Error())
			mu.Unlock()
		})
		ictx, stop := context.WithCancel(ctx)
		defer stop()
		factory.Start(ictx.Done())
		if !cache.WaitForCacheSync(ictx.Done(), inf.HasSynced) {
			t.Fatal("informer did not sync")
		}
		has := func(name string) func() bool {
			return func() bool { _, ok, _ := inf.GetStore().GetByKey(ns + "/" + name); return ok }
		}
		create := func(name string) {
			if _, err := admin.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		create("before")
		waitUntil(t, 10*time.Second, "the informer to see configmap before", has("before"))
		// Also keep plain GETs going through the hub while a backend goes away.
		getErrs := make(chan error, 1)
		gctx, gstop := context.WithCancel(ctx)
		go func() {
			plain := kubernetes.NewForConfigOrDie(h.restConfig("getter"))
			var first error
			for gctx.Err() == nil {
				if _, err := plain.CoreV1().Namespaces().Get(gctx, ns, metav1.GetOptions{}); err != nil && gctx.Err() == nil && first == nil {
					first = err
				}
				time.Sleep(10 * time.Millisecond)
			}
			getErrs <- first
		}()

		// Stop each apiserver in turn, so the informer's watch is cut at least once
		// whichever backend it was on.
		for phase, s := range []*testkube.APIServer{second, first} {
			s.Stop(t)
			if s == first {
				adminCfg.Host = second.URL()
				admin = kubernetes.NewForConfigOrDie(adminCfg)
			}
			for i := 0; i < 5; i++ {
				name := fmt.Sprintf("after-%d-%d", phase, i)
				create(name)
				waitUntil(t, 30*time.Second, "the informer to see configmap "+name+" after the failover", has(name))
			}
			if h.serverHealthy(t, s.URL()) {
				t.Fatalf("the stopped apiserver %s is still marked healthy", s.URL())
			}
			if s == second {
				s.Start(t)
				waitUntil(t, 10*time.Second, "the restarted apiserver to be healthy again", func() bool { return h.serverHealthy(t, s.URL()) })
			}
		}
		gstop()
		if err := <-getErrs; err != nil {
			t.Errorf("a GET through the hub failed while a backend went away: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		t.Logf("informer made %d requests through the hub; watch ends seen by the reflector: %v", requests, watchErrs)
		if len(failures) > 0 {
			t.Fatalf("informer requests through the hub failed during the failover:\n%s", strings.Join(failures, "\n"))
		}
		if requests < 2 {
			t.Fatalf("the informer made %d request(s): its watch was never cut, the test proved nothing", requests)
		}
	})
}

var authnReview = authnv1.SelfSubjectReview{}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type wsEvent struct {
	Type   string          `json:"type"`
	Object json.RawMessage `json:"object"`
}

// websocketWatchFirstEvent opens a watch over WebSocket through the hub's plain port
// with a hand-written RFC 6455 handshake and returns the first event frame. Then it
// checks the other direction of the upgraded connection: a ping the client sends
// must come back from the apiserver as a pong with the same payload, and a close
// frame must end the stream.
func websocketWatchFirstEvent(t *testing.T, hostport, path string) wsEvent {
	t.Helper()
	conn, err := net.DialTimeout("tcp", hostport, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: wstest\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://%s\r\n\r\n", path, hostport, hostport)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("websocket handshake through the hub: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("websocket handshake: %s %s, want 101 Switching Protocols", resp.Status, b)
	}
	var ev wsEvent
	for {
		opcode, payload, err := readWSFrame(br)
		if err != nil {
			t.Fatalf("read websocket frame: %v", err)
		}
		if opcode != 1 && opcode != 2 {
			continue // control frame
		}
		if err := json.Unmarshal(payload, &ev); err != nil {
			t.Fatalf("websocket frame is not a watch event: %v: %s", err, payload)
		}
		break
	}

	// Client to server through the hub: ping, then close.
	const ping = "yurthub-upgrade-ping"
	if _, err := conn.Write(maskedWSFrame(0x9, []byte(ping))); err != nil {
		t.Fatalf("send websocket ping: %v", err)
	}
	for {
		opcode, payload, err := readWSFrame(br)
		if err != nil {
			t.Fatalf("waiting for the pong to a ping sent through the hub: %v", err)
		}
		if opcode == 0xA {
			if string(payload) != ping {
				t.Fatalf("pong payload %q, want %q", payload, ping)
			}
			break
		}
	}
	if _, err := conn.Write(maskedWSFrame(0x8, []byte{0x03, 0xe8})); err != nil { // 1000: normal closure
		t.Fatalf("send websocket close: %v", err)
	}
	for {
		opcode, _, err := readWSFrame(br)
		if errors.Is(err, io.EOF) || opcode == 0x8 {
			break // the apiserver ended the watch
		}
		if err != nil {
			t.Fatalf("after a close frame sent through the hub: %v, want the stream to end", err)
		}
	}
	return ev
}

// readWSFrame reads one unmasked (server to client) WebSocket frame.
func readWSFrame(br *bufio.Reader) (opcode byte, payload []byte, err error) {
	var hdr [2]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return 0, nil, err
	}
	opcode = hdr[0] & 0x0f
	n := uint64(hdr[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > 64<<20 {
		return 0, nil, fmt.Errorf("websocket frame of %d bytes", n)
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(br, payload); err != nil {
		return 0, nil, err
	}
	return opcode, payload, nil
}

// maskedWSFrame is a final client-to-server frame (clients must mask, RFC 6455 5.3)
// with a payload of at most 125 bytes.
func maskedWSFrame(opcode byte, payload []byte) []byte {
	mask := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	f := []byte{0x80 | opcode, 0x80 | byte(len(payload)), mask[0], mask[1], mask[2], mask[3]}
	for i, b := range payload {
		f = append(f, b^mask[i%4])
	}
	return f
}

// The hub renews the node Lease every --heartbeat-interval-seconds only while kubelet
// is seen (a kubelet request through the hub) within --kubelet-health-grace-period.
func TestHeartbeatFollowsKubelet(t *testing.T) {
	c := testkube.Start(t, testkube.Options{Nodes: []string{testNode}})
	c.GrantNodeReadAll(t, testNode)
	cfg := hubConfig(t, c, c.URL())
	cfg.HeartbeatInterval = time.Second
	cfg.KubeletHealthGracePeriod = 3 * time.Second
	h := startHub(t, cfg)
	admin := kubernetes.NewForConfigOrDie(c.AdminConfig())
	ctx := context.Background()
	renewTime := func() time.Time {
		l, err := admin.CoordinationV1().Leases("kube-node-lease").Get(ctx, testNode, metav1.GetOptions{})
		if err != nil || l.Spec.RenewTime == nil {
			return time.Time{}
		}
		return l.Spec.RenewTime.Time
	}
	waitUntil(t, 10*time.Second, "the hub to create the node Lease", func() bool { return !renewTime().IsZero() })
	// No kubelet traffic: after the grace period the renewals stop.
	time.Sleep(cfg.KubeletHealthGracePeriod + 2*cfg.HeartbeatInterval)
	r1 := renewTime()
	time.Sleep(3 * cfg.HeartbeatInterval)
	if r2 := renewTime(); !r2.Equal(r1) {
		t.Fatalf("lease renewed at %s after kubelet was silent past the grace period (last %s)", r2, r1)
	}
	// kubelet shows up: renewals resume.
	kubelet := kubernetes.NewForConfigOrDie(h.restConfig("kubelet/v1.36.3"))
	if _, err := kubelet.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "renewals to resume once kubelet is seen", func() bool { return renewTime().After(r1) })
}

// Token mode without the bootstrap's files: the daemon runs, /v1/readyz names what is
// missing, the proxy answers 503.
func TestTokenModeWithoutCredentials(t *testing.T) {
	c := testkube.Start(t, testkube.Options{Nodes: []string{testNode}})
	cfg := hubConfig(t, c, c.URL())
	cfg.BootstrapMode = config.BootstrapModeToken
	cfg.KubeletCAFile, cfg.KubeletClientCertificate = "", ""
	ctx, cancel := context.WithCancel(context.Background())
	h := &hub{cfg: cfg, cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- runDaemon(ctx, t, cfg) }()
	t.Cleanup(h.stop)
	var body string
	waitUntil(t, 10*time.Second, "the hub server", func() bool {
		resp, err := http.Get(h.serveURL() + "/v1/readyz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		// Not ready for want of credentials, once the proxy port is open.
		return resp.StatusCode == http.StatusServiceUnavailable && !strings.Contains(body, "proxy port is not open")
	})
	if strings.Contains(body, "[-]proxy") {
		t.Fatalf("/v1/readyz = %q; the proxy port should be open without credentials", body)
	}
	if !strings.Contains(body, "certificates") || !strings.Contains(body, filepath.Join(cfg.PKIDir(), "ca.crt")) {
		t.Fatalf("/v1/readyz = %q; want the certificates check naming %s", body, filepath.Join(cfg.PKIDir(), "ca.crt"))
	}
	resp, err := http.Get(h.proxyURL() + "/api/v1/namespaces/default")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("proxy without credentials: %s, want 503", resp.Status)
	}
}
