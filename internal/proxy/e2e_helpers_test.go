package proxy_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/yurthub/yurthub/internal/certs"
	"github.com/yurthub/yurthub/internal/config"
	"github.com/yurthub/yurthub/internal/daemon"
	"github.com/yurthub/yurthub/internal/testkube"
)

const testNode = "edge-1"

// hub is a daemon.Run started in-process.
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

// hubConfig is the config of a hub in front of servers, credentials as in
// --bootstrap-mode=kubeletcertificate with a node client cert from the cluster CA.
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

// startHub runs daemon.Run with cfg and waits until /v1/readyz answers 200.
func startHub(t testing.TB, cfg *config.Config) *hub {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h := &hub{cfg: cfg, cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- runDaemon(ctx, t, cfg) }()
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
func (h *hub) secureURL() string {
	return "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(h.cfg.ProxySecurePort))
}
func (h *hub) serveURL() string {
	return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(h.cfg.ServePort))
}

// restConfig is a client-go config that talks to the hub's plain port with userAgent
// and no credentials of its own (the hub's certificate is used upstream).
func (h *hub) restConfig(userAgent string) *rest.Config {
	return &rest.Config{Host: h.proxyURL(), UserAgent: userAgent, QPS: -1}
}

// metric returns the value of a sample line "<name>{labels} value" from /metrics whose
// name+labels contain all of want, or -1 when absent.
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
		if !strings.HasPrefix(line, name) || strings.HasPrefix(line, "#") {
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

// serverHealthy is the hub's view of one backend (node_yurthub_server_healthy_status).
func (h *hub) serverHealthy(t testing.TB, server string) bool {
	return h.metric(t, "node_yurthub_server_healthy_status", `server="`+server+`"`) == 1
}

func waitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// writeServingCert writes <root-dir>/pki/yurthub-server-current.pem: a certificate for
// 127.0.0.1 from a throwaway CA, returned as a pool for clients to trust.
func writeServingCert(t testing.TB, rootDir string) *x509.CertPool {
	t.Helper()
	caCert, caKey := selfSignedCA(t, "test serving CA")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "system:node:" + testNode},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	pemBytes := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})...)
	dir := filepath.Join(rootDir, "pki")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, certs.ServerCertFile), pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return pool
}

func selfSignedCA(t testing.TB, cn string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

// foreignClientCert is a client certificate from a CA the cluster does not trust.
func foreignClientCert(t testing.TB) tls.Certificate {
	t.Helper()
	caCert, caKey := selfSignedCA(t, "foreign CA")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(3),
		Subject:      pkix.Name{CommonName: "system:node:" + testNode, Organization: []string{"system:nodes"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// apiserverRequests sums apiserver_request_total on one apiserver for series whose
// labels contain all of want (read with the admin token, directly).
func apiserverRequests(t testing.TB, c *testkube.Cluster, s *testkube.APIServer, want ...string) float64 {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.URL()+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+c.AdminToken())
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.CAPool()}}, Timeout: 10 * time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("apiserver metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("apiserver metrics: %s", resp.Status)
	}
	v := findMetric(resp.Body, "apiserver_request_total", want...)
	if v < 0 {
		return 0
	}
	return v
}

func runDaemon(ctx context.Context, t testing.TB, cfg *config.Config) error {
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	return daemon.Run(ctx, cfg, log)
}

// listenNotify points $NOTIFY_SOCKET at a datagram socket and returns what arrives.
func listenNotify(t *testing.T) <-chan string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	ch := make(chan string, 8)
	go func() {
		buf := make([]byte, 256)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			select {
			case ch <- string(buf[:n]):
			default:
			}
		}
	}()
	return ch
}
