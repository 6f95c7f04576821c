// Package testkube runs a real Kubernetes control plane for tests: etcd, kube-apiserver
// and, when asked, kube-controller-manager, built from source by testdata/kube/build.sh.
//
//	c := testkube.Start(t, testkube.Options{Nodes: []string{"edge-1"}})
//	admin := kubernetes.NewForConfigOrDie(c.AdminConfig())
//	node := kubernetes.NewForConfigOrDie(c.NodeConfig("edge-1"))
//	c.GrantNodeReadAll(t, "edge-1") // a node may otherwise read only its own Node and pods
//	c.APIServer().Stop(t)           // cut the cloud; Start(t) brings it back on the same port
//
// Binaries: $YURTHUB_KUBE_BIN_DIR (the Makefile sets it) or, when unset, the directory
// testdata/kube/build.sh prints (it builds into ~/.cache/yurthub-testbin once, about 6
// minutes on 2 cores, and reuses it after). If neither works the test is reported through
// testenv.Missing: it fails under CI=true and skips elsewhere.
//
// Everything lives in t.TempDir(): a generated cluster CA (it signs the serving
// certificate, is the apiserver's --client-ca-file, and signs CSRs in
// kube-controller-manager), a front-proxy CA, service-account keys, a static token file
// (an admin token in system:masters and one system:node:<name> token per Options.Nodes
// entry in system:nodes) and each process's log. All ports are free loopback ports.
// Processes are stopped by PID in t.Cleanup (SIGTERM, then SIGKILL after 10s); when the
// test failed, the tail of every log is printed.
//
// The apiserver runs with --authorization-mode=Node,RBAC, bootstrap-token auth,
// NodeRestriction, --advertise-address=127.0.0.1 and --endpoint-reconciler-type=none.
// Without kube-controller-manager nothing creates the "default" service account of a
// namespace, so the ServiceAccount admission plugin is disabled then (pods are admitted
// without a token volume); with Options.ControllerManager it stays on.
package testkube

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/yurthub/yurthub/internal/testenv"
)

// DefaultNode is the node that gets a token when Options.Nodes is empty.
const DefaultNode = "node-1"

// Options says what Start runs.
type Options struct {
	// Nodes get a static bearer token each (user system:node:<name>, group system:nodes),
	// used by NodeConfig. Default: {DefaultNode}. Client certificates for any node name
	// come from IssueNodeClientCert and need no entry here.
	Nodes []string
	// ControllerManager also runs kube-controller-manager: every default controller plus
	// bootstrap-signer-controller and token-cleaner-controller, signing CSRs with the
	// cluster CA. Start then waits until the "default" service account exists.
	ControllerManager bool
	// CSRSigningDuration is kube-controller-manager's --cluster-signing-duration, the
	// lifetime of the certificates it signs (default: its own, one year, cut at the
	// harness CA's expiry, 24h). Its signer
	// backdates NotBefore by 5 minutes, and a client rotating at 70-90% of
	// NotAfter-NotBefore (kubelet, the hub) rotates 0.7*(d+5m)-5m to 0.9*(d+5m)-5m after
	// issue: with 2m30s, every 15 s to 105 s. Below about 2m10s that is "at once".
	CSRSigningDuration time.Duration
	// APIServerArgs are extra kube-apiserver flags ("--name=value"), placed last.
	APIServerArgs []string
	// StartTimeout bounds how long each process may take to become ready. Default 2m
	// (two shared cores with a build running can make the apiserver slow to start).
	StartTimeout time.Duration
}

// Cluster is a running control plane. Its methods are safe for concurrent use.
type Cluster struct {
	opts Options
	dir  string
	bins string

	ca, frontProxyCA *authority
	caPool           *x509.CertPool
	adminToken       string
	nodeTokens       map[string]string
	adminKubeconfig  string

	etcd    *process
	etcdURL string
	kcm     *process

	mu         sync.Mutex
	apiservers []*APIServer // [0] is the primary
}

// APIServer is one kube-apiserver process of the cluster. Stop and Start keep its port,
// certificates and etcd, so clients reconnect to the same URL.
type APIServer struct {
	c    *Cluster
	port int
	proc *process
}

