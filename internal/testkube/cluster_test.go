package testkube_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"slices"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/yurthub/yurthub/internal/testkube"
)

const (
	node  = "edge-1"
	other = "edge-2"
	ns    = "harness"
)

func clientFor(t *testing.T, cfg *rest.Config) *kubernetes.Clientset {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func podNames(t *testing.T, cs kubernetes.Interface, namespace string, opts metav1.ListOptions) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := cs.CoreV1().Pods(namespace).List(ctx, opts)
	if err != nil {
		t.Fatalf("list pods in %q (%+v): %v", namespace, opts, err)
	}
	var names []string
	for _, p := range list.Items {
		names = append(names, p.Namespace+"/"+p.Name)
	}
	slices.Sort(names)
	return names
}

func whoAmI(t *testing.T, cfg *rest.Config) authnv1.UserInfo {
	t.Helper()
	r, err := clientFor(t, cfg).AuthenticationV1().SelfSubjectReviews().Create(context.Background(), &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("SelfSubjectReview: %v", err)
	}
	return r.Status.UserInfo
}

func pod(name, nodeName string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{
			NodeName:   nodeName,
			Containers: []corev1.Container{{Name: "c", Image: "registry.invalid/pause:1"}},
		},
	}
}

// TestCluster proves the harness end to end with client-go and kubectl: objects written
// as admin are visible to the node (within what the Node authorizer allows), to kubectl,
// after an apiserver restart, and through a second apiserver on the same etcd.
func TestCluster(t *testing.T) {
	t.Parallel()
	c := testkube.Start(t, testkube.Options{Nodes: []string{node}})
	admin := clientFor(t, c.AdminConfig())
	ctx := context.Background()

	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	for _, p := range []*corev1.Pod{pod("mine", node), pod("theirs", other)} {
		if _, err := admin.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create pod %s: %v", p.Name, err)
		}
	}
	both := []string{ns + "/mine", ns + "/theirs"}
	if got := podNames(t, admin, ns, metav1.ListOptions{}); !slices.Equal(got, both) {
		t.Fatalf("admin lists %v, want %v", got, both)
	}
	if _, err := admin.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
		t.Fatalf("admin gets namespace: %v", err)
	}

	// The node, by static token: its identity, its own pods, and nothing more.
	if u := whoAmI(t, c.NodeConfig(node)); u.Username != "system:node:"+node || !slices.Contains(u.Groups, "system:nodes") {
		t.Fatalf("node token authenticates as %+v", u)
	}
	nodeCS := clientFor(t, c.NodeConfig(node))
	own := metav1.ListOptions{FieldSelector: "spec.nodeName=" + node}
	if got, want := podNames(t, nodeCS, "", own), []string{ns + "/mine"}; !slices.Equal(got, want) {
		t.Fatalf("node lists %v with %s, want %v", got, own.FieldSelector, want)
	}
	// The Node authorizer learns pod-to-node edges from an informer, so a get right after
	// the create may be refused for a moment.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, err := nodeCS.CoreV1().Pods(ns).Get(ctx, "mine", metav1.GetOptions{})
		if err == nil {
			break
		}
		if !apierrors.IsForbidden(err) || time.Now().After(deadline) {
			t.Fatalf("node gets its own pod: %v", err)
		}
	}
	if _, err := nodeCS.CoreV1().Pods("").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("node lists all pods without RBAC: err = %v, want Forbidden", err)
	}
	c.GrantNodeReadAll(t, node)
	c.GrantNodeReadAll(t, node) // idempotent
	if got := podNames(t, nodeCS, ns, metav1.ListOptions{}); !slices.Equal(got, both) {
		t.Fatalf("node with GrantNodeReadAll lists %v, want %v", got, both)
	}

	// A node client certificate, for a node without a token.
	certPEM, keyPEM := c.IssueNodeClientCert(other)
	certCfg := &rest.Config{Host: c.URL(), TLSClientConfig: rest.TLSClientConfig{CAData: c.CAPEM(), CertData: certPEM, KeyData: keyPEM}}
	if u := whoAmI(t, certCfg); u.Username != "system:node:"+other || !slices.Contains(u.Groups, "system:nodes") {
		t.Fatalf("node certificate authenticates as %+v", u)
	}
	if got, want := podNames(t, clientFor(t, certCfg), "", metav1.ListOptions{FieldSelector: "spec.nodeName=" + other}), []string{ns + "/theirs"}; !slices.Equal(got, want) {
		t.Fatalf("%s by certificate lists %v, want %v", other, got, want)
	}

	// A bootstrap token.
	tok := c.CreateBootstrapToken(t)
	id, _, _ := strings.Cut(tok, ".")
	if u := whoAmI(t, &rest.Config{Host: c.URL(), BearerToken: tok, TLSClientConfig: rest.TLSClientConfig{CAData: c.CAPEM()}}); u.Username != "system:bootstrap:"+id || !slices.Contains(u.Groups, "system:bootstrappers") {
		t.Fatalf("bootstrap token authenticates as %+v", u)
	}

	// kubectl with the admin kubeconfig.
	out := c.Kubectl(t, "get", "pods", "-A", "-o", "name")
	for _, want := range []string{"pod/mine", "pod/theirs"} {
		if !strings.Contains(out, want) {
			t.Fatalf("kubectl get pods -A lacks %s:\n%s", want, out)
		}
	}

	// Cut the cloud and bring it back on the same URL.
	s := c.APIServer()
	url := s.URL()
	s.Stop(t)
	if s.Running() {
		t.Fatal("apiserver still running after Stop")
	}
	down := clientFor(t, &rest.Config{Host: url, BearerToken: c.AdminToken(), TLSClientConfig: rest.TLSClientConfig{CAData: c.CAPEM()}, Timeout: 5 * time.Second})
	if _, err := down.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err == nil {
		t.Fatal("listing pods succeeded while the apiserver was stopped")
	}
	s.Start(t)
	if s.URL() != url {
		t.Fatalf("restarted apiserver moved from %s to %s", url, s.URL())
	}
	if got := podNames(t, admin, ns, metav1.ListOptions{}); !slices.Equal(got, both) {
		t.Fatalf("after restart admin lists %v, want %v", got, both)
	}
	if got := podNames(t, nodeCS, "", own); !slices.Equal(got, []string{ns + "/mine"}) {
		t.Fatalf("after restart node lists %v", got)
	}

	// A second apiserver on the same etcd serves the same objects, both ways.
	extra := c.StartExtraAPIServer(t)
	if extra.URL() == url {
		t.Fatalf("extra apiserver shares the primary's URL %s", url)
	}
	extraCfg := c.AdminConfig()
	extraCfg.Host = extra.URL()
	extraCS := clientFor(t, extraCfg)
	if got := podNames(t, extraCS, ns, metav1.ListOptions{}); !slices.Equal(got, both) {
		t.Fatalf("extra apiserver lists %v, want %v", got, both)
	}
	if _, err := extraCS.CoreV1().Pods(ns).Create(ctx, pod("via-extra", node), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod through the extra apiserver: %v", err)
	}
	if got, want := podNames(t, nodeCS, "", own), []string{ns + "/mine", ns + "/via-extra"}; !slices.Equal(got, want) {
		t.Fatalf("primary shows the node %v, want %v", got, want)
	}
	s.Stop(t) // the extra one keeps serving while the primary is down
	if got := podNames(t, extraCS, ns, metav1.ListOptions{}); len(got) != 3 {
		t.Fatalf("extra apiserver with the primary down lists %v", got)
	}

	// Pause: the apiserver hangs instead of refusing; Resume brings it back.
	extra.Pause(t)
	hungCfg := rest.CopyConfig(extraCfg)
	hungCfg.Timeout = time.Second
	if _, err := clientFor(t, hungCfg).CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err == nil {
		t.Fatal("a paused apiserver answered")
	}
	extra.Resume(t)
	if got := podNames(t, extraCS, ns, metav1.ListOptions{}); len(got) != 3 {
		t.Fatalf("extra apiserver after Resume lists %v", got)
	}
}

