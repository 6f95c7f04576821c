package daemon

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
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
	"k8s.io/client-go/util/keyutil"

	"github.com/yurthub/yurthub/internal/certs"
	"github.com/yurthub/yurthub/internal/config"
	"github.com/yurthub/yurthub/internal/testenv"
	"github.com/yurthub/yurthub/internal/testkube"
)

const joinNode = "edge-1"

// joinCluster is a control plane prepared for token join as kubeadm init leaves it:
// kube-controller-manager signing CSRs (bootstrap signer, token cleaner), cluster-info,
// the bootstrappers' RBAC, a bootstrap token, and the node object. signing is
// --cluster-signing-duration (0: default).
func joinCluster(t *testing.T, signing time.Duration) (*testkube.Cluster, string) {
	t.Helper()
	c := testkube.Start(t, testkube.Options{Nodes: []string{joinNode}, ControllerManager: true, CSRSigningDuration: signing})
	c.PrepareTokenBootstrap(t)
	token := c.CreateBootstrapToken(t)
	admin := kubernetes.NewForConfigOrDie(c.AdminConfig())
	if _, err := admin.CoreV1().Nodes().Create(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: joinNode}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The bootstrap signer adds the token's signature to cluster-info.
	id, _, _ := strings.Cut(token, ".")
	waitUntil(t, 60*time.Second, "cluster-info signed for the token", func() error {
		cm, err := admin.CoreV1().ConfigMaps("kube-public").Get(context.Background(), "cluster-info", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if _, ok := cm.Data["jws-kubeconfig-"+id]; !ok {
			return fmt.Errorf("no jws-kubeconfig-%s yet", id)
		}
		return nil
	})
	return c, token
}

// joinConfig is a token-mode hub for joinNode in front of c, with root as --root-dir.
func joinConfig(t *testing.T, c *testkube.Cluster, root string) *config.Config {
	t.Helper()
	u, _ := url.Parse(c.URL())
	cfg := config.Default()
	cfg.ServerAddrs, cfg.NodeName = []*url.URL{u}, joinNode
	cfg.ServePort, cfg.ProxyPort, cfg.ProxySecurePort = freeLoopbackPort(t), freeLoopbackPort(t), freeLoopbackPort(t)
	cfg.RootDir, cfg.DiskCachePath = filepath.Join(root, "hub"), filepath.Join(root, "no-cache")
	cfg.EnableDummyIf, cfg.EnableIPTables = false, false
	cfg.HeartbeatInterval = 2 * time.Second
	cfg.HubCertOrganizations = []string{"org-a"}
	return cfg
}

// bootstrapFile writes the bootstrap kubeconfig yurtadm writes: server, CA, token.
func bootstrapFile(t *testing.T, c *testkube.Cluster, token string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bootstrap-hub.conf")
	kc := "apiVersion: v1\nkind: Config\nclusters:\n- name: cluster\n  cluster:\n    server: " + c.URL() +
		"\n    certificate-authority-data: " + base64.StdEncoding.EncodeToString(c.CAPEM()) +
		"\nusers:\n- name: token-bootstrap-client\n  user:\n    token: " + token +
		"\ncontexts:\n- name: bootstrap\n  context:\n    cluster: cluster\n    user: token-bootstrap-client\ncurrent-context: bootstrap\n"
	if err := os.WriteFile(p, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting %s for %s: %v", timeout, what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func readyz(cfg *config.Config) (int, string) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/v1/readyz", cfg.ServePort))
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b := make([]byte, 4096)
	n, _ := resp.Body.Read(b)
	return resp.StatusCode, string(b[:n])
}

