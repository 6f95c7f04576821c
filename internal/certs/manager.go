package certs

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"

	"github.com/yurthub/yurthub/internal/kubescheme"
)

// The hub's own certificates, by CSR, rotated.
//
// Manager is the Source of --bootstrap-mode=token. It keeps two certificates under
// <root-dir>/pki with OpenYurt's (and kubelet's) file layout (pairStore):
//
//   - client (yurthub-current.pem): signer kubernetes.io/kube-apiserver-client,
//     CN system:node:<node>, O system:nodes, openyurt:yurthub and
//     --hub-cert-organizations; the hub's identity towards the apiserver;
//   - server (yurthub-server-current.pem): signer kubernetes.io/kubelet-serving,
//     CN system:node:<node>, O system:nodes, IP SANs: the dummy IP, the proxy bind
//     address, the node IP and 127.0.0.1; the serving certificate of 10268.
//
// Each is renewed the way kubelet's certificate manager (client-go's
// util/certificate) renews kubelet's: a new key and a CSR at a random point between
// 70% and 90% of the current certificate's lifetime, retried with exponential backoff
// (2 s doubling, then every 32 s) while the cloud is unreachable, and used at once on
// every new TLS handshake. That package itself is not used: importing it links
// client-go's whole typed clientset and scheme (measured: +8.8 MB, over the binary's
// size goal); the CSR API is reached through the hub's own REST client instead.
//
// The client certificate is requested with the hub's current certificate while that
// one is valid and signed by the cluster CA, and with the bootstrap credentials
// (Bootstrap) otherwise: at first start, after it expired, or when the cluster CA
// changed (a cluster rebuilt under the node). The serving certificate is always
// requested with the client certificate.

// Certificate kinds, as logged and as labelled in metrics.
const (
	KindClient = "client"
	KindServer = "server"
)

// Signer names and the organizations every hub client certificate carries.
const (
	SignerClient = "kubernetes.io/kube-apiserver-client"
	SignerServer = "kubernetes.io/kubelet-serving"
	OrgNodes     = "system:nodes"
	OrgHub       = "openyurt:yurthub"
)

// ManagerOptions configures a Manager.
type ManagerOptions struct {
	PKIDir        string
	NodeName      string
	Organizations []string // extra O= of the client certificate (--hub-cert-organizations)
	ServingIPs    []net.IP // IP SANs of the serving certificate
	// Servers returns the apiserver URLs to try, preferred (healthy) first.
	Servers   func() []string
	Bootstrap *Bootstrap // nil: no bootstrap credentials
	Log       *slog.Logger
	// OnRotate is called after a new certificate of kind is in use (old is nil for the
	// first one).
	OnRotate func(kind string, old, new *x509.Certificate)
	// PendingLogInterval is how often a CSR waiting for approval is logged (default 1m).
	PendingLogInterval time.Duration
	// PollInterval is how often a CSR's status is read (default 1s).
	PollInterval time.Duration
	// MaxBackoff caps the wait between failed attempts (default 32s, as client-go).
	MaxBackoff time.Duration
}

// Manager obtains, stores and rotates the hub's client and serving certificates.
// It implements Source.
type Manager struct {
	opts   ManagerOptions
	ca     *FileSource // reads <pki>/ca.crt
	caFile string
	client *slot
	server *slot
	wg     sync.WaitGroup
}

// slot is one certificate kind: its store and the pair in use.
type slot struct {
	kind   string
	signer string
	store  pairStore

	mu        sync.RWMutex
	cert      *tls.Certificate
	deadline  time.Time // when to renew cert
	state     string    // what is happening while there is no usable certificate
	rotations int64
	lastErr   string
	wake      chan struct{}
}

// NewManager loads the certificates already in opts.PKIDir (if any); Start renews
// them.
func NewManager(opts ManagerOptions) *Manager {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.PendingLogInterval <= 0 {
		opts.PendingLogInterval = time.Minute
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 32 * time.Second
	}
	if len(opts.ServingIPs) == 0 {
		opts.ServingIPs = []net.IP{net.IPv4(127, 0, 0, 1)} // the signer wants one SAN at least
	}
	m := &Manager{
		opts:   opts,
		ca:     NewPKISource(opts.PKIDir),
		caFile: filepath.Join(opts.PKIDir, CAFile),
		client: &slot{kind: KindClient, signer: SignerClient, store: pairStore{dir: opts.PKIDir, prefix: "yurthub"}, wake: make(chan struct{}, 1)},
		server: &slot{kind: KindServer, signer: SignerServer, store: pairStore{dir: opts.PKIDir, prefix: "yurthub-server"}, wake: make(chan struct{}, 1)},
	}
	for _, s := range []*slot{m.client, m.server} {
		c, err := s.store.load()
		switch {
		case err == nil:
			s.set(c)
			opts.Log.Info("certificate loaded", slog.String("kind", s.kind), slog.String("file", s.store.currentPath()),
				slog.String("serial", serial(c.Leaf)), slog.Time("not_after", c.Leaf.NotAfter))
		case errors.Is(err, os.ErrNotExist):
			s.setState("no certificate yet")
		default:
			s.setState(err.Error())
			opts.Log.Warn("stored certificate unusable; a new one will be requested", slog.String("kind", s.kind), slog.Any("err", err))
		}
	}
	return m
}