// TestControllerManager walks the token-bootstrap path a hub takes, against
// kube-controller-manager: anonymous cluster-info signed by bootstrap-signer, a CSR
// created with the bootstrap token, approved (AutoApproveCSRs) and signed with the
// cluster CA, and the signed certificate authenticating as the node.
func TestControllerManager(t *testing.T) {
	t.Parallel()
	c := testkube.Start(t, testkube.Options{ControllerManager: true})
	ctx := context.Background()
	c.PrepareTokenBootstrap(t)
	c.AutoApproveCSRs(t)
	tok := c.CreateBootstrapToken(t)
	id, _, _ := strings.Cut(tok, ".")

	// Anonymous discovery: cluster-info, signed for our token by bootstrap-signer.
	anon := clientFor(t, &rest.Config{Host: c.URL(), TLSClientConfig: rest.TLSClientConfig{CAData: c.CAPEM()}})
	var info *corev1.ConfigMap
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		var err error
		info, err = anon.CoreV1().ConfigMaps(metav1.NamespacePublic).Get(ctx, "cluster-info", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("anonymous get kube-public/cluster-info: %v", err)
		}
		if info.Data["jws-kubeconfig-"+id] != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bootstrap-signer did not sign cluster-info for token %s within a minute: keys %v", id, keys(info.Data))
		}
	}
	if !strings.Contains(info.Data["kubeconfig"], c.URL()) {
		t.Fatalf("cluster-info kubeconfig does not name %s:\n%s", c.URL(), info.Data["kubeconfig"])
	}
	if h := c.CACertHash(); !strings.HasPrefix(h, "sha256:") || len(h) != len("sha256:")+64 {
		t.Fatalf("CACertHash = %q", h)
	}

	// A CSR made with the bootstrap token, as the hub makes it.
	boot := clientFor(t, &rest.Config{Host: c.URL(), BearerToken: tok, TLSClientConfig: rest.TLSClientConfig{CAData: c.CAPEM()}})
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "system:node:" + node, Organization: []string{"system:nodes", "openyurt:yurthub"}},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := boot.CertificatesV1().CertificateSigningRequests().Create(ctx, &certv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "csr-"},
		Spec: certv1.CertificateSigningRequestSpec{
			Request:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
			SignerName: certv1.KubeAPIServerClientSignerName,
			Usages:     []certv1.KeyUsage{certv1.UsageDigitalSignature, certv1.UsageClientAuth},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create CSR with the bootstrap token: %v", err)
	}
	var signed []byte
	for deadline := time.Now().Add(time.Minute); len(signed) == 0; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("CSR was not approved and signed within a minute")
		}
		got, err := boot.CertificatesV1().CertificateSigningRequests().Get(ctx, csr.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get CSR: %v", err)
		}
		signed = got.Status.Certificate
	}
	block, _ := pem.Decode(signed)
	if block == nil {
		t.Fatalf("signed certificate is not PEM: %q", signed)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: c.CAPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("CSR certificate does not chain to the cluster CA: %v", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certCfg := &rest.Config{Host: c.URL(), TLSClientConfig: rest.TLSClientConfig{
		CAData: c.CAPEM(), CertData: signed, KeyData: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}}
	if u := whoAmI(t, certCfg); u.Username != "system:node:"+node || !slices.Contains(u.Groups, "openyurt:yurthub") {
		t.Fatalf("signed certificate authenticates as %+v", u)
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