func waitReady(t *testing.T, cfg *config.Config, logs *testenv.LogBuffer, timeout time.Duration) time.Duration {
	t.Helper()
	began := time.Now()
	deadline := began.Add(timeout)
	for {
		code, body := readyz(cfg)
		if code == http.StatusOK {
			return time.Since(began)
		}
		if time.Now().After(deadline) {
			t.Fatalf("/v1/readyz not 200 after %s: %d %s\nlog:\n%s", timeout, code, body, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kubeletThroughHub is a kubelet-like client of the hub's plain proxy port.
func kubeletThroughHub(cfg *config.Config) *kubernetes.Clientset {
	rc := &rest.Config{Host: "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.ProxyPort)),
		UserAgent: "kubelet/v1.36.3 (linux/amd64) kubernetes/test", QPS: -1, Timeout: 10 * time.Second}
	rc.ContentType, rc.AcceptContentTypes = runtime.ContentTypeProtobuf, runtime.ContentTypeProtobuf+","+runtime.ContentTypeJSON
	return kubernetes.NewForConfigOrDie(rc)
}

// leaf reads the certificate a <pki>/<name> file (or link) holds.
func leaf(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			t.Fatalf("%s: no certificate", path)
		}
		if blk.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
	}
}

// checkJoined asserts what a joined hub has: ready, the proxy serving the node with
// the hub's identity, both certificates as asked, the secure port serving its
// certificate, and every pki file 0600.
func checkJoined(t *testing.T, c *testkube.Cluster, cfg *config.Config) {
	t.Helper()
	waitCloud(t, cfg)
	pki := cfg.PKIDir()
	client := leaf(t, filepath.Join(pki, certs.ClientCertFile))
	orgs := slices.Sorted(slices.Values(client.Subject.Organization))
	if client.Subject.CommonName != "system:node:"+joinNode || strings.Join(orgs, ",") != "openyurt:yurthub,org-a,system:nodes" {
		t.Fatalf("client certificate subject %v", client.Subject)
	}
	if _, err := client.Verify(x509.VerifyOptions{Roots: c.CAPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("client certificate not from the cluster CA: %v", err)
	}
	waitUntil(t, 30*time.Second, "the serving certificate", func() error {
		_, err := os.Stat(filepath.Join(pki, certs.ServerCertFile))
		return err
	})
	server := leaf(t, filepath.Join(pki, certs.ServerCertFile))
	if _, err := server.Verify(x509.VerifyOptions{Roots: c.CAPool(), DNSName: "127.0.0.1"}); err != nil {
		t.Fatalf("serving certificate: %v", err)
	}
	// The secure port presents it (and asks for a client certificate of the cluster CA).
	certPEM, keyPEM := c.IssueNodeClientCert(joinNode)
	kp, _ := tls.X509KeyPair(certPEM, keyPEM)
	var conn *tls.Conn
	waitUntil(t, 20*time.Second, "the secure port", func() error {
		var err error
		conn, err = tls.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.ProxySecurePort)),
			&tls.Config{RootCAs: c.CAPool(), ServerName: "127.0.0.1", Certificates: []tls.Certificate{kp}})
		return err
	})
	if got := conn.ConnectionState().PeerCertificates[0]; got.SerialNumber.Cmp(server.SerialNumber) != 0 {
		t.Fatalf("the secure port serves serial %x, the file holds %x", got.SerialNumber, server.SerialNumber)
	}
	conn.Close()
	entries, err := os.ReadDir(pki)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		fi, err := os.Stat(filepath.Join(pki, e.Name())) // follows the -current links
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", e.Name(), fi.Mode().Perm())
		}
	}
	// The expiry metric is the client certificate's.
	_, metricsText := get(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", cfg.ServePort))
	const expiry = `node_yurthub_certificate_expiration_timestamp_seconds{kind="client"} `
	line := grepLines(metricsText, expiry)
	if v, err := strconv.ParseFloat(strings.TrimPrefix(line, expiry), 64); err != nil || int64(v) != client.NotAfter.Unix() {
		t.Errorf("/metrics: %q, want the client certificate's expiry %d", line, client.NotAfter.Unix())
	}
	if !strings.Contains(metricsText, `node_yurthub_certificate_rotations_total{kind="server"}`) {
		t.Errorf("/metrics lacks the rotations counter:\n%s", grepLines(metricsText, "certificate"))
	}
	t.Logf("joined: client certificate serial %s (O=%s), serving certificate serial %s (IPs %v), files 0600: %d in %s",
		client.SerialNumber.Text(16), strings.Join(client.Subject.Organization, ","), server.SerialNumber.Text(16), server.IPAddresses, len(entries), pki)
}