// Start runs etcd and kube-apiserver (and kube-controller-manager when opts ask) and
// waits for /readyz. Everything is stopped and removed when the test ends.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if testing.Testing() && testing.Short() {
		// make test-unit: -short promises no control plane. This is a choice of
		// the run, not a missing prerequisite, so it skips under CI=true too.
		t.Skip("-short: this test runs a real etcd and kube-apiserver; run without -short")
	}
	if len(opts.Nodes) == 0 {
		opts.Nodes = []string{DefaultNode}
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 2 * time.Minute
	}
	bins := BinDir(t)
	began := time.Now()
	c := &Cluster{opts: opts, dir: t.TempDir(), bins: bins, nodeTokens: map[string]string{}}
	// Registered after t.TempDir, so it runs before the directory is removed.
	t.Cleanup(func() { c.cleanup(t) })
	if err := c.writeFiles(); err != nil {
		t.Fatalf("testkube: %v", err)
	}
	if err := c.startEtcd(); err != nil {
		t.Fatalf("testkube: %v", err)
	}
	s, err := c.newAPIServer("kube-apiserver")
	if err != nil {
		t.Fatalf("testkube: %v", err)
	}
	if err := c.writeKubeconfig(c.adminKubeconfig, kubeconfigUser{token: c.adminToken}); err != nil {
		t.Fatalf("testkube: %v", err)
	}
	if opts.ControllerManager {
		if err := c.startControllerManager(); err != nil {
			t.Fatalf("testkube: %v", err)
		}
	}
	t.Logf("testkube: apiserver %s ready in %.1fs (etcd %s, dir %s)", s.URL(), time.Since(began).Seconds(), c.etcdURL, c.dir)
	return c
}

var binDir struct {
	sync.Mutex
	dir string
	err error
}

var binaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kubectl", "kubemark"}

// BinDir returns the directory holding etcd, kube-apiserver, kube-controller-manager and
// kubectl: $YURTHUB_KUBE_BIN_DIR, or else what testdata/kube/build.sh prints (building
// them on first use). When neither works it reports the prerequisite as missing.
func BinDir(t testing.TB) string {
	t.Helper()
	binDir.Lock()
	defer binDir.Unlock()
	if binDir.dir == "" && binDir.err == nil {
		binDir.dir, binDir.err = findBinDir(t)
	}
	if binDir.err != nil {
		testenv.Missing(t, "%v", binDir.err)
	}
	return binDir.dir
}

