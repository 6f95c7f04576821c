package certs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Bootstrap holds the credentials the hub uses only to get its first certificates
// (or new ones when its own are expired or from another CA): a bootstrap kubeconfig
// (--bootstrap-file, what yurtadm writes), or a join token with CA pins
// (--join-token, --discovery-token-ca-cert-hash). A join token set through the hub
// server's /v1/token is kept in TokenFile (mode 0600) and wins over the command line's.
type Bootstrap struct {
	File      string   // --bootstrap-file; "" = none
	JoinToken string   // --join-token; "" = none
	Pins      []string // --discovery-token-ca-cert-hash
	SkipPin   bool     // --discovery-token-unsafe-skip-ca-verification
	TokenFile string   // where /v1/token keeps the join token; "" = not kept

	mu sync.Mutex
}

// ErrNoBootstrap says there are no bootstrap credentials at all.
var ErrNoBootstrap = errors.New("no bootstrap credentials: give --bootstrap-file, or --join-token with --discovery-token-ca-cert-hash, or set a join token with POST /v1/token")

// ErrBootstrapFile is wrapped by errors about --bootstrap-file's content.
var ErrBootstrapFile = errors.New("unusable bootstrap file")

// token returns the join token in force: the one set through /v1/token, else --join-token.
func (b *Bootstrap) token() string {
	if b == nil {
		return ""
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.TokenFile != "" {
		if data, err := os.ReadFile(b.TokenFile); err == nil {
			if t := strings.TrimSpace(string(data)); t != "" {
				return t
			}
		}
	}
	return b.JoinToken
}

// Present reports whether there is anything to bootstrap with.
func (b *Bootstrap) Present() bool {
	return b != nil && (b.File != "" || b.token() != "")
}

// SetJoinToken keeps token (already checked by the caller) for the next bootstrap.
func (b *Bootstrap) SetJoinToken(token string) error {
	if b == nil || b.TokenFile == "" {
		return errors.New("this hub keeps no join token (--bootstrap-mode=kubeletcertificate)")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return writeFileAtomic(b.TokenFile, []byte(token+"\n"))
}

// Config returns what to bootstrap with: a client config for the CSR API and the
// cluster CA the credentials vouch for. servers are tried in order for token discovery.
func (b *Bootstrap) Config(ctx context.Context, servers []string) (*rest.Config, []byte, error) {
	if !b.Present() {
		return nil, nil, ErrNoBootstrap
	}
	token := b.token()
	if b.File != "" {
		return b.fromFile(token)
	}
	if len(b.Pins) == 0 && !b.SkipPin {
		return nil, nil, fmt.Errorf("%w: the join token needs --discovery-token-ca-cert-hash (or --discovery-token-unsafe-skip-ca-verification)", ErrDiscovery)
	}
	var errs []error
	for _, s := range servers {
		ca, err := DiscoverCA(ctx, s, token, b.Pins, b.SkipPin)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		return &rest.Config{Host: s, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: ca}}, ca, nil
	}
	return nil, nil, errors.Join(errs...)
}

// fromFile reads --bootstrap-file: it must name a server, carry the CA (inline or as
// a file) and credentials. A join token set through /v1/token replaces its token.
func (b *Bootstrap) fromFile(token string) (*rest.Config, []byte, error) {
	data, err := os.ReadFile(b.File)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: --bootstrap-file %s: %v", ErrBootstrapFile, b.File, err)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: --bootstrap-file %s is not a usable kubeconfig: %v", ErrBootstrapFile, b.File, err)
	}
	if cfg.Host == "" || !strings.HasPrefix(cfg.Host, "https://") {
		return nil, nil, fmt.Errorf("%w: --bootstrap-file %s names no https server", ErrBootstrapFile, b.File)
	}
	ca := cfg.CAData
	if len(ca) == 0 && cfg.CAFile != "" {
		if ca, err = os.ReadFile(cfg.CAFile); err != nil {
			return nil, nil, fmt.Errorf("%w: --bootstrap-file %s: its certificate-authority: %v", ErrBootstrapFile, b.File, err)
		}
	}
	if len(ca) == 0 {
		return nil, nil, fmt.Errorf("%w: --bootstrap-file %s has no certificate-authority(-data): the hub would not know which server to trust", ErrBootstrapFile, b.File)
	}
	if _, err := parseCerts(ca); err != nil {
		return nil, nil, fmt.Errorf("%w: --bootstrap-file %s: its certificate authority: %v", ErrBootstrapFile, b.File, err)
	}
	if token != "" && token != b.JoinToken {
		cfg.BearerToken, cfg.BearerTokenFile = token, "" // set through /v1/token
	}
	if cfg.BearerToken == "" && cfg.BearerTokenFile == "" && len(cfg.CertData) == 0 && cfg.CertFile == "" {
		return nil, nil, fmt.Errorf("%w: --bootstrap-file %s has no credentials (token or client certificate)", ErrBootstrapFile, b.File)
	}
	cfg.CAData, cfg.CAFile = ca, ""
	return cfg, ca, nil
}