// waitCloud waits until a kubelet GET of its node through the hub is answered by the
// cloud: the health checker marks it healthy after two good probes with the hub's new
// certificate (200 ms apart).
func waitCloud(t *testing.T, cfg *config.Config) {
	t.Helper()
	waitUntil(t, 15*time.Second, "GET node through the hub", func() error {
		_, err := kubeletThroughHub(cfg).CoreV1().Nodes().Get(context.Background(), joinNode, metav1.GetOptions{})
		return err
	})
}

func logLines(logs *testenv.LogBuffer, subs ...string) []string {
	var out []string
	for _, l := range strings.Split(logs.String(), "\n") {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(l, s)
		}
		if all && l != "" {
			out = append(out, l)
		}
	}
	return out
}

// TestJoinByBootstrapFile: yurtadm's way, a bootstrap kubeconfig; the CSRs are
// approved like yurt-manager does.
func TestJoinByBootstrapFile(t *testing.T) {
	testJoin(t, func(cfg *config.Config, c *testkube.Cluster, token string) {
		cfg.BootstrapFile = bootstrapFile(t, c, token)
	})
}

// TestJoinByToken: --join-token with the right CA pin.
func TestJoinByToken(t *testing.T) {
	testJoin(t, func(cfg *config.Config, c *testkube.Cluster, token string) {
		cfg.JoinToken, cfg.DiscoveryTokenCACertHashes = token, []string{c.CACertHash()}
	})
}

// testJoin starts a hub whose bootstrap credentials set gives, and checks it joins.
func testJoin(t *testing.T, set func(cfg *config.Config, c *testkube.Cluster, token string)) {
	c, token := joinCluster(t, 0)
	c.AutoApproveCSRs(t)
	cfg := joinConfig(t, c, t.TempDir())
	set(cfg, c, token)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logs, stop := startDaemon(t, cfg)
	took := waitReady(t, cfg, logs, 60*time.Second)
	t.Logf("ready %s after start", took.Round(time.Millisecond))
	checkJoined(t, c, cfg)
	if got, _ := os.ReadFile(filepath.Join(cfg.PKIDir(), certs.CAFile)); string(got) != string(c.CAPEM()) {
		t.Fatal("ca.crt is not the cluster CA")
	}
	for _, l := range logLines(logs, "part=certs") {
		t.Log(l)
	}
	stop()
}