func findBinDir(t testing.TB) (string, error) {
	check := func(dir, from string) error {
		for _, b := range binaries {
			if st, err := os.Stat(filepath.Join(dir, b)); err != nil || st.Mode()&0o111 == 0 {
				return fmt.Errorf("%s: %s has no executable %s; run testdata/kube/build.sh and point YURTHUB_KUBE_BIN_DIR at the directory it prints", from, dir, b)
			}
		}
		return nil
	}
	if dir := os.Getenv("YURTHUB_KUBE_BIN_DIR"); dir != "" {
		return dir, check(dir, "YURTHUB_KUBE_BIN_DIR")
	}
	script := filepath.Join(testenv.RepoRoot(t), "testdata", "kube", "build.sh")
	t.Logf("testkube: YURTHUB_KUBE_BIN_DIR is unset; running %s (a first build takes about 10 minutes)", script)
	var out bytes.Buffer
	cmd := exec.Command(script)
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr // build.sh's progress lines
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("YURTHUB_KUBE_BIN_DIR is unset and %s failed: %v", script, err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	dir := strings.TrimSpace(lines[len(lines)-1])
	return dir, check(dir, script)
}

func (c *Cluster) path(name string) string { return filepath.Join(c.dir, name) }

func randomToken() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// writeFiles generates the PKI, tokens and service-account keys.
func (c *Cluster) writeFiles() error {
	var err error
	if c.ca, err = newAuthority("testkube-ca"); err != nil {
		return err
	}
	if c.frontProxyCA, err = newAuthority("testkube-front-proxy-ca"); err != nil {
		return err
	}
	c.caPool = x509.NewCertPool()
	c.caPool.AddCert(c.ca.cert)
	servingCert, servingKey, err := c.ca.issue("kube-apiserver", nil,
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		[]net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1"), net.ParseIP("10.96.0.1")})
	if err != nil {
		return err
	}
	proxyCert, proxyKey, err := c.frontProxyCA.issue("front-proxy-client", nil, nil, nil)
	if err != nil {
		return err
	}
	saKey, saPub, err := serviceAccountKeys()
	if err != nil {
		return err
	}
	c.adminToken = randomToken()
	tokens := fmt.Sprintf("%s,admin,admin,\"system:masters\"\n", c.adminToken)
	for _, n := range c.opts.Nodes {
		tok := randomToken()
		c.nodeTokens[n] = tok
		tokens += fmt.Sprintf("%s,system:node:%s,node-%s,\"system:nodes\"\n", tok, n, n)
	}
	c.adminKubeconfig = c.path("admin.kubeconfig")
	files := map[string][]byte{
		"ca.crt":                 c.ca.certPEM,
		"ca.key":                 c.ca.keyPEM,
		"front-proxy-ca.crt":     c.frontProxyCA.certPEM,
		"front-proxy-client.crt": proxyCert,
		"front-proxy-client.key": proxyKey,
		"apiserver.crt":          servingCert,
		"apiserver.key":          servingKey,
		"sa.key":                 saKey,
		"sa.pub":                 saPub,
		"tokens.csv":             []byte(tokens),
	}
	for name, data := range files {
		if err := os.WriteFile(c.path(name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

const startAttempts = 3

func (c *Cluster) startEtcd() error {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.StartTimeout)
	defer cancel()
	var err error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		ports, perr := freePorts(2)
		if perr != nil {
			return perr
		}
		client := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
		peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
		c.etcd = &process{
			name:    "etcd",
			path:    filepath.Join(c.bins, "etcd"),
			logPath: c.path("etcd.log"),
			args: []string{
				"--name=testkube",
				"--data-dir=" + c.path("etcd-data"),
				"--listen-client-urls=" + client,
				"--advertise-client-urls=" + client,
				"--listen-peer-urls=" + peer,
				"--initial-advertise-peer-urls=" + peer,
				"--initial-cluster=testkube=" + peer,
				"--unsafe-no-fsync",
				"--log-level=warn",
			},
		}
		c.etcdURL = client
		if err = c.etcd.start(); err != nil {
			return err
		}
		err = c.etcd.waitReady(ctx, func(ctx context.Context) error { return etcdHealthy(ctx, client) })
		if err == nil {
			return nil
		}
		_ = c.etcd.stop()
		if !c.etcd.addrInUse() {
			break
		}
		os.RemoveAll(c.path("etcd-data"))
	}
	return fmt.Errorf("start etcd: %w; log:\n%s", err, c.etcd.logTail(30))
}

func etcdHealthy(ctx context.Context, url string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/health", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"health":"true"`)) {
		return fmt.Errorf("etcd /health: %s %s", resp.Status, body)
	}
	return nil
}

func (c *Cluster) apiserverArgs(port int, certDir string) []string {
	args := []string{
		"--etcd-servers=" + c.etcdURL,
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", port),
		"--advertise-address=127.0.0.1",
		"--endpoint-reconciler-type=none",
		"--cert-dir=" + certDir,
		"--tls-cert-file=" + c.path("apiserver.crt"),
		"--tls-private-key-file=" + c.path("apiserver.key"),
		"--client-ca-file=" + c.path("ca.crt"),
		"--token-auth-file=" + c.path("tokens.csv"),
		"--enable-bootstrap-token-auth",
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--allow-privileged=true",
		"--service-cluster-ip-range=10.96.0.0/16",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + c.path("sa.pub"),
		"--service-account-signing-key-file=" + c.path("sa.key"),
		"--requestheader-client-ca-file=" + c.path("front-proxy-ca.crt"),
		"--requestheader-allowed-names=front-proxy-client",
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file=" + c.path("front-proxy-client.crt"),
		"--proxy-client-key-file=" + c.path("front-proxy-client.key"),
		"--profiling=false",
	}
	if !c.opts.ControllerManager {
		args = append(args, "--disable-admission-plugins=ServiceAccount")
	}
	return append(args, c.opts.APIServerArgs...)
}

// newAPIServer starts one more kube-apiserver on a fresh port and waits for /readyz.
func (c *Cluster) newAPIServer(name string) (*APIServer, error) {
	var err error
	var s *APIServer
	for attempt := 1; attempt <= startAttempts; attempt++ {
		ports, perr := freePorts(1)
		if perr != nil {
			return nil, perr
		}
		certDir := c.path(name + "-certs")
		s = &APIServer{c: c, port: ports[0], proc: &process{
			name:    name,
			path:    filepath.Join(c.bins, "kube-apiserver"),
			logPath: c.path(name + ".log"),
			args:    c.apiserverArgs(ports[0], certDir),
		}}
		if err = s.run(); err == nil {
			c.mu.Lock()
			c.apiservers = append(c.apiservers, s)
			c.mu.Unlock()
			return s, nil
		}
		_ = s.proc.stop()
		if !s.proc.addrInUse() {
			break
		}
	}
	return nil, fmt.Errorf("start %s: %w; log:\n%s", name, err, s.proc.logTail(40))
}

// run starts the process and waits for /readyz.
func (s *APIServer) run() error {
	if err := s.proc.start(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.c.opts.StartTimeout)
	defer cancel()
	client := s.httpClient()
	return s.proc.waitReady(ctx, func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+s.c.adminToken)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz: %s %s", resp.Status, bytes.TrimSpace(body))
		}
		return nil
	})
}

