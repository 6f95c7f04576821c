package certs

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func splitPair(t *testing.T, pair []byte) (certPEM, keyPEM []byte) {
	t.Helper()
	b, rest := pem.Decode(pair)
	if b == nil {
		t.Fatal("no PEM")
	}
	return pem.EncodeToMemory(b), rest
}

// TestPairStoreLayout: a pair is written 0600 under a dated name and made current by
// the <prefix>-current.pem symlink (kubelet's and OpenYurt's layout); retire removes
// only the link.
func TestPairStoreLayout(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, "ca")
	s := pairStore{dir: filepath.Join(dir, "pki"), prefix: "yurthub"}
	if _, err := s.load(); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("load of an empty store: %v", err)
	}
	c1, k1 := splitPair(t, ca.issue(t, "system:node:a", false))
	first, err := s.update(c1, k1, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	c2, k2 := splitPair(t, ca.issue(t, "system:node:a", false))
	second, err := s.update(c2, k2, time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	target, err := os.Readlink(s.currentPath())
	if err != nil || target != "yurthub-2026-01-02-03-04-06.pem" {
		t.Fatalf("current link -> %q (%v)", target, err)
	}
	for _, name := range []string{"yurthub-2026-01-02-03-04-05.pem", "yurthub-2026-01-02-03-04-06.pem"} {
		fi, err := os.Stat(filepath.Join(s.dir, name))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v mode %v, want 0600", name, err, fi.Mode())
		}
	}
	got, err := s.load()
	if err != nil || !bytes.Equal(got.Certificate[0], second.Certificate[0]) || got.Leaf == nil {
		t.Fatalf("load = %v, %v; want the second pair with its leaf", got, err)
	}
	if bytes.Equal(first.Certificate[0], second.Certificate[0]) {
		t.Fatal("two issues gave the same certificate")
	}
	if _, err := s.update(c1, k2, time.Now()); err == nil || !strings.Contains(err.Error(), "does not match its key") {
		t.Fatalf("a certificate with another key was stored: %v", err)
	}
	if err := s.retire(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.load(); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("load after retire: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.dir, "yurthub-2026-01-02-03-04-06.pem")); err != nil {
		t.Fatalf("retire removed the dated file: %v", err)
	}
}

// TestRotationDeadline: between 70% and 90% of the lifetime, and not always the same.
func TestRotationDeadline(t *testing.T) {
	nb := time.Now()
	c := &x509.Certificate{NotBefore: nb, NotAfter: nb.Add(1000 * time.Second)}
	seen := map[time.Time]bool{}
	for i := 0; i < 200; i++ {
		d := rotationDeadline(c)
		if d.Before(nb.Add(700*time.Second)) || d.After(nb.Add(900*time.Second)) {
			t.Fatalf("deadline %s after NotBefore, want 700-900s", d.Sub(nb))
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Fatalf("only %d distinct deadlines in 200: no jitter", len(seen))
	}
}

// TestBootstrapFile: what --bootstrap-file must hold, and each defect named.
func TestBootstrapFile(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, "ca")
	b64 := func(b []byte) string { return encodeB64(b) }
	good := "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://10.0.0.1:6443\n    certificate-authority-data: " + b64(ca.pem) +
		"\nusers:\n- name: u\n  user:\n    token: abcdef.0123456789abcdef\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n"
	cases := []struct {
		name, content, want string
	}{
		{"malformed", "{{{ not yaml", "not a usable kubeconfig"},
		{"no ca", strings.Replace(good, "    certificate-authority-data: "+b64(ca.pem)+"\n", "", 1), "no certificate-authority"},
		{"bad ca", strings.Replace(good, b64(ca.pem), b64([]byte("junk")), 1), "certificate authority"},
		{"http server", strings.Replace(good, "https://10.0.0.1", "http://10.0.0.1", 1), "no https server"},
		{"no credentials", strings.Replace(good, "    token: abcdef.0123456789abcdef\n", "    {}\n", 1), "no credentials"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(dir, tc.name)
			write(t, f, []byte(tc.content))
			_, _, err := (&Bootstrap{File: f}).Config(t.Context(), nil)
			if !errors.Is(err, ErrBootstrapFile) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), f) {
				t.Fatalf("error %v: want ErrBootstrapFile naming %s and saying %q", err, f, tc.want)
			}
		})
	}
	f := filepath.Join(dir, "good")
	write(t, f, []byte(good))
	b := &Bootstrap{File: f, TokenFile: filepath.Join(dir, "join-token")}
	cfg, gotCA, err := b.Config(t.Context(), nil)
	if err != nil || cfg.Host != "https://10.0.0.1:6443" || cfg.BearerToken != "abcdef.0123456789abcdef" || !bytes.Equal(gotCA, ca.pem) {
		t.Fatalf("good file: %+v %v", cfg, err)
	}
	// A token set through /v1/token replaces the file's, and is kept 0600.
	if err := b.SetJoinToken("zzzzzz.0123456789zzzzzz"); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(b.TokenFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("join token file: %v %v", err, fi.Mode())
	}
	if cfg, _, err := b.Config(t.Context(), nil); err != nil || cfg.BearerToken != "zzzzzz.0123456789zzzzzz" {
		t.Fatalf("after /v1/token: %+v %v", cfg, err)
	}
	if _, _, err := (&Bootstrap{}).Config(t.Context(), nil); !errors.Is(err, ErrNoBootstrap) {
		t.Fatalf("no credentials: %v", err)
	}
}

func encodeB64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