// TestJoinRefusals: each wrong bootstrap gives one clear error line, the hub is not
// ready, and its proxy never serves with an identity it should not have.
func TestJoinRefusals(t *testing.T) {
	c, token := joinCluster(t, 0)
	c.AutoApproveCSRs(t)
	id, _, _ := strings.Cut(token, ".")
	otherCA := "sha256:" + strings.Repeat("0", 64)
	malformed := filepath.Join(t.TempDir(), "malformed.conf")
	if err := os.WriteFile(malformed, []byte("apiVersion: v1\nkind: Config\nclusters: [[["), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		setup func(cfg *config.Config)
		want  string
	}{
		{"wrong hash", func(cfg *config.Config) { cfg.JoinToken, cfg.DiscoveryTokenCACertHashes = token, []string{otherCA} },
			"matches no --discovery-token-ca-cert-hash"},
		{"wrong token secret", func(cfg *config.Config) {
			cfg.JoinToken, cfg.DiscoveryTokenCACertHashes = id+".0000000000000000", []string{c.CACertHash()}
		}, "does not verify with the join token's secret"},
		{"unknown token", func(cfg *config.Config) {
			cfg.JoinToken, cfg.DiscoveryTokenCACertHashes = "zzzzzz.0000000000000000", []string{c.CACertHash()}
		}, `is not signed for token id \"zzzzzz\"`},
		{"malformed bootstrap file", func(cfg *config.Config) { cfg.BootstrapFile = malformed }, "is not a usable kubeconfig"},
		{"missing cluster-info", func(cfg *config.Config) {
			cfg.JoinToken, cfg.DiscoveryTokenCACertHashes = token, []string{c.CACertHash()}
			admin := kubernetes.NewForConfigOrDie(c.AdminConfig())
			if err := admin.CoreV1().ConfigMaps("kube-public").Delete(context.Background(), "cluster-info", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}, "has no kube-public/cluster-info"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := joinConfig(t, c, t.TempDir())
			tc.setup(cfg)
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			logs, stop := startDaemon(t, cfg)
			time.Sleep(8 * time.Second) // three attempts: 0s, 2s, 6s
			errs := logLines(logs, "level=ERROR")
			if len(errs) != 1 || !strings.Contains(errs[0], tc.want) {
				t.Fatalf("want one ERROR line saying %q, got %d:\n%s", tc.want, len(errs), strings.Join(errs, "\n"))
			}
			t.Logf("the error line: %s", errs[0])
			if code, body := readyz(cfg); code != http.StatusServiceUnavailable || !strings.Contains(body, "certificates") {
				t.Fatalf("readyz %d %s", code, body)
			}
			_, err := kubeletThroughHub(cfg).CoreV1().Nodes().Get(context.Background(), joinNode, metav1.GetOptions{})
			if !apierrors.IsServiceUnavailable(err) {
				t.Fatalf("the proxy answered a node GET without the hub having an identity: %v", err)
			}
			if _, err := os.Stat(filepath.Join(cfg.PKIDir(), certs.ClientCertFile)); err == nil {
				t.Fatal("a client certificate was written")
			}
			stop()
		})
	}
	// No pin at all is refused before the daemon starts (exit 2 on the command line).
	cfg := joinConfig(t, c, t.TempDir())
	cfg.JoinToken = token
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "needs --discovery-token-ca-cert-hash") {
		t.Fatalf("join token without a pin: %v", err)
	}
}