func (s *APIServer) httpClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: s.c.caPool},
		DisableKeepAlives: true,
	}}
}

// URL is https://127.0.0.1:<port>.
func (s *APIServer) URL() string { return fmt.Sprintf("https://127.0.0.1:%d", s.port) }

// Port is the apiserver's secure port.
func (s *APIServer) Port() int { return s.port }

// Running reports whether the process is up (it may still be starting).
func (s *APIServer) Running() bool { return s.proc.running() }

// Stop stops the apiserver (SIGTERM, then SIGKILL) and waits until it has exited.
// etcd keeps running; Start brings the apiserver back on the same port.
func (s *APIServer) Stop(t testing.TB) {
	t.Helper()
	if err := s.proc.stop(); err != nil {
		t.Fatalf("testkube: stop %s: %v", s.proc.name, err)
	}
}

// Start starts a stopped apiserver again with the same port, certificates and etcd,
// and waits for /readyz.
func (s *APIServer) Start(t testing.TB) {
	t.Helper()
	var err error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		if err = s.run(); err == nil {
			return
		}
		_ = s.proc.stop()
		if !s.proc.addrInUse() {
			break
		}
		time.Sleep(time.Second) // the port is ours; wait for whoever holds it briefly
	}
	t.Fatalf("testkube: restart %s on port %d: %v; log:\n%s", s.proc.name, s.port, err, s.proc.logTail(40))
}

// Restart is Stop followed by Start.
func (s *APIServer) Restart(t testing.TB) {
	t.Helper()
	s.Stop(t)
	s.Start(t)
}

// Pause freezes the apiserver with SIGSTOP: connections stay open but nothing answers,
// like a cloud link that hangs instead of refusing. Resume undoes it.
func (s *APIServer) Pause(t testing.TB) {
	t.Helper()
	if err := s.proc.signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("testkube: pause: %v", err)
	}
	// kill(2) returns once SIGSTOP is queued; the process's other threads go on
	// running until one thread has taken the signal and stopped the group, which on
	// a loaded machine can be long enough to answer a request. Wait for every thread.
	if err := s.proc.waitStopped(5 * time.Second); err != nil {
		t.Fatalf("testkube: pause: %v", err)
	}
}

// Resume continues an apiserver frozen by Pause.
func (s *APIServer) Resume(t testing.TB) {
	t.Helper()
	if err := s.proc.signal(syscall.SIGCONT); err != nil {
		t.Fatalf("testkube: resume: %v", err)
	}
}

