package daemon

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/yurthub/yurthub/internal/certs"
	"github.com/yurthub/yurthub/internal/testenv"
	"github.com/yurthub/yurthub/internal/testkube"
)

// TestDaemonAnonymousOnlyFromNode (issue 15 item 9): a request without credentials
// goes upstream with the node's identity, so the hub must take one only from the node
// itself. The whole daemon runs in a throw-away network namespace (the "node", with
// the dummy interface, kind ifb, and the iptables rules) in front of a real
// kube-apiserver; a second namespace joined by a veth pair plays a pod, as a CNI
// would set it up. Every request is a SelfSubjectReview, so the apiserver itself says
// whose identity reached it.
//
//   - from loopback, from the dummy IP (the host connecting to it) and from the host's
//     veth address, a credential-less request is forwarded as the node;
//   - an address added to the host after the hub started counts at once;
//   - from the pod, on the plain and the secure port, it is refused with 403 and a
//     Status that says what to do, logged and counted in
//     node_yurthub_proxy_anonymous_rejected_total;
//   - from the pod with its service-account token it is forwarded as that account, on
//     both ports (the secure port no longer demands a client certificate);
//   - from the pod with a client certificate of the cluster CA on the secure port it
//     is forwarded (a verified certificate is a credential).
func TestDaemonAnonymousOnlyFromNode(t *testing.T) {
	if os.Getenv("YURTHUB_NETNS") != "1" {
		if testing.Short() {
			t.Skip("-short: this test runs a real etcd and kube-apiserver; run without -short")
		}
		testenv.RequireRoot(t)
		unshare := testenv.LookPath(t, "unshare")
		testenv.LookPath(t, "iptables")
		cmd := exec.Command(unshare, "-n", os.Args[0], "-test.run", "^"+t.Name()+"$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "YURTHUB_NETNS=1")
		out, err := cmd.CombinedOutput()
		t.Logf("in a new network namespace:\n%s", out)
		if err != nil || !bytes.Contains(out, []byte("--- PASS: "+t.Name())) {
			t.Fatalf("the test failed in its network namespace: %v", err)
		}
		return
	}
	lo, _ := netlink.LinkByName("lo")
	if err := netlink.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	const node = "edge-anon"
	c := testkube.Start(t, testkube.Options{Nodes: []string{node}})
	admin := kubernetes.NewForConfigOrDie(c.AdminConfig())
	saToken := serviceAccountToken(t, admin, "default", "app")

	defer func(k string) { linkKind = k }(linkKind)
	linkKind = "ifb"
	root := t.TempDir()
	cfg := kubeletHubConfig(t, c, node, root)
	cfg.EnableDummyIf, cfg.EnableIPTables = true, true
	servingCA := writeServingCert(t, cfg.PKIDir(), cfg.DummyIfIP, net.IPv4(127, 0, 0, 1))

	// The pod: its own namespace, 10.99.0.2 behind a veth whose node end is 10.99.0.1.
	p, podNs := newPodNs(t)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "yh-node"}, PeerName: "yh-pod", PeerNamespace: netlink.NsFd(podNs)}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("create veth: %v", err)
	}
	hostEnd, _ := netlink.LinkByName("yh-node")
	mustNet(t, netlink.AddrAdd(hostEnd, &netlink.Addr{IPNet: cidr("10.99.0.1/24")}))
	mustNet(t, netlink.LinkSetUp(hostEnd))
	mustNet(t, p.do(func() error {
		l, err := netlink.LinkByName("yh-pod")
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: cidr("10.99.0.2/24")}); err != nil {
			return err
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return err
		}
		return netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: net.ParseIP("10.99.0.1"), Dst: cidr("0.0.0.0/0")})
	}))

	logs, stop := startDaemon(t, cfg)
	defer stop()
	dummy := cfg.DummyIfIP.String()
	plain := "http://" + net.JoinHostPort(dummy, fmt.Sprint(cfg.ProxyPort))
	secure := "https://" + net.JoinHostPort(dummy, fmt.Sprint(cfg.ProxySecurePort))
	loopback := fmt.Sprintf("http://127.0.0.1:%d", cfg.ProxyPort)

	host := &net.Dialer{Timeout: 5 * time.Second}
	hostFrom := func(src string) dialFunc {
		return (&net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}).DialContext
	}
	fromPod := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		err := p.do(func() (err error) {
			conn, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
			return err
		})
		return conn, err
	}
	clusterCert, clusterKey := c.IssueNodeClientCert("some-client")
	clientPair, err := tls.X509KeyPair(clusterCert, clusterKey)
	if err != nil {
		t.Fatal(err)
	}
	tlsNoCert := &tls.Config{RootCAs: servingCA}
	tlsCert := &tls.Config{RootCAs: servingCA, Certificates: []tls.Certificate{clientPair}}

	// The hub answers on the dummy IP and the cloud is healthy (until then a request
	// would be answered from the cache).
	nodeUser := "system:node:" + node
	waitUntilTrue(t, 60*time.Second, "the hub forwarding on the dummy IP and on loopback", func() bool {
		a := review(t, host.DialContext, nil, plain, "")
		b := review(t, host.DialContext, nil, loopback, "")
		return a.code == http.StatusCreated && b.code == http.StatusCreated
	})
	waitUntilTrue(t, 30*time.Second, "the secure port on the dummy IP", func() bool {
		return review(t, host.DialContext, tlsCert, secure, "").code == http.StatusCreated
	})

	type check struct {
		name     string
		dial     dialFunc
		tls      *tls.Config
		base     string
		token    string
		wantCode int
		wantUser string
	}
	checks := []check{
		{"host, loopback, no credentials", host.DialContext, nil, loopback, "", http.StatusCreated, nodeUser},
		{"host to the dummy IP (source: the dummy IP), no credentials", host.DialContext, nil, plain, "", http.StatusCreated, nodeUser},
		{"host from its veth address 10.99.0.1, no credentials", hostFrom("10.99.0.1"), nil, plain, "", http.StatusCreated, nodeUser},
		{"host, secure port, no credentials", host.DialContext, tlsNoCert, secure, "", http.StatusCreated, nodeUser},
		{"pod, no credentials", fromPod, nil, plain, "", http.StatusForbidden, ""},
		{"pod, secure port, no credentials", fromPod, tlsNoCert, secure, "", http.StatusForbidden, ""},
		{"pod, its service-account token", fromPod, nil, plain, saToken, http.StatusCreated, "system:serviceaccount:default:app"},
		{"pod, secure port, its service-account token", fromPod, tlsNoCert, secure, saToken, http.StatusCreated, "system:serviceaccount:default:app"},
		{"pod, secure port, a cluster-CA client certificate", fromPod, tlsCert, secure, "", http.StatusCreated, nodeUser},
	}
	rejected := 0
	for _, ch := range checks {
		got := review(t, ch.dial, ch.tls, ch.base, ch.token)
		t.Logf("%s: %d %s", ch.name, got.code, got.user)
		if got.code != ch.wantCode || got.user != ch.wantUser {
			t.Errorf("%s: got %d as %q, want %d as %q; body: %s", ch.name, got.code, got.user, ch.wantCode, ch.wantUser, got.body)
			continue
		}
		if ch.wantCode != http.StatusForbidden {
			continue
		}
		rejected++
		var st metav1.Status
		if err := json.Unmarshal([]byte(got.body), &st); err != nil || st.Kind != "Status" || st.Reason != metav1.StatusReasonForbidden || st.Code != http.StatusForbidden {
			t.Errorf("%s: the 403 is not a Forbidden metav1.Status: %v\n%s", ch.name, err, got.body)
		}
		t.Logf("%s: the message: %s", ch.name, st.Message)
		for _, words := range []string{"10.99.0.2", "no credentials", "service-account token", "host network"} {
			if !strings.Contains(st.Message, words) {
				t.Errorf("%s: the message lacks %q: %s", ch.name, words, st.Message)
			}
		}
	}

	// An address the host gains while the hub runs is the node's at once.
	mustNet(t, netlink.AddrAdd(hostEnd, &netlink.Addr{IPNet: cidr("10.98.0.1/32")}))
	if got := review(t, hostFrom("10.98.0.1"), nil, plain, ""); got.code != http.StatusCreated || got.user != nodeUser {
		t.Errorf("host from an address added after start (10.98.0.1): got %d as %q, want 201 as %q; body: %s", got.code, got.user, nodeUser, got.body)
	}

	_, metrics := get(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", cfg.ServePort))
	want := fmt.Sprintf(`node_yurthub_proxy_anonymous_rejected_total{reason="not_node_address"} %d`, rejected)
	if rejected == 0 || !strings.Contains(metrics, want) {
		t.Errorf("/metrics lacks %q:\n%s", want, grepLines(metrics, "anonymous"))
	}
	t.Logf("/metrics: %s", grepLines(metrics, "node_yurthub_proxy_anonymous_rejected_total{"))
	warns := 0
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "level=WARN") && strings.Contains(l, "without credentials") && strings.Contains(l, "10.99.0.2") {
			warns++
			t.Logf("log: %s", l)
		}
	}
	if warns != 1 {
		t.Errorf("%d WARN lines about the pod's credential-less requests, want 1 (once per source); log:\n%s", warns, logs.String())
	}
}