// TestJoinRotation: with kube-controller-manager signing 2m30s certificates, the hub
// rotates its client certificate by itself (a new serial) while a kubelet informer
// runs through it without one list or watch error; afterwards a hub restarted
// offline with its valid certificates serves the cache.
func TestJoinRotation(t *testing.T) {
	c, token := joinCluster(t, 150*time.Second)
	c.AutoApproveCSRs(t)
	cfg := joinConfig(t, c, t.TempDir())
	cfg.BootstrapFile = bootstrapFile(t, c, token)
	logs, stop := startDaemon(t, cfg)
	waitReady(t, cfg, logs, 60*time.Second)
	ctx := context.Background()
	admin := kubernetes.NewForConfigOrDie(c.AdminConfig())
	mkPod := func(name string) {
		t.Helper()
		_, err := admin.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PodSpec{NodeName: joinNode, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	mkPod("before")
	kubelet := kubeletThroughHub(cfg)
	waitCloud(t, cfg)
	inf, watchErrs, done := podInformer(t, kubelet)
	defer close(done)

	clientFile := filepath.Join(cfg.PKIDir(), certs.ClientCertFile)
	serverFile := filepath.Join(cfg.PKIDir(), certs.ServerCertFile)
	waitUntil(t, 30*time.Second, "the serving certificate", func() error { _, err := os.Stat(serverFile); return err })
	firstServer := leaf(t, serverFile)
	first := leaf(t, clientFile)
	began := time.Now()
	var second *x509.Certificate
	waitUntil(t, 4*time.Minute, "a rotation of the client certificate", func() error {
		second = leaf(t, clientFile)
		if second.SerialNumber.Cmp(first.SerialNumber) == 0 {
			return fmt.Errorf("still serial %s", first.SerialNumber.Text(16))
		}
		return nil
	})
	t.Logf("rotation: old serial %s (NotBefore %s, NotAfter %s) -> new serial %s after %.1fs of watching (%.1fs after the old one was issued; lifetime %s incl. the signer's 5m backdate)",
		first.SerialNumber.Text(16), first.NotBefore.UTC().Format(time.RFC3339), first.NotAfter.UTC().Format(time.RFC3339),
		second.SerialNumber.Text(16), time.Since(began).Seconds(), second.NotBefore.Sub(first.NotBefore).Seconds(), first.NotAfter.Sub(first.NotBefore))
	for _, l := range logLines(logs, "new certificate in use", "kind=client") {
		t.Log(l)
	}
	for _, l := range logLines(logs, "connections made with the previous client certificate closed") {
		t.Log(l)
	}
	mkPod("after")
	waitUntil(t, 30*time.Second, "the informer to see a pod created after the rotation", func() error {
		if _, ok, _ := inf.GetStore().GetByKey("default/after"); !ok {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if n := watchErrs.Load(); n != 0 {
		t.Fatalf("the informer through the hub saw %d list/watch errors across the rotation", n)
	}
	_, err := kubelet.CoreV1().Nodes().Get(ctx, joinNode, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("GET node with the new certificate: %v", err)
	}
	time.Sleep(2 * time.Second) // the cache manager commits what it teed

	// The cloud goes away before the next rotation: the hub tries, fails, waits, and
	// rotates once the cloud is back, without a restart.
	c.APIServer().Stop(t)
	offline := time.Now()
	waitUntil(t, 3*time.Minute, "a rotation attempt while the cloud is away", func() error {
		if len(logLines(logs, "level=ERROR", "cannot obtain the hub's certificate", "kind=client")) == 0 {
			return fmt.Errorf("no failed attempt yet")
		}
		return nil
	})
	failed := logLines(logs, "level=ERROR", "cannot obtain the hub's certificate", "kind=client")[0]
	t.Logf("offline %.1fs, rotation attempt failed: %s", time.Since(offline).Seconds(), failed)
	c.APIServer().Start(t)
	back := time.Now()
	var third *x509.Certificate
	// Up to 3 minutes: the retry backoff may be at its 32 s ceiling, the controller
	// manager's CSR signer relists after the outage, and the certificate may expire
	// meanwhile (then the hub requests again with its bootstrap credentials).
	waitUntil(t, 3*time.Minute, "the rotation once the cloud is back", func() error {
		third = leaf(t, clientFile)
		if third.SerialNumber.Cmp(second.SerialNumber) == 0 {
			return fmt.Errorf("still serial %s", second.SerialNumber.Text(16))
		}
		return nil
	})
	t.Logf("cloud back: rotated %.1fs later, serial %s -> %s (the old one valid until %s)", time.Since(back).Seconds(),
		second.SerialNumber.Text(16), third.SerialNumber.Text(16), second.NotAfter.UTC().Format(time.RFC3339))

	// The serving certificate rotates too, and the secure port presents the new one.
	var server *x509.Certificate
	waitUntil(t, 2*time.Minute, "a rotation of the serving certificate", func() error {
		server = leaf(t, serverFile)
		if server.SerialNumber.Cmp(firstServer.SerialNumber) == 0 {
			return fmt.Errorf("still serial %s", firstServer.SerialNumber.Text(16))
		}
		return nil
	})
	certPEM, keyPEM := c.IssueNodeClientCert(joinNode)
	kp, _ := tls.X509KeyPair(certPEM, keyPEM)
	waitUntil(t, 10*time.Second, "the secure port presenting the current serving certificate", func() error {
		server = leaf(t, serverFile)
		conn, err := tls.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.ProxySecurePort)),
			&tls.Config{RootCAs: c.CAPool(), ServerName: "127.0.0.1", Certificates: []tls.Certificate{kp}})
		if err != nil {
			return err
		}
		defer conn.Close()
		if got := conn.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(server.SerialNumber) != 0 {
			return fmt.Errorf("presents %s, the file holds %s", got.Text(16), server.SerialNumber.Text(16))
		}
		return nil
	})
	t.Logf("serving certificate rotated: serial %s -> %s, presented by the secure port without a restart",
		firstServer.SerialNumber.Text(16), server.SerialNumber.Text(16))
	stop()

	// Offline restart with the (valid) certificates: ready, the cache served.
	c.APIServer().Stop(t)
	logs, stop = startDaemon(t, cfg)
	took := waitReady(t, cfg, logs, 20*time.Second)
	l, err := kubelet.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + joinNode})
	if err != nil || len(l.Items) != 2 {
		t.Fatalf("offline restart: kubelet's pod list: %v (%d pods, want 2)", err, len(l.Items))
	}
	t.Logf("offline restart with valid certificates: ready after %s, kubelet's pod list served from the cache (%d pods)", took.Round(time.Millisecond), len(l.Items))
	stop()
}