// StartExtraAPIServer starts another kube-apiserver on the same etcd, with the same
// certificates and tokens, on its own port (for load-balancing tests). It is stopped
// with the cluster.
func (c *Cluster) StartExtraAPIServer(t testing.TB) *APIServer {
	t.Helper()
	c.mu.Lock()
	name := fmt.Sprintf("kube-apiserver-%d", len(c.apiservers))
	c.mu.Unlock()
	s, err := c.newAPIServer(name)
	if err != nil {
		t.Fatalf("testkube: %v", err)
	}
	return s
}

func (c *Cluster) startControllerManager() error {
	certPEM, keyPEM, err := c.IssueClientCert("system:kube-controller-manager")
	if err != nil {
		return err
	}
	kubeconfig := c.path("controller-manager.kubeconfig")
	if err := c.writeKubeconfig(kubeconfig, kubeconfigUser{certPEM: certPEM, keyPEM: keyPEM}); err != nil {
		return err
	}
	c.kcm = &process{
		name:    "kube-controller-manager",
		path:    filepath.Join(c.bins, "kube-controller-manager"),
		logPath: c.path("kube-controller-manager.log"),
		args: []string{
			"--kubeconfig=" + kubeconfig,
			"--secure-port=0",
			"--leader-elect=false",
			"--controllers=*,bootstrap-signer-controller,token-cleaner-controller",
			"--use-service-account-credentials=true",
			"--service-account-private-key-file=" + c.path("sa.key"),
			"--root-ca-file=" + c.path("ca.crt"),
			"--cluster-signing-cert-file=" + c.path("ca.crt"),
			"--cluster-signing-key-file=" + c.path("ca.key"),
			"--service-cluster-ip-range=10.96.0.0/16",
		},
	}
	if c.opts.CSRSigningDuration > 0 {
		c.kcm.args = append(c.kcm.args, "--cluster-signing-duration="+c.opts.CSRSigningDuration.String())
	}
	if err := c.kcm.start(); err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(c.AdminConfig())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.StartTimeout)
	defer cancel()
	err = c.kcm.waitReady(ctx, func(ctx context.Context) error {
		_, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("start kube-controller-manager (waiting for the default service account): %w; log:\n%s", err, c.kcm.logTail(40))
	}
	return nil
}

func (c *Cluster) cleanup(t testing.TB) {
	c.mu.Lock()
	servers := slices.Clone(c.apiservers)
	c.mu.Unlock()
	procs := []*process{}
	if c.kcm != nil {
		procs = append(procs, c.kcm)
	}
	for i := len(servers) - 1; i >= 0; i-- {
		procs = append(procs, servers[i].proc)
	}
	if c.etcd != nil {
		procs = append(procs, c.etcd)
	}
	for _, p := range procs {
		if err := p.stop(); err != nil {
			t.Errorf("testkube: %v", err)
		}
	}
	if t.Failed() {
		for _, p := range procs {
			t.Logf("testkube: last lines of %s (%s):\n%s", p.name, p.logPath, p.logTail(60))
		}
	}
}

// URL is the primary apiserver's https://127.0.0.1:<port>.
func (c *Cluster) URL() string { return c.APIServer().URL() }

// APIServer is the primary kube-apiserver (the one Start waited for).
func (c *Cluster) APIServer() *APIServer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.apiservers[0]
}

// EtcdURL is etcd's client URL (plain http on loopback).
func (c *Cluster) EtcdURL() string { return c.etcdURL }

// Dir is the cluster's temp directory: certificates, tokens, kubeconfigs, logs.
func (c *Cluster) Dir() string { return c.dir }

// CAPEM is the cluster CA certificate in PEM.
func (c *Cluster) CAPEM() []byte { return slices.Clone(c.ca.certPEM) }

// CAFile is the path of the cluster CA certificate.
func (c *Cluster) CAFile() string { return c.path("ca.crt") }

// CAPool is a pool holding only the cluster CA.
func (c *Cluster) CAPool() *x509.CertPool { return c.caPool.Clone() }

// AdminToken is the bearer token of user "admin" in group system:masters.
func (c *Cluster) AdminToken() string { return c.adminToken }

// AdminConfig is a client-go config for the admin user against the primary apiserver.
func (c *Cluster) AdminConfig() *rest.Config { return c.tokenConfig(c.adminToken) }