// Start renews both certificates in the background until ctx ends; Wait waits for
// that.
func (m *Manager) Start(ctx context.Context) {
	// A cluster rebuilt under the node: compare the CA the bootstrap credentials vouch
	// for with ours now, while we may still hold a certificate of the old CA. A
	// bootstrap file needs no network, so that check is done before anything uses the
	// certificates; token discovery runs in the background (the cloud may be away).
	local := m.opts.Bootstrap.Present() && m.opts.Bootstrap.File != ""
	if local {
		m.checkCA(ctx)
	}
	m.wg.Add(2)
	go func() {
		defer m.wg.Done()
		if !local && m.opts.Bootstrap.Present() {
			m.checkCA(ctx)
		}
		m.loop(ctx, m.client)
	}()
	go func() { defer m.wg.Done(); m.loop(ctx, m.server) }()
}

// checkCA adopts the CA the bootstrap credentials prove, if they can be used now.
func (m *Manager) checkCA(ctx context.Context) {
	log := m.opts.Log.With(slog.String("kind", KindClient))
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, ca, err := m.opts.Bootstrap.Config(cctx, m.servers()); err == nil {
		m.adoptCA(ca, log)
	} else {
		log.Debug("the cluster CA was not checked against the bootstrap credentials at start", slog.Any("err", err))
	}
}

// Retry makes a client-certificate request that is waiting out a backoff try again
// now (the bootstrap credentials changed: POST /v1/token).
func (m *Manager) Retry() { m.client.poke() }

// Wait returns once the goroutines of Start have ended.
func (m *Manager) Wait() { m.wg.Wait() }

// ClientCertificate implements Source.
func (m *Manager) ClientCertificate() (*tls.Certificate, error) { return m.client.usable() }

// ServingCertificate implements Source.
func (m *Manager) ServingCertificate() (*tls.Certificate, error) { return m.server.usable() }

// CAPool implements Source.
func (m *Manager) CAPool() (*x509.CertPool, error) { return m.ca.CAPool() }

// Ready implements Source.
func (m *Manager) Ready() error {
	if _, err := m.CAPool(); err != nil {
		return fmt.Errorf("--bootstrap-mode=token: %w", err)
	}
	if _, err := m.ClientCertificate(); err != nil {
		return fmt.Errorf("--bootstrap-mode=token: %w", err)
	}
	return nil
}

// Files returns the paths the manager keeps: CA, client pair, serving pair.
func (m *Manager) Files() (ca, client, server string) {
	return m.caFile, m.client.store.currentPath(), m.server.store.currentPath()
}

// NotAfter is the expiry of the certificate of kind in use (zero: none).
func (m *Manager) NotAfter(kind string) time.Time {
	s := m.slotOf(kind)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.cert == nil {
		return time.Time{}
	}
	return s.cert.Leaf.NotAfter
}

// Rotations counts the certificates of kind obtained since start.
func (m *Manager) Rotations(kind string) int64 {
	s := m.slotOf(kind)
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.rotations
}

func (m *Manager) slotOf(kind string) *slot {
	if kind == KindServer {
		return m.server
	}
	return m.client
}

func (s *slot) set(c *tls.Certificate) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cert = c
	s.deadline = time.Time{}
	if c != nil {
		s.deadline = rotationDeadline(c.Leaf)
		s.state = ""
	}
}

func (s *slot) setState(state string) {
	s.mu.Lock()
	s.state = state
	s.mu.Unlock()
}

func (s *slot) current() (*tls.Certificate, time.Time) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cert, s.deadline
}

