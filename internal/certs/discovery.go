package certs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	"k8s.io/cluster-bootstrap/token/jws"
)

// Token discovery, as kubeadm join does it: the hub reads kube-public/cluster-info
// anonymously (the server is not trusted yet), checks the JWS signature that
// kube-controller-manager's bootstrap signer put beside the kubeconfig in it (keyed by
// the token id and made with the token secret: only someone holding the token could
// have made it), pins the CA in it by the hash of its public key, and reads
// cluster-info once more, now verifying the server with that CA.

// ErrDiscovery is wrapped by every token-discovery failure that retrying with the same
// token and pins cannot fix (wrong token, wrong pin, no cluster-info).
var ErrDiscovery = errors.New("token discovery failed")

// CAPin is the pin of a CA certificate in kubeadm's --discovery-token-ca-cert-hash
// form: "sha256:" and the hex SHA-256 of its SubjectPublicKeyInfo.
func CAPin(c *x509.Certificate) string {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// DiscoverCA runs token discovery against server (https://host:port) and returns the
// cluster CA (PEM) it proved. pins are --discovery-token-ca-cert-hash; with
// skipPin (--discovery-token-unsafe-skip-ca-verification) an unpinned CA is accepted.
func DiscoverCA(ctx context.Context, server, token string, pins []string, skipPin bool) ([]byte, error) {
	id, secret, ok := strings.Cut(token, ".")
	if !ok || id == "" || secret == "" {
		return nil, fmt.Errorf("%w: the join token is not <id>.<secret>", ErrDiscovery)
	}
	insecure := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		Proxy:           nil,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, // verified by the JWS check and the pin below
	}}
	cm, err := getClusterInfo(ctx, insecure, server)
	if err != nil {
		return nil, err
	}
	kubeconfig, ok := cm.Data[bootstrapapi.KubeConfigKey]
	if !ok {
		return nil, fmt.Errorf("%w: %s: kube-public/cluster-info has no %q key", ErrDiscovery, server, bootstrapapi.KubeConfigKey)
	}
	sig, ok := cm.Data[bootstrapapi.JWSSignatureKeyPrefix+id]
	if !ok {
		return nil, fmt.Errorf("%w: %s: kube-public/cluster-info is not signed for token id %q: the token does not exist, has expired, "+
			"is not for signing (usage-bootstrap-signing), or kube-controller-manager's bootstrap signer has not signed it yet", ErrDiscovery, server, id)
	}
	if !jws.DetachedTokenIsValid(sig, kubeconfig, id, secret) {
		return nil, fmt.Errorf("%w: %s: the signature of kube-public/cluster-info for token id %q does not verify with the join token's secret: wrong join token", ErrDiscovery, server, id)
	}
	caPEM, err := caFromKubeconfig([]byte(kubeconfig))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: kube-public/cluster-info: %v", ErrDiscovery, server, err)
	}
	cas, err := parseCerts(caPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: the CA in kube-public/cluster-info: %v", ErrDiscovery, server, err)
	}
	if !skipPin {
		var got []string
		matched := false
		for _, c := range cas {
			pin := CAPin(c)
			got = append(got, pin)
			for _, want := range pins {
				if strings.EqualFold(pin, want) {
					matched = true
				}
			}
		}
		if !matched {
			return nil, fmt.Errorf("%w: %s: the cluster CA's public key hash is %s, which matches no --discovery-token-ca-cert-hash: "+
				"another cluster, or someone between this node and the server", ErrDiscovery, server, strings.Join(got, ", "))
		}
	}
	// Now that the CA is trusted, make sure the server holds its key and serves the same
	// cluster-info.
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	secure := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		Proxy:           nil,
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
	again, err := getClusterInfo(ctx, secure, server)
	if err != nil {
		return nil, fmt.Errorf("%w: reading cluster-info again with its CA: %v", ErrDiscovery, err)
	}
	if again.Data[bootstrapapi.KubeConfigKey] != kubeconfig {
		return nil, fmt.Errorf("%w: %s: kube-public/cluster-info changed between the two reads", ErrDiscovery, server)
	}
	return caPEM, nil
}

func getClusterInfo(ctx context.Context, hc *http.Client, server string) (*corev1.ConfigMap, error) {
	u := strings.TrimSuffix(server, "/") + "/api/v1/namespaces/" + "kube-public" + "/configmaps/" + bootstrapapi.ConfigMapClusterInfo
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read kube-public/cluster-info from %s: %w", server, err) // not ErrDiscovery: the cloud may come back
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, fmt.Errorf("%w: %s has no kube-public/cluster-info: the control plane is not prepared for token join (kubeadm init phase bootstrap-token)", ErrDiscovery, server)
	case resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized:
		return nil, fmt.Errorf("%w: %s does not let anonymous clients read kube-public/cluster-info (%s)", ErrDiscovery, server, resp.Status)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("read kube-public/cluster-info from %s: %s", server, resp.Status)
	}
	var cm corev1.ConfigMap
	if err := json.Unmarshal(body, &cm); err != nil {
		return nil, fmt.Errorf("%w: %s: kube-public/cluster-info is not a ConfigMap: %v", ErrDiscovery, server, err)
	}
	return &cm, nil
}

// caFromKubeconfig returns the CA data of the kubeconfig's only (or current) cluster.
func caFromKubeconfig(data []byte) ([]byte, error) {
	cfg, err := clientcmd.Load(data)
	if err != nil {
		return nil, fmt.Errorf("not a kubeconfig: %w", err)
	}
	if ctx, ok := cfg.Contexts[cfg.CurrentContext]; ok {
		if c, ok := cfg.Clusters[ctx.Cluster]; ok && len(c.CertificateAuthorityData) > 0 {
			return c.CertificateAuthorityData, nil
		}
	}
	if len(cfg.Clusters) != 1 {
		return nil, fmt.Errorf("the kubeconfig has %d clusters and no current context naming one", len(cfg.Clusters))
	}
	for _, c := range cfg.Clusters {
		if len(c.CertificateAuthorityData) == 0 {
			return nil, errors.New("the kubeconfig's cluster has no certificate-authority-data")
		}
		return c.CertificateAuthorityData, nil
	}
	return nil, errors.New("the kubeconfig has no cluster")
}

// parseCerts parses every certificate in a PEM bundle; at least one is required.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := bytes.TrimSpace(data)
	for len(rest) > 0 {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return out, nil
}