// AdminKubeconfig is the path of a kubeconfig for the admin user (for kubectl).
func (c *Cluster) AdminKubeconfig() string { return c.adminKubeconfig }

// KubectlPath is the kubectl built with the apiserver.
func (c *Cluster) KubectlPath() string { return filepath.Join(c.bins, "kubectl") }

// Kubectl runs kubectl with the admin kubeconfig and returns its combined output; a
// non-zero exit fails the test.
func (c *Cluster) Kubectl(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command(c.KubectlPath(), append([]string{"--kubeconfig=" + c.adminKubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("testkube: kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// NodeToken is the static bearer token of system:node:<node>. The node must be in
// Options.Nodes (the token file is read once, at apiserver start).
func (c *Cluster) NodeToken(node string) string {
	tok, ok := c.nodeTokens[node]
	if !ok {
		panic(fmt.Sprintf("testkube: node %q has no token; list it in testkube.Options.Nodes (have %v)", node, c.opts.Nodes))
	}
	return tok
}

// NodeConfig is a client-go config for system:node:<node> (group system:nodes) using
// its static token; see NodeToken.
func (c *Cluster) NodeConfig(node string) *rest.Config { return c.tokenConfig(c.NodeToken(node)) }

func (c *Cluster) tokenConfig(token string) *rest.Config {
	return &rest.Config{
		Host:            c.URL(),
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.CAPEM()},
	}
}

// IssueClientCert returns a client certificate and key (PEM) for user cn in groups
// orgs, signed by the cluster CA, which the apiserver trusts as --client-ca-file.
func (c *Cluster) IssueClientCert(cn string, orgs ...string) (certPEM, keyPEM []byte, err error) {
	return c.ca.issue(cn, orgs, nil, nil)
}

// IssueNodeClientCert returns the client certificate a kubelet would get for node:
// CN system:node:<node>, O system:nodes, signed by the cluster CA. Any node name works.
func (c *Cluster) IssueNodeClientCert(node string) (certPEM, keyPEM []byte) {
	certPEM, keyPEM, err := c.IssueClientCert("system:node:"+node, "system:nodes")
	if err != nil {
		panic(fmt.Sprintf("testkube: issue node client certificate: %v", err))
	}
	return certPEM, keyPEM
}

// readAllRole lets a subject get, list and watch every resource.
const readAllRole = "testkube:read-all"

// GrantNodeReadAll binds system:node:<node> to a ClusterRole that can get, list and
// watch every resource in every namespace. In 1.36 the Node authorizer lets a node read
// only its own Node, its pods and what they reference; a hub that lists and watches
// for the whole node needs more, which a real cluster grants through RBAC too.
func (c *Cluster) GrantNodeReadAll(t testing.TB, node string) {
	t.Helper()
	cs := kubernetes.NewForConfigOrDie(c.AdminConfig())
	ctx := context.Background()
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: readAllRole},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"get", "list", "watch"},
		}},
	}
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("testkube: create ClusterRole %s: %v", readAllRole, err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: readAllRole + ":" + node},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: readAllRole},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "system:node:" + node}},
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("testkube: create ClusterRoleBinding %s: %v", binding.Name, err)
	}
	// RBAC is served from an informer cache: wait until the grant is in effect, on every
	// running apiserver, so the caller's next request is allowed.
	for _, s := range c.runningAPIServers() {
		cfg := c.AdminConfig()
		cfg.Host = s.URL()
		cs := kubernetes.NewForConfigOrDie(cfg)
		waitFor(t, "RBAC grant for system:node:"+node+" on "+s.URL(), func(ctx context.Context) error {
			r, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
				User:               "system:node:" + node,
				Groups:             []string{"system:nodes", "system:authenticated"},
				ResourceAttributes: &authzv1.ResourceAttributes{Verb: "watch", Resource: "pods"},
			}}, metav1.CreateOptions{})
			if err != nil {
				return err
			}
			if !r.Status.Allowed {
				return fmt.Errorf("not allowed yet: %s", r.Status.Reason)
			}
			return nil
		})
	}
}

