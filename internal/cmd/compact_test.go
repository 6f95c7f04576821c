package cmd

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/yurthub/yurthub/internal/admin"
	"github.com/yurthub/yurthub/internal/store"
)

// TestHubctlCompact: a stopped node's cache that held 10k pods, then none, shrinks
// with hubctl compact; inspect shows the reclaimable bytes before and the sizes
// after; the objects still there are unchanged.
func TestHubctlCompact(t *testing.T) {
	root := t.TempDir()
	path := filepath.Join(root, "cache.db")
	s, err := store.Open(path, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pods := store.ListKey{Component: "kubelet", Resource: store.Resource{Version: "v1", Resource: "pods"}, Selector: "fieldSelector=spec.nodeName%3Dedge-1"}
	w, err := s.BeginList(ctx, pods)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10000 {
		name := fmt.Sprintf("p%05d", i)
		if err := w.Add(store.Object{Namespace: "default", Name: name, ResourceVersion: uint64(i + 1),
			Data: fmt.Appendf(nil, `{"apiVersion":"v1","kind":"Pod","metadata":{"name":%q,"namespace":"default"},"pad":%q}`, name, strings.Repeat("x", 2500))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(10000); err != nil {
		t.Fatal(err)
	}
	secrets := store.ListKey{Component: "kubelet", Resource: store.Resource{Version: "v1", Resource: "secrets"}}
	if err := s.ReplaceList(ctx, secrets, 9, []store.Object{{Namespace: "ns", Name: "s1", ResourceVersion: 9,
		Data: []byte(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s1","namespace":"ns"}}`)}}); err != nil {
		t.Fatal(err)
	}
	if err := s.ReplaceList(ctx, pods, 20000, nil); err != nil { // the pods are gone
		t.Fatal(err)
	}
	s.Close()

	run := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := Main(append([]string{"hubctl"}, args...), &out, &errb); code != ExitOK {
			t.Fatalf("hubctl %v: exit %d: %s%s", args, code, out.String(), errb.String())
		}
		return out.String()
	}
	header := func(s string) string { return strings.SplitN(s, "\n\n", 2)[0] }
	before := run("inspect", "--root-dir", root)
	t.Logf("hubctl inspect before:\n%s", header(before))
	if !strings.Contains(before, "reclaimable:") {
		t.Fatal("inspect does not show the reclaimable bytes")
	}
	if js := run("inspect", "--root-dir", root, "-o", "json"); !strings.Contains(js, `"reclaimableBytes": `) {
		t.Fatalf("inspect -o json has no reclaimableBytes:\n%.400s", js)
	}
	out := run("compact", "--root-dir", root)
	t.Logf("hubctl compact: %s", strings.TrimSpace(out))
	after := run("inspect", "--root-dir", root)
	t.Logf("hubctl inspect after:\n%s", header(after))
	var sb, sa int64
	fmt.Sscanf(out, "compacted "+path+": %d -> %d bytes", &sb, &sa)
	if sb == 0 || sa*10 >= sb {
		t.Fatalf("not shrunk to under 10%%: %s", out)
	}
	if !strings.Contains(after, "secrets.v1") || !strings.Contains(run("dump", "--root-dir", root, "--name", "s1"), `"name": "s1"`) {
		t.Fatal("the secret did not survive the compaction")
	}
	// A running daemon (its admin server on the socket, the file open): refused.
	s, err = store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := admin.Listen(filepath.Join(root, "hub.sock"), s, slog.New(slog.DiscardHandler), make(chan error, 1))
	if err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	code := Main([]string{"hubctl", "compact", "--root-dir", root}, &bytes.Buffer{}, &errb)
	_ = srv.Shutdown(ctx)
	s.Close()
	if code != ExitError || !strings.Contains(errb.String(), "stop it first") {
		t.Fatalf("compact under a running daemon: exit %d %s", code, errb.String())
	}
	t.Logf("hubctl compact while the daemon runs: %s", strings.TrimSpace(errb.String()))
	errb.Reset()
	if code := Main([]string{"hubctl", "compact", "--root-dir", t.TempDir()}, &bytes.Buffer{}, &errb); code != ExitError || !strings.Contains(errb.String(), "no cache at") {
		t.Fatalf("compact of a missing cache: exit %d %s", code, errb.String())
	}
}
