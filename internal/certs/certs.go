// Package certs is where the hub's credentials come from: the client certificate it
// presents to the cloud kube-apiserver, the cluster CA it trusts the apiserver (and its
// own clients) with, and the serving certificate of the TLS proxy port (10268).
//
// Everything else asks a Source. There are two:
//
//   - --bootstrap-mode=kubeletcertificate: FileSource (NewKubeletSource). The client
//     certificate and key are kubelet's (--kubelet-client-certificate, one PEM with
//     both, rotated by kubelet; re-read when the file changes), the CA is
//     --kubelet-ca-file, the serving certificate <root-dir>/pki/yurthub-server-current.pem.
//   - --bootstrap-mode=token: Manager (manager.go). The hub's own client and serving
//     certificates, requested by CSR and rotated, under <root-dir>/pki with OpenYurt's
//     file names; the cluster CA in <root-dir>/pki/ca.crt. The first certificates (and
//     new ones after an expiry or a CA change) are requested with the bootstrap
//     credentials (bootstrap.go): --bootstrap-file, or --join-token with token
//     discovery and CA pinning (discovery.go).
//
// UpstreamTLS and ServingTLS ask the Source on every handshake, so a new certificate
// or CA applies without a restart.
package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// File names under <root-dir>/pki (OpenYurt's names).
const (
	ClientCertFile = "yurthub-current.pem"        // hub client certificate + key
	ServerCertFile = "yurthub-server-current.pem" // 10268 serving certificate + key
	CAFile         = "ca.crt"                     // cluster CA
)

// ErrNotReady is wrapped by every error about a credential that is not there yet.
var ErrNotReady = errors.New("credentials not ready")

// Source provides the hub's credentials. Methods are safe for concurrent use and cheap
// enough to call per connection (implementations cache and reload on change).
type Source interface {
	// ClientCertificate is the hub's own client certificate for upstream requests.
	ClientCertificate() (*tls.Certificate, error)
	// ServingCertificate is the certificate of the TLS proxy port.
	ServingCertificate() (*tls.Certificate, error)
	// CAPool is the cluster CA: it verifies the apiserver and clients of the TLS port.
	CAPool() (*x509.CertPool, error)
	// Ready is nil when the client certificate and CA are usable; otherwise it says
	// what is missing and what to do.
	Ready() error
}

// FileSource reads PEM files, re-reading each one when its modification time or size
// changes (kubelet rotates its client certificate in place).
type FileSource struct {
	what       string // for messages: which mode provides these files
	caFile     string
	clientFile string // cert + key in one file
	serverFile string // cert + key in one file

	mu     sync.Mutex
	client cachedPair
	server cachedPair
	ca     cachedCA
}

type stamp struct {
	mod  time.Time
	size int64
}

type cachedPair struct {
	st   stamp
	cert *tls.Certificate
}

type cachedCA struct {
	st   stamp
	pool *x509.CertPool
}

// NewKubeletSource is --bootstrap-mode=kubeletcertificate: kubelet's client certificate
// (cert and key in clientPEM) and CA, and the serving certificate from pkiDir.
func NewKubeletSource(caFile, clientPEM, pkiDir string) *FileSource {
	return &FileSource{
		what:       "--bootstrap-mode=kubeletcertificate",
		caFile:     caFile,
		clientFile: clientPEM,
		serverFile: filepath.Join(pkiDir, ServerCertFile),
	}
}

// NewPKISource reads everything from pkiDir, where the token bootstrap keeps the hub's
// own certificates.
func NewPKISource(pkiDir string) *FileSource {
	return &FileSource{
		what:       "--bootstrap-mode=token",
		caFile:     filepath.Join(pkiDir, CAFile),
		clientFile: filepath.Join(pkiDir, ClientCertFile),
		serverFile: filepath.Join(pkiDir, ServerCertFile),
	}
}

// Files returns the paths the source reads: CA, client pair, serving pair.
func (s *FileSource) Files() (ca, client, server string) {
	return s.caFile, s.clientFile, s.serverFile
}

func statFile(p string) (stamp, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return stamp{}, err
	}
	return stamp{mod: fi.ModTime(), size: fi.Size()}, nil
}