func (c *Cluster) runningAPIServers() []*APIServer {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*APIServer
	for _, s := range c.apiservers {
		if s.Running() {
			out = append(out, s)
		}
	}
	return out
}

// waitFor polls check every 100ms for up to 30s and fails the test if it never succeeds.
func waitFor(t testing.TB, what string, check func(context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := check(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testkube: waiting for %s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// CreateBootstrapToken creates a bootstrap token Secret in kube-system that
// authenticates as system:bootstrap:<id> in group system:bootstrappers (and
// system:bootstrappers:kubeadm:default-node-token, as kubeadm makes them) and returns
// "<id>.<secret>".
func (c *Cluster) CreateBootstrapToken(t testing.TB) string {
	t.Helper()
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	pick := func(n int) string {
		b := make([]byte, n)
		if _, err := rand.Read(b); err != nil {
			panic(err)
		}
		for i := range b {
			b[i] = alphabet[int(b[i])%len(alphabet)]
		}
		return string(b)
	}
	id, secret := pick(6), pick(16)
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "bootstrap-token-" + id, Namespace: metav1.NamespaceSystem},
		Type:       corev1.SecretTypeBootstrapToken,
		StringData: map[string]string{
			"token-id":                       id,
			"token-secret":                   secret,
			"usage-bootstrap-authentication": "true",
			"usage-bootstrap-signing":        "true",
			"auth-extra-groups":              "system:bootstrappers:kubeadm:default-node-token",
			"expiration":                     time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		},
	}
	cs := kubernetes.NewForConfigOrDie(c.AdminConfig())
	if _, err := cs.CoreV1().Secrets(metav1.NamespaceSystem).Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
		t.Fatalf("testkube: create bootstrap token: %v", err)
	}
	token := id + "." + secret
	// The bootstrap-token authenticator reads Secrets from an informer cache: wait until
	// every running apiserver accepts the token.
	for _, s := range c.runningAPIServers() {
		cfg := c.tokenConfig(token)
		cfg.Host = s.URL()
		cs := kubernetes.NewForConfigOrDie(cfg)
		waitFor(t, "bootstrap token "+id+" on "+s.URL(), func(ctx context.Context) error {
			_, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
			return err
		})
	}
	return token
}

// CACertHash is the cluster CA's public-key pin in kubeadm's
// --discovery-token-ca-cert-hash form: "sha256:<hex of SHA-256 of the SubjectPublicKeyInfo>".
func (c *Cluster) CACertHash() string {
	sum := sha256.Sum256(c.ca.cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// PrepareTokenBootstrap does what kubeadm init does for token bootstrap: the
// kube-public/cluster-info ConfigMap (a kubeconfig with the primary apiserver's URL and
// the cluster CA) readable anonymously, and group system:bootstrappers bound to
// system:node-bootstrapper so a bootstrap token can create CSRs. With
// Options.ControllerManager, bootstrap-signer-controller adds a jws-kubeconfig-<id> key
// to cluster-info for every token from CreateBootstrapToken.
func (c *Cluster) PrepareTokenBootstrap(t testing.TB) {
	t.Helper()
	cs := kubernetes.NewForConfigOrDie(c.AdminConfig())
	ctx := context.Background()
	b64 := base64.StdEncoding.EncodeToString
	kubeconfig := "apiVersion: v1\nkind: Config\nclusters:\n- name: \"\"\n  cluster:\n" +
		"    server: " + c.URL() + "\n    certificate-authority-data: " + b64(c.ca.certPEM) + "\n" +
		"contexts: null\ncurrent-context: \"\"\nusers: null\npreferences: {}\n"
	objs := []func() error{
		func() error {
			_, err := cs.CoreV1().ConfigMaps(metav1.NamespacePublic).Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: "cluster-info", Namespace: metav1.NamespacePublic},
				Data:       map[string]string{"kubeconfig": kubeconfig},
			}, metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := cs.RbacV1().Roles(metav1.NamespacePublic).Create(ctx, &rbacv1.Role{
				ObjectMeta: metav1.ObjectMeta{Name: "kubeadm:bootstrap-signer-clusterinfo", Namespace: metav1.NamespacePublic},
				Rules: []rbacv1.PolicyRule{{
					APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"cluster-info"}, Verbs: []string{"get"},
				}},
			}, metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := cs.RbacV1().RoleBindings(metav1.NamespacePublic).Create(ctx, &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "kubeadm:bootstrap-signer-clusterinfo", Namespace: metav1.NamespacePublic},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "kubeadm:bootstrap-signer-clusterinfo"},
				Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "system:anonymous"}},
			}, metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "kubeadm:kubelet-bootstrap"},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:node-bootstrapper"},
				Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "system:bootstrappers"}},
			}, metav1.CreateOptions{})
			return err
		},
	}
	for _, create := range objs {
		if err := create(); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("testkube: prepare token bootstrap: %v", err)
		}
	}
	for _, s := range c.runningAPIServers() {
		cfg := c.AdminConfig()
		cfg.Host = s.URL()
		cs := kubernetes.NewForConfigOrDie(cfg)
		waitFor(t, "RBAC for token bootstrap on "+s.URL(), func(ctx context.Context) error {
			for _, ra := range []struct{ user, ns, verb, group, resource, name string }{
				{"system:anonymous", metav1.NamespacePublic, "get", "", "configmaps", "cluster-info"},
				{"system:bootstrap:probe", "", "create", "certificates.k8s.io", "certificatesigningrequests", ""},
			} {
				r, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
					User:               ra.user,
					Groups:             []string{"system:bootstrappers", "system:unauthenticated"},
					ResourceAttributes: &authzv1.ResourceAttributes{Namespace: ra.ns, Verb: ra.verb, Group: ra.group, Resource: ra.resource, Name: ra.name},
				}}, metav1.CreateOptions{})
				if err != nil {
					return err
				}
				if !r.Status.Allowed {
					return fmt.Errorf("%s %s %s not allowed yet", ra.user, ra.verb, ra.resource)
				}
			}
			return nil
		})
	}
}

