package certs

import (
	"context"
	"encoding/base64"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/yurthub/yurthub/internal/testenv"
	"github.com/yurthub/yurthub/internal/testkube"
)

// TestManagerWaitsForApproval: on a real control plane whose CSRs nobody approves,
// the manager waits, says what is pending and how to approve it (in Ready and in a
// log line every PendingLogInterval), and once an approver appears it gets both
// certificates without a restart.
func TestManagerWaitsForApproval(t *testing.T) {
	c := testkube.Start(t, testkube.Options{ControllerManager: true})
	c.PrepareTokenBootstrap(t)
	token := c.CreateBootstrapToken(t)
	bootstrap := filepath.Join(t.TempDir(), "bootstrap.conf")
	kc := "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: " + c.URL() +
		"\n    certificate-authority-data: " + base64.StdEncoding.EncodeToString(c.CAPEM()) +
		"\nusers:\n- name: u\n  user:\n    token: " + token + "\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n"
	if err := os.WriteFile(bootstrap, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &testenv.LogBuffer{}
	m := NewManager(ManagerOptions{
		PKIDir: filepath.Join(t.TempDir(), "pki"), NodeName: "edge-1",
		Servers:            func() []string { return []string{c.URL()} },
		Bootstrap:          &Bootstrap{File: bootstrap},
		Log:                slog.New(slog.NewTextHandler(logs, nil)),
		PendingLogInterval: time.Second,
	})
	ctx, cancel := context.WithCancel(context.Background())
	m.Start(ctx)
	t.Cleanup(func() { cancel(); m.Wait() })

	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(logs.String(), "CSR waits for approval") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no repeated pending-approval line:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	err := m.Ready()
	if err == nil || !strings.Contains(err.Error(), "kubectl certificate approve yurthub-client-") {
		t.Fatalf("Ready while pending = %v; want it to name the CSR and the approve command", err)
	}
	t.Logf("pending: Ready says: %v", err)
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "CSR waits for approval") {
			t.Logf("log: %s", l)
			break
		}
	}

	approved := time.Now()
	c.AutoApproveCSRs(t)
	for m.Ready() != nil {
		if time.Since(approved) > 30*time.Second {
			t.Fatalf("not ready 30s after approval: %v\n%s", m.Ready(), logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("approved: client certificate in use %s after approval, no restart", time.Since(approved).Round(time.Millisecond))
	for {
		_, err := m.ServingCertificate()
		if err == nil {
			break
		}
		if time.Since(approved) > 60*time.Second {
			t.Fatalf("no serving certificate: %v\n%s", err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if m.Rotations(KindClient) != 1 || m.Rotations(KindServer) != 1 || m.NotAfter(KindClient).Before(time.Now()) {
		t.Fatalf("rotations %d/%d, client expiry %s", m.Rotations(KindClient), m.Rotations(KindServer), m.NotAfter(KindClient))
	}

	// A restart with another --hub-cert-organizations and no bootstrap credentials left:
	// the certificate no longer fits, so a new one is requested, authenticated by the
	// current (still valid) one.
	cancel()
	m.Wait()
	old, _ := m.ClientCertificate()
	logs2 := &testenv.LogBuffer{}
	m2 := NewManager(ManagerOptions{
		PKIDir: m.opts.PKIDir, NodeName: "edge-1", Organizations: []string{"org-b"},
		Servers: func() []string { return []string{c.URL()} },
		Log:     slog.New(slog.NewTextHandler(logs2, nil)),
	})
	ctx2, cancel2 := context.WithCancel(context.Background())
	m2.Start(ctx2)
	t.Cleanup(func() { cancel2(); m2.Wait() })
	for {
		cur, err := m2.ClientCertificate()
		if err == nil && cur.Leaf.SerialNumber.Cmp(old.Leaf.SerialNumber) != 0 {
			if !slices.Contains(cur.Leaf.Subject.Organization, "org-b") {
				t.Fatalf("new certificate without org-b: %v", cur.Leaf.Subject)
			}
			break
		}
		if time.Since(approved) > 90*time.Second {
			t.Fatalf("no new certificate for the new organizations:\n%s", logs2.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(logs2.String(), `with="the hub's client certificate"`) {
		t.Fatalf("the new certificate was not requested with the current one:\n%s", logs2.String())
	}
	t.Log("new --hub-cert-organizations: a new client certificate with org-b, requested with the current one (no bootstrap credentials)")
}