// TestJoinRecovery: an expired client certificate at start (cloud away: the cache is
// served and readyz says why; cloud back: the bootstrap credentials get a new one), a
// cluster CA that changed under the node (adopted, logged, certificates requested
// again), and a join token given through POST /v1/token.
func TestJoinRecovery(t *testing.T) {
	c, token := joinCluster(t, 0)
	c.AutoApproveCSRs(t)
	ctx := context.Background()
	admin := kubernetes.NewForConfigOrDie(c.AdminConfig())
	_, err := admin.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec: corev1.PodSpec{NodeName: joinNode, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := joinConfig(t, c, t.TempDir())
	cfg.BootstrapFile = bootstrapFile(t, c, token)
	logs, stop := startDaemon(t, cfg)
	waitReady(t, cfg, logs, 60*time.Second)
	kubelet := kubeletThroughHub(cfg)
	waitCloud(t, cfg)
	if _, err := kubelet.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + joinNode}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	stop()

	// 1. Expired at start, cloud unreachable.
	clientFile := filepath.Join(cfg.PKIDir(), certs.ClientCertFile)
	caKey := readKey(t, filepath.Join(c.Dir(), "ca.key"))
	caCert := leaf(t, filepath.Join(c.Dir(), "ca.crt"))
	expired := makeCert(t, caCert, caKey, "system:node:"+joinNode, []string{"system:nodes", "openyurt:yurthub", "org-a"}, time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))
	replaceCurrent(t, clientFile, expired)
	c.APIServer().Stop(t)
	logs, stop = startDaemon(t, cfg)
	time.Sleep(3 * time.Second)
	code, body := readyz(cfg)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "expired") {
		t.Fatalf("expired certificate, offline: readyz %d %q; want 503 saying it expired", code, body)
	}
	l, err := kubelet.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + joinNode})
	if err != nil || len(l.Items) != 1 {
		t.Fatalf("expired certificate, offline: kubelet's pod list from the cache: %v", err)
	}
	t.Logf("expired certificate at start, cloud unreachable: cache served (%d pod); readyz: %s", len(l.Items), strings.TrimSpace(body))
	// Cloud back: the bootstrap credentials get a new certificate, no restart.
	c.APIServer().Start(t)
	waitReady(t, cfg, logs, 90*time.Second)
	if renewed := leaf(t, clientFile); renewed.NotAfter.Before(time.Now()) {
		t.Fatal("still the expired certificate")
	}
	t.Logf("cloud back: re-bootstrapped: %s", strings.Join(logLines(logs, "new certificate in use", "kind=client"), "\n"))
	stop()

	// 2. A new CA under the node: our pki holds another CA and certificates of it.
	other := newTestCA(t)
	write := func(p string, b []byte) {
		t.Helper()
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(cfg.PKIDir(), certs.CAFile), other.pem)
	replaceCurrent(t, clientFile, makeCert(t, other.cert, other.key, "system:node:"+joinNode, []string{"system:nodes", "openyurt:yurthub", "org-a"}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour)))
	logs, stop = startDaemon(t, cfg)
	// Until the start-up check has compared the CA with the bootstrap credentials' (a
	// few ms), the old pair looks consistent to the hub: wait for the verdict first.
	waitUntil(t, 30*time.Second, "the CA change to be noticed", func() error {
		if len(logLines(logs, "the cluster CA changed under this node")) == 0 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	waitReady(t, cfg, logs, 90*time.Second)
	changed := logLines(logs, "the cluster CA changed under this node")
	if len(changed) != 1 {
		t.Fatalf("want one line saying the CA changed:\n%s", logs.String())
	}
	t.Logf("new CA: %s", changed[0])
	if got, _ := os.ReadFile(filepath.Join(cfg.PKIDir(), certs.CAFile)); string(got) != string(c.CAPEM()) {
		t.Fatal("ca.crt is not the cluster CA after the change")
	}
	checkJoined(t, c, cfg)
	stop()

	// 3. POST /v1/token: a hub whose bootstrap file carries a dead token gets a good
	// one through the hub server and joins without a restart.
	cfg2 := joinConfig(t, c, t.TempDir())
	cfg2.BootstrapFile = bootstrapFile(t, c, "zzzzzz.0000000000000000")
	logs, stop = startDaemon(t, cfg2)
	time.Sleep(3 * time.Second)
	if code, _ := readyz(cfg2); code == http.StatusOK {
		t.Fatal("ready with a dead token")
	}
	tokenURL := fmt.Sprintf("http://127.0.0.1:%d/v1/token", cfg2.ServePort)
	for _, tc := range []struct {
		method, body string
		code         int
	}{{http.MethodGet, "", 405}, {http.MethodPost, "{", 400}, {http.MethodPost, `{"jointoken": "nope"}`, 400}, {http.MethodPost, `{"jointoken": "` + token + `"}`, 200}} {
		req, _ := http.NewRequest(tc.method, tokenURL, strings.NewReader(tc.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Fatalf("%s /v1/token %q: %d, want %d", tc.method, tc.body, resp.StatusCode, tc.code)
		}
	}
	took := waitReady(t, cfg2, logs, 60*time.Second)
	if fi, err := os.Stat(cfg2.JoinTokenFile()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("join token file: %v", err)
	}
	t.Logf("/v1/token: 405 GET, 400 bad bodies, 200 good token; ready %s after it", took.Round(time.Millisecond))
	stop()
}

// podInformer runs kubelet's pod informer through the hub, counting list/watch
// errors (its watch error handler).
func podInformer(t *testing.T, cs kubernetes.Interface) (cache.SharedIndexInformer, *atomic.Int64, chan struct{}) {
	t.Helper()
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", joinNode).String()
	}))
	inf := f.Core().V1().Pods().Informer()
	errs := &atomic.Int64{}
	if err := inf.SetWatchErrorHandler(func(_ *cache.Reflector, err error) {
		errs.Add(1)
		t.Logf("informer list/watch error: %v", err)
	}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	f.Start(done)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		close(done)
		t.Fatal("pod informer did not sync through the hub")
	}
	return inf, errs, done
}

type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "another-cluster-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func readKey(t *testing.T, path string) crypto.Signer {
	t.Helper()
	k, err := keyutil.PrivateKeyFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return k.(crypto.Signer)
}

// makeCert returns a client certificate and key PEM signed by ca, valid from nb to na.
func makeCert(t *testing.T, ca *x509.Certificate, caKey crypto.Signer, cn string, orgs []string, nb, na time.Time) []byte {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sn, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: sn, Subject: pkix.Name{CommonName: cn, Organization: orgs}, NotBefore: nb, NotAfter: na,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})...)
}

// replaceCurrent writes pair to the file the -current link points at.
func replaceCurrent(t *testing.T, link string, pair []byte) {
	t.Helper()
	target, err := filepath.EvalSymlinks(link)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(target, pair, 0o600); err != nil {
		t.Fatal(err)
	}
}
