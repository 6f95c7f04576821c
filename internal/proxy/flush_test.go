package proxy_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/yurthub/yurthub/internal/config"
	"github.com/yurthub/yurthub/internal/loadbalancer"
	"github.com/yurthub/yurthub/internal/proxy"
	"github.com/yurthub/yurthub/internal/testkube"
)

// countingListener counts the Write calls on the connections it accepts (each one
// is a write system call: a segment the client wakes up for).
type countingListener struct {
	net.Listener
	writes atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: &l.writes}, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.n.Add(1)
	return c.Conn.Write(p)
}

// TestGetOneWrite: a GET of one object through the proxy reaches the client in one
// write, headers and body together (the apiserver sends its length). A flush of the
// headers on their own, then the body, cost every GET a second write and a second
// wake-up of the client (issue 18: GET p50 hub/direct). A watch through the same
// proxy still delivers each event as it comes.
func TestGetOneWrite(t *testing.T) {
	c := testkube.Start(t, testkube.Options{Nodes: []string{testNode}})
	c.GrantNodeReadAll(t, testNode)
	admin := kubernetes.NewForConfigOrDie(c.AdminConfig())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const ns = "flush"
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := func(name string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: corev1.PodSpec{NodeName: testNode, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	}
	if _, err := admin.CoreV1().Pods(ns).Create(ctx, pod("pod-0"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	certPEM, keyPEM := c.IssueNodeClientCert(testNode)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.CAPEM())
	rt := proxy.NewUpstreamTransport(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	u, err := url.Parse(c.URL())
	if err != nil {
		t.Fatal(err)
	}
	lb, err := loadbalancer.New([]*url.URL{u}, loadbalancer.Options{Mode: config.LBModeRoundRobin, InitiallyHealthy: true})
	if err != nil {
		t.Fatal(err)
	}
	p, err := proxy.New(proxy.Options{WorkingMode: config.WorkingModeCloud, LB: lb, CertTransport: rt, TokenTransport: rt})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	srv := &http.Server{Handler: p}
	go srv.Serve(cl)
	defer srv.Close()
	base := "http://" + ln.Addr().String()

	// One keep-alive connection; the first GET warms it (and the upstream one).
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}}
	get := func() (int64, int) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/namespaces/"+ns+"/pods/pod-0", nil)
		req.Header.Set("User-Agent", "kubelet/v1.36.3")
		req.Header.Set("Accept", "application/json")
		before := cl.writes.Load()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"pod-0"`) {
			t.Fatalf("GET pod-0: %d %v %.200s", resp.StatusCode, err, body)
		}
		// The server's last write happens before the client can read the end of
		// the body; nothing else is written on this connection.
		return cl.writes.Load() - before, len(body)
	}
	get()
	const gets = 20
	var total int64
	var size int
	for range gets {
		n, b := get()
		total, size = total+n, b
	}
	t.Logf("GET of one pod (%d bytes of JSON): %d writes to the client in %d GETs", size, total, gets)
	if total != gets {
		t.Errorf("%d writes to the client for %d GETs of one pod, want one each (headers and body in one write)", total, gets)
	}

	// A watch still streams: the event for a pod created after the watch opened
	// arrives while the watch is open.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/namespaces/"+ns+"/pods?watch=true&resourceVersion=0&allowWatchBookmarks=false", nil)
	req.Header.Set("User-Agent", "kubelet/v1.36.3")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := make(chan string, 16)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	if _, err := admin.CoreV1().Pods(ns).Create(ctx, pod("pod-1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for seen := false; !seen; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("watch ended before the event for pod-1")
			}
			seen = strings.Contains(l, `"ADDED"`) && strings.Contains(l, `"pod-1"`)
		case <-deadline:
			t.Fatal(fmt.Errorf("no event for pod-1 within 10s through the proxy's watch"))
		}
	}
	cancel()
	resp.Body.Close()
	wg.Wait()
}