func (s *slot) usable() (*tls.Certificate, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.cert == nil {
		return nil, fmt.Errorf("%w: no %s certificate (%s): %s", ErrNotReady, s.kind, s.store.currentPath(), s.state)
	}
	if time.Now().After(s.cert.Leaf.NotAfter) {
		return nil, fmt.Errorf("%w: the %s certificate %s (serial %s) expired at %s; %s", ErrNotReady, s.kind, s.store.currentPath(),
			serial(s.cert.Leaf), s.cert.Leaf.NotAfter.UTC().Format(time.RFC3339), s.stateOr("a new one will be requested when the cloud is reachable"))
	}
	return s.cert, nil
}

func (s *slot) stateOr(def string) string {
	if s.state != "" {
		return s.state
	}
	return def
}

func (s *slot) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// rotationDeadline is a random point between 70% and 90% of the certificate's
// lifetime (client-go's certificate manager's policy).
func rotationDeadline(c *x509.Certificate) time.Time {
	total := c.NotAfter.Sub(c.NotBefore)
	n, err := rand.Int(rand.Reader, big.NewInt(1000))
	frac := 0.8
	if err == nil {
		frac = 0.7 + 0.2*float64(n.Int64())/1000
	}
	return c.NotBefore.Add(time.Duration(float64(total) * frac))
}

func serial(c *x509.Certificate) string {
	if c == nil {
		return ""
	}
	return c.SerialNumber.Text(16)
}

// loop keeps one certificate current until ctx ends.
func (m *Manager) loop(ctx context.Context, s *slot) {
	log := m.opts.Log.With(slog.String("kind", s.kind))
	backoff := 2 * time.Second
	for ctx.Err() == nil {
		if c, deadline := s.current(); c != nil && m.fits(s, c) {
			if wait := time.Until(deadline); wait > 0 {
				log.Debug("next rotation", slog.Time("at", deadline))
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-s.wake:
					t.Stop()
					continue // re-evaluate: the CA or the client certificate changed
				case <-t.C:
				}
			}
		}
		err := m.renew(ctx, s, log)
		if err == nil {
			backoff = 2 * time.Second
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errCredentialsGone) {
			log.Warn("a pending CSR can no longer be read with the credentials it was made with; requesting again", slog.Any("err", err))
			backoff = 2 * time.Second
			continue
		}
		if errors.Is(err, errWaitClient) {
			s.setState("waiting for the client certificate, which the serving certificate's CSR is made with")
			select {
			case <-ctx.Done():
				return
			case <-s.wake: // the client loop pokes us when it has a certificate
			case <-time.After(time.Second):
			}
			continue
		}
		s.mu.Lock()
		key := csrName.ReplaceAllString(err.Error(), "<csr>") // the same failure of another CSR is a repeat
		repeat := s.lastErr == key
		s.lastErr = key
		s.state = err.Error()
		s.mu.Unlock()
		if repeat {
			log.Debug("certificate renewal failed again", slog.Any("err", err), slog.Duration("retry_in", backoff))
		} else {
			log.Error("cannot obtain the hub's certificate; retrying", slog.Any("err", err), slog.Duration("retry_in", backoff))
		}
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, m.opts.MaxBackoff)
	}
}

var errWaitClient = errors.New("no client certificate yet")

// errCredentialsGone: the credentials a pending CSR was made with stopped working.
var errCredentialsGone = errors.New("the credentials the certificate was requested with are no longer accepted")

// csrName matches the names of the hub's CSRs (GenerateName "yurthub-<kind>-").
var csrName = regexp.MustCompile(`yurthub-(client|server)-[a-z0-9]+`)

// valid reports whether c is unexpired and signed by the current CA: good enough to
// authenticate with (and to ask for its own successor).
func (m *Manager) valid(c *tls.Certificate) bool {
	if time.Now().After(c.Leaf.NotAfter) {
		return false
	}
	if pool, err := m.CAPool(); err == nil {
		if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return false
		}
	}
	return true
}

// fits reports whether c can stay: valid and carrying what the template asks (so a
// changed --hub-cert-organizations or node IP gets a new one).
func (m *Manager) fits(s *slot, c *tls.Certificate) bool {
	if !m.valid(c) {
		return false
	}
	want := m.subject(s)
	if c.Leaf.Subject.CommonName != want.CommonName {
		return false
	}
	for _, o := range want.Organization {
		if !slices.Contains(c.Leaf.Subject.Organization, o) {
			return false
		}
	}
	if s == m.server {
		for _, ip := range m.opts.ServingIPs {
			if !slices.ContainsFunc(c.Leaf.IPAddresses, ip.Equal) {
				return false
			}
		}
	}
	return true
}

