package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T, cn string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns cert+key PEM in one blob.
func (ca *testCA) issue(t *testing.T, cn string, server bool) []byte {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})...)
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestPKISourceSaysWhatIsMissing(t *testing.T) {
	dir := t.TempDir()
	src := NewPKISource(dir)
	err := src.Ready()
	if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), filepath.Join(dir, CAFile)) || !strings.Contains(err.Error(), "--bootstrap-mode=token") {
		t.Fatalf("Ready() = %v; want ErrNotReady naming the mode and %s", err, filepath.Join(dir, CAFile))
	}
	ca := newCA(t, "cluster")
	write(t, filepath.Join(dir, CAFile), ca.pem)
	if err := src.Ready(); err == nil || !strings.Contains(err.Error(), ClientCertFile) {
		t.Fatalf("Ready() with only the CA = %v; want it to name %s", err, ClientCertFile)
	}
	write(t, filepath.Join(dir, ClientCertFile), []byte("not pem"))
	if err := src.Ready(); err == nil || errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "not a PEM file") {
		t.Fatalf("Ready() with a broken client file = %v; want a clear parse error", err)
	}
	write(t, filepath.Join(dir, ClientCertFile), ca.issue(t, "system:node:n1", false))
	if err := src.Ready(); err != nil {
		t.Fatalf("Ready() with everything = %v", err)
	}
	if _, err := src.ServingCertificate(); !errors.Is(err, ErrNotReady) {
		t.Fatalf("ServingCertificate() without the file = %v, want ErrNotReady", err)
	}
}

func TestClientCertificateReloadsRotatedFile(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, "cluster")
	caFile, client := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "kubelet-client-current.pem")
	write(t, caFile, ca.pem)
	write(t, client, ca.issue(t, "first", false))
	src := NewKubeletSource(caFile, client, filepath.Join(dir, "pki"))
	c1, err := src.ClientCertificate()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	write(t, client, ca.issue(t, "second", false))
	os.Chtimes(client, time.Now().Add(time.Second), time.Now().Add(time.Second))
	c2, err := src.ClientCertificate()
	if err != nil {
		t.Fatal(err)
	}
	l1, _ := x509.ParseCertificate(c1.Certificate[0])
	l2, _ := x509.ParseCertificate(c2.Certificate[0])
	if l1.Subject.CommonName != "first" || l2.Subject.CommonName != "second" {
		t.Fatalf("after rotation got %q then %q, want first then second", l1.Subject.CommonName, l2.Subject.CommonName)
	}
}

// The serving config verifies a client certificate against the cluster CA when one is
// sent (and lets a client without one in: the proxy decides about it), and the
// upstream config trusts only the cluster CA.
func TestServingAndUpstreamTLS(t *testing.T) {
	dir := t.TempDir()
	cluster, other := newCA(t, "cluster"), newCA(t, "other")
	pki := filepath.Join(dir, "pki")
	write(t, filepath.Join(pki, CAFile), cluster.pem)
	write(t, filepath.Join(pki, ClientCertFile), cluster.issue(t, "hub", false))
	write(t, filepath.Join(pki, ServerCertFile), cluster.issue(t, "server", true))
	src := NewPKISource(pki)

	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who := "no-certificate"
		if len(r.TLS.VerifiedChains) > 0 {
			who = r.TLS.VerifiedChains[0][0].Subject.CommonName
		}
		w.Write([]byte(who + " " + r.Proto))
	}))
	srv.TLS = ServingTLS(src)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()

	get := func(cfg *tls.Config) (string, error) {
		resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}, Timeout: 5 * time.Second}).Get(srv.URL)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b := make([]byte, 100)
		n, _ := resp.Body.Read(b)
		return string(b[:n]), nil
	}
	// The hub's own upstream config: client cert "hub", CA-verified server.
	if got, err := get(UpstreamTLS(src)); err != nil || got != "hub HTTP/2.0" {
		t.Fatalf("UpstreamTLS against ServingTLS: %q, %v; want \"hub HTTP/2.0\"", got, err)
	}
	// A client cert from another CA is refused.
	op := other.issue(t, "intruder", false)
	pair, err := tls.X509KeyPair(op, op)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cluster.cert)
	// (GetClientCertificate, so the client sends it even though the server names the
	// cluster CA as the one it accepts: a Go client would otherwise send none.)
	sendAnyway := func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
	if _, err := get(&tls.Config{RootCAs: pool, GetClientCertificate: sendAnyway}); err == nil {
		t.Fatal("serving TLS accepted a client certificate from a foreign CA")
	}
	// CAOnlyTLS refuses a server whose certificate the cluster CA did not sign.
	foreign := httptest.NewTLSServer(http.NotFoundHandler())
	defer foreign.Close()
	if got, err := get(CAOnlyTLS(src)); err != nil || got != "no-certificate HTTP/2.0" {
		t.Fatalf("CAOnlyTLS (no client certificate) against ServingTLS: %q, %v; want \"no-certificate HTTP/2.0\"", got, err)
	}
	resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: CAOnlyTLS(src)}}).Get(foreign.URL)
	if err == nil {
		resp.Body.Close()
		t.Fatal("CAOnlyTLS trusted a server certificate not signed by the cluster CA")
	}
}