// AutoApproveCSRs approves every pending CertificateSigningRequest until the test ends,
// as OpenYurt's yurt-manager does for hub CSRs (kube-controller-manager's approver only
// handles kubelet client CSRs). kube-controller-manager (Options.ControllerManager) then
// signs them with the cluster CA.
func (c *Cluster) AutoApproveCSRs(t testing.TB) {
	t.Helper()
	cs := kubernetes.NewForConfigOrDie(c.AdminConfig())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for {
			list, err := cs.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
			if err == nil {
				for i := range list.Items {
					csr := &list.Items[i]
					if len(csr.Status.Conditions) > 0 {
						continue // approved, denied or failed already
					}
					csr.Status.Conditions = append(csr.Status.Conditions, certv1.CertificateSigningRequestCondition{
						Type: certv1.CertificateApproved, Status: corev1.ConditionTrue,
						Reason: "TestkubeAutoApprove", Message: "approved by testkube.AutoApproveCSRs",
					})
					_, _ = cs.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, csr.Name, csr, metav1.UpdateOptions{})
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
}

type kubeconfigUser struct {
	token           string
	certPEM, keyPEM []byte
}

// writeKubeconfig writes a kubeconfig (mode 0600) for the primary apiserver.
func (c *Cluster) writeKubeconfig(path string, u kubeconfigUser) error {
	b64 := base64.StdEncoding.EncodeToString
	var user string
	switch {
	case u.token != "":
		user = "    token: " + u.token + "\n"
	case u.certPEM != nil:
		user = "    client-certificate-data: " + b64(u.certPEM) + "\n    client-key-data: " + b64(u.keyPEM) + "\n"
	default:
		return errors.New("kubeconfig user needs a token or a certificate")
	}
	cfg := "apiVersion: v1\nkind: Config\nclusters:\n- name: testkube\n  cluster:\n" +
		"    server: " + c.URL() + "\n    certificate-authority-data: " + b64(c.ca.certPEM) + "\n" +
		"users:\n- name: user\n  user:\n" + user +
		"contexts:\n- name: testkube\n  context:\n    cluster: testkube\n    user: user\n" +
		"current-context: testkube\n"
	return os.WriteFile(path, []byte(cfg), 0o600)
}