func (m *Manager) subject(s *slot) pkix.Name {
	n := pkix.Name{CommonName: "system:node:" + m.opts.NodeName, Organization: []string{OrgNodes}}
	if s == m.client {
		n.Organization = append(n.Organization, OrgHub)
		for _, o := range m.opts.Organizations {
			if !slices.Contains(n.Organization, o) {
				n.Organization = append(n.Organization, o)
			}
		}
	}
	return n
}

func (m *Manager) servers() []string {
	if m.opts.Servers == nil {
		return nil
	}
	return m.opts.Servers()
}

// adoptCA makes ca (proved by the bootstrap credentials) the cluster CA. When another
// CA was in place, the hub's certificates, signed by it, are retired so that both
// are requested again.
func (m *Manager) adoptCA(ca []byte, log *slog.Logger) {
	old, err := os.ReadFile(m.caFile)
	if err == nil && bytes.Equal(bytes.TrimSpace(old), bytes.TrimSpace(ca)) {
		return
	}
	if err := os.MkdirAll(m.opts.PKIDir, 0o700); err != nil {
		log.Error("cannot create the pki directory", slog.Any("err", err))
		return
	}
	if err := writeFileAtomic(m.caFile, ca); err != nil {
		log.Error("cannot write the cluster CA", slog.Any("err", err))
		return
	}
	if len(old) == 0 {
		log.Info("cluster CA written", slog.String("file", m.caFile), slog.String("pin", pinsOf(ca)))
		return
	}
	if own, _ := m.client.current(); own != nil && signedBy(own.Leaf, ca) {
		// Another bundle (a CA added for a rotation, other bytes) that still signs our
		// certificate: nothing to request again.
		log.Info("cluster CA bundle updated; the hub's certificate is signed by it", slog.String("file", m.caFile),
			slog.String("old_ca", pinsOf(old)), slog.String("new_ca", pinsOf(ca)))
		return
	}
	log.Warn("the cluster CA changed under this node (the cluster was rebuilt, or the node joined another one): "+
		"the bootstrap credentials prove the new CA, so the hub drops its certificates of the old CA and requests new ones",
		slog.String("old_ca", pinsOf(old)), slog.String("new_ca", pinsOf(ca)), slog.String("file", m.caFile))
	for _, s := range []*slot{m.client, m.server} {
		if err := s.store.retire(); err != nil {
			log.Warn("cannot retire the old certificate", slog.String("kind", s.kind), slog.Any("err", err))
		}
		s.set(nil)
		s.setState("the cluster CA changed; a new certificate is being requested")
		s.poke()
	}
}

// signedBy reports whether c chains to a CA in caPEM.
func signedBy(c *x509.Certificate, caPEM []byte) bool {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return false
	}
	_, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err == nil
}

func pinsOf(caPEM []byte) string {
	cs, err := parseCerts(caPEM)
	if err != nil {
		return "unparsable"
	}
	var out []string
	for _, c := range cs {
		out = append(out, CAPin(c))
	}
	return strings.Join(out, ",")
}

// renew requests one new certificate for s and puts it in use.
func (m *Manager) renew(ctx context.Context, s *slot, log *slog.Logger) error {
	servers := m.servers()
	if len(servers) == 0 {
		return errors.New("no apiserver address")
	}
	var cfg *rest.Config
	via := "the hub's client certificate"
	own, _ := m.client.current()
	if own != nil && !m.valid(own) {
		own = nil
	}
	switch {
	case own != nil:
		cfg = m.selfConfig(servers[0])
	case s == m.server:
		return errWaitClient
	default:
		bctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		bcfg, ca, err := m.opts.Bootstrap.Config(bctx, servers)
		cancel()
		if err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
		m.adoptCA(ca, log)
		cfg, via = bcfg, "the bootstrap credentials"
	}
	cfg.UserAgent = "yurthub"
	cfg.QPS = -1
	rc, err := kubescheme.NewRESTClient(cfg, certificatesv1.SchemeGroupVersion)
	if err != nil {
		return err
	}
	if t, ok := cfg.Transport.(*http.Transport); ok {
		defer t.CloseIdleConnections()
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	subject := m.subject(s)
	var ips []net.IP
	usages := []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}
	if s == m.server {
		ips = m.opts.ServingIPs
		usages = []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth}
	}
	csrPEM, err := cert.MakeCSR(key, &subject, nil, ips)
	if err != nil {
		return err
	}
	keyPEM, err := keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return err
	}
	req := &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "yurthub-" + s.kind + "-"},
		Spec:       certificatesv1.CertificateSigningRequestSpec{Request: csrPEM, SignerName: s.signer, Usages: usages},
	}
	created := &certificatesv1.CertificateSigningRequest{}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	err = rc.Post().Resource("certificatesigningrequests").Body(req).Do(cctx).Into(created)
	cancel()
	if err != nil {
		return fmt.Errorf("create a CertificateSigningRequest on %s with %s: %w", cfg.Host, via, err)
	}
	log.Info("certificate signing request created", slog.String("csr", created.Name), slog.String("signer", s.signer),
		slog.String("with", via), slog.String("server", cfg.Host))
	certPEM, err := m.waitIssued(ctx, rc, s, created.Name, log)
	if err != nil {
		return err
	}
	c, err := s.store.update(certPEM, keyPEM, time.Now())
	if err != nil {
		return fmt.Errorf("store the new %s certificate: %w", s.kind, err)
	}
	old, _ := s.current()
	s.set(c)
	s.mu.Lock()
	s.rotations++
	s.lastErr = ""
	s.mu.Unlock()
	var oldLeaf *x509.Certificate
	if old != nil {
		oldLeaf = old.Leaf
	}
	_, deadline := s.current()
	log.Info("new certificate in use", slog.String("csr", created.Name), slog.String("serial", serial(c.Leaf)),
		slog.String("old_serial", serial(oldLeaf)), slog.Time("not_after", c.Leaf.NotAfter), slog.Time("next_rotation", deadline),
		slog.String("file", s.store.currentPath()))
	if m.opts.OnRotate != nil {
		m.opts.OnRotate(s.kind, oldLeaf, c.Leaf)
	}
	if s == m.client {
		m.server.poke()
	}
	return nil
}