type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

type reviewResult struct {
	code int
	user string
	body string
}

// review POSTs a SelfSubjectReview to base over dial, with token as a bearer token
// when set, and returns the status and the user the apiserver saw.
func review(t *testing.T, dial dialFunc, tlsCfg *tls.Config, base, token string) reviewResult {
	t.Helper()
	tr := &http.Transport{DialContext: dial, TLSClientConfig: tlsCfg, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	body := `{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`
	req, _ := http.NewRequest(http.MethodPost, base+"/apis/authentication.k8s.io/v1/selfsubjectreviews", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "anon-test/v1")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return reviewResult{body: err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := reviewResult{code: resp.StatusCode, body: string(b)}
	if resp.StatusCode == http.StatusCreated {
		var ssr authnv1.SelfSubjectReview
		if err := json.Unmarshal(b, &ssr); err == nil {
			r.user = ssr.Status.UserInfo.Username
		}
	}
	return r
}

// serviceAccountToken creates the service account and returns a token for it from
// the apiserver's TokenRequest API (what kubelet mounts into a pod).
func serviceAccountToken(t *testing.T, cs kubernetes.Interface, ns, name string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create service account %s/%s: %v", ns, name, err)
	}
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authnv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for %s/%s: %v", ns, name, err)
	}
	return tr.Status.Token
}