func (s *FileSource) loadPair(c *cachedPair, file, role string) (*tls.Certificate, error) {
	st, err := statFile(file)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s %s does not exist", ErrNotReady, role, file)
		}
		return nil, fmt.Errorf("%s %s: %w", role, file, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.cert != nil && c.st == st {
		return c.cert, nil
	}
	pemBytes, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", role, file, err)
	}
	cert, err := tls.X509KeyPair(pemBytes, pemBytes)
	if err != nil {
		return nil, fmt.Errorf("%s %s: not a PEM file with a certificate and its private key: %w", role, file, err)
	}
	c.st, c.cert = st, &cert
	return &cert, nil
}

// ClientCertificate implements Source.
func (s *FileSource) ClientCertificate() (*tls.Certificate, error) {
	return s.loadPair(&s.client, s.clientFile, "client certificate")
}

// ServingCertificate implements Source.
func (s *FileSource) ServingCertificate() (*tls.Certificate, error) {
	return s.loadPair(&s.server, s.serverFile, "serving certificate")
}

// CAPool implements Source.
func (s *FileSource) CAPool() (*x509.CertPool, error) {
	st, err := statFile(s.caFile)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: cluster CA %s does not exist", ErrNotReady, s.caFile)
		}
		return nil, fmt.Errorf("cluster CA %s: %w", s.caFile, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ca.pool != nil && s.ca.st == st {
		return s.ca.pool, nil
	}
	pemBytes, err := os.ReadFile(s.caFile)
	if err != nil {
		return nil, fmt.Errorf("cluster CA %s: %w", s.caFile, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("cluster CA %s: no PEM certificate in it", s.caFile)
	}
	s.ca.st, s.ca.pool = st, pool
	return pool, nil
}

// Ready implements Source.
func (s *FileSource) Ready() error {
	if _, err := s.CAPool(); err != nil {
		return fmt.Errorf("%s: %w", s.what, err)
	}
	if _, err := s.ClientCertificate(); err != nil {
		return fmt.Errorf("%s: %w", s.what, err)
	}
	return nil
}

// UpstreamTLS returns the TLS config for requests the hub makes as itself: the client
// certificate is fetched per handshake (so rotation needs no restart) and the
// apiserver is verified against the cluster CA as it is at handshake time.
func UpstreamTLS(src Source) *tls.Config {
	cfg := CAOnlyTLS(src)
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return src.ClientCertificate()
	}
	return cfg
}

// CAOnlyTLS returns the TLS config for requests that carry their own bearer token: the
// apiserver is verified against the cluster CA and no client certificate is sent.
func CAOnlyTLS(src Source) *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	// The CA may rotate or appear later: verify against the pool current at handshake.
	cfg.InsecureSkipVerify = true // replaced by VerifyConnection below, never skipped
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		pool, err := src.CAPool()
		if err != nil {
			return err
		}
		if len(cs.PeerCertificates) == 0 {
			return errors.New("apiserver sent no certificate")
		}
		opts := x509.VerifyOptions{Roots: pool, DNSName: cs.ServerName, Intermediates: x509.NewCertPool()}
		for _, c := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(c)
		}
		_, err = cs.PeerCertificates[0].Verify(opts)
		return err
	}
	return cfg
}

// ServingTLS returns the TLS config of the secure proxy port: the serving certificate
// from src, HTTP/2 and HTTP/1.1 offered, and a client certificate verified against the
// cluster CA when the client sends one (a foreign one fails the handshake). A client
// without a certificate is let in, as OpenYurt's hub does: pods reach the apiserver
// through this port with their service-account token (in-cluster config has no
// certificate). What such a client may do without any credential is the proxy's
// decision (internal/proxy: only from the node's own addresses).
func ServingTLS(src Source) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return src.ServingCertificate()
		},
		// Re-read the CA per connection so a rotated CA applies without a restart.
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			pool, err := src.CAPool()
			if err != nil {
				return nil, err
			}
			return &tls.Config{
				MinVersion: tls.VersionTLS12,
				NextProtos: []string{"h2", "http/1.1"},
				GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
					return src.ServingCertificate()
				},
				ClientAuth: tls.VerifyClientCertIfGiven,
				ClientCAs:  pool,
			}, nil
		},
	}
}