// selfConfig is a client config that authenticates with the hub's current client
// certificate (read on every handshake) and trusts the cluster CA.
func (m *Manager) selfConfig(server string) *rest.Config {
	return &rest.Config{Host: server, Transport: &http.Transport{
		Proxy:               nil,
		TLSClientConfig:     UpstreamTLS(m),
		TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2:   true,
	}}
}

// waitIssued polls the CSR until it is issued, denied or failed, logging every
// PendingLogInterval while it waits for approval.
func (m *Manager) waitIssued(ctx context.Context, rc rest.Interface, s *slot, name string, log *slog.Logger) ([]byte, error) {
	approve := "kubectl certificate approve " + name
	s.setState(fmt.Sprintf("waiting for CSR %s to be approved and signed (%s)", name, approve))
	began := time.Now()
	nextLog := began.Add(m.opts.PendingLogInterval)
	logged := false
	for {
		got := &certificatesv1.CertificateSigningRequest{}
		gctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := rc.Get().Resource("certificatesigningrequests").Name(name).Do(gctx).Into(got)
		cancel()
		switch {
		case apierrors.IsNotFound(err):
			return nil, fmt.Errorf("CSR %s was deleted before it was signed", name)
		case apierrors.IsUnauthorized(err):
			// The credentials the CSR was made with are no longer accepted (the hub's
			// own certificate expired while the CSR waited, e.g. the signer was slow
			// after an outage): waiting on would wait forever. A new CSR is made, with
			// the bootstrap credentials if the hub's certificate is no longer valid.
			return nil, fmt.Errorf("%w: reading CSR %s: %v", errCredentialsGone, name, err)
		case err != nil:
			log.Debug("CSR status not read", slog.String("csr", name), slog.Any("err", err))
		default:
			approved := false
			for _, c := range got.Status.Conditions {
				if c.Status != corev1.ConditionTrue && c.Status != "" {
					continue
				}
				switch c.Type {
				case certificatesv1.CertificateDenied:
					return nil, fmt.Errorf("CSR %s was denied: %s %s", name, c.Reason, c.Message)
				case certificatesv1.CertificateFailed:
					return nil, fmt.Errorf("CSR %s failed: %s %s", name, c.Reason, c.Message)
				case certificatesv1.CertificateApproved:
					approved = true
				}
			}
			if len(got.Status.Certificate) > 0 {
				if logged {
					log.Info("CSR signed", slog.String("csr", name), slog.Duration("waited", time.Since(began).Round(time.Second)))
				}
				return got.Status.Certificate, nil
			}
			if !approved && time.Now().After(nextLog) {
				log.Warn("CSR waits for approval: in an OpenYurt cluster yurt-manager approves it; otherwise approve it by hand",
					slog.String("csr", name), slog.String("signer", s.signer), slog.String("approve", approve),
					slog.Duration("waiting", time.Since(began).Round(time.Second)))
				nextLog = time.Now().Add(m.opts.PendingLogInterval)
				logged = true
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(m.opts.PollInterval):
		}
	}
}