// writeServingCert writes the hub's serving certificate for ips into pkiDir, from a
// throw-away CA, and returns that CA as a pool for clients.
func writeServingCert(t *testing.T, pkiDir string, ips ...net.IP) *x509.CertPool {
	t.Helper()
	ca := newTestCA(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "yurthub serving"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: ips,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	pair := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})...)
	if err := os.MkdirAll(pkiDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pkiDir, certs.ServerCertFile), pair, 0o600); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return pool
}

// podNs is a second network namespace held by one locked OS thread: a socket made by
// do's function belongs to it (its source address is the pod's).
type podNs struct{ fns chan func() }

func newPodNs(t *testing.T) (*podNs, netns.NsHandle) {
	t.Helper()
	p := &podNs{fns: make(chan func())}
	ready := make(chan netns.NsHandle)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		ns, err := netns.New()
		if err != nil {
			errc <- err
			return
		}
		ready <- ns
		for f := range p.fns {
			f()
		}
	}()
	t.Cleanup(func() { close(p.fns) })
	select {
	case ns := <-ready:
		return p, ns
	case err := <-errc:
		t.Fatalf("new pod namespace: %v", err)
	}
	return nil, 0
}

func (p *podNs) do(f func() error) error {
	errc := make(chan error)
	p.fns <- func() { errc <- f() }
	return <-errc
}

func cidr(s string) *net.IPNet {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	n.IP = ip
	return n
}

func mustNet(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
