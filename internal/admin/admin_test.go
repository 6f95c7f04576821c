package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/yurthub/yurthub/internal/store"
	"github.com/yurthub/yurthub/internal/testenv"
)

var ctx = context.Background()

func checkFile(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("consistency check: %v", err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("consistency check: %v", err)
		}
		return nil
	})
}

// sampleStore builds a cache from the OpenYurt sample plus a protobuf ConfigMap and
// a discovery response, and returns its path (closed).
func sampleStore(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "cache.db")
	s, err := store.Open(path, store.Options{OpenYurtCacheDir: filepath.Join(testenv.RepoRoot(t), "testdata", "openyurt-cache")})
	if err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: "proto-cm", Namespace: "kube-system", ResourceVersion: "77"},
		Data:       map[string]string{"k": "v"}}
	var pb bytes.Buffer
	if err := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme).Encode(cm, &pb); err != nil {
		t.Fatal(err)
	}
	if err := s.PutObject(ctx, store.ObjectKey{Component: "kube-proxy", Resource: store.Resource{Version: "v1", Resource: "configmaps"}, Namespace: "kube-system", Name: "proto-cm"},
		store.Object{Namespace: "kube-system", Name: "proto-cm", ResourceVersion: 77, Encoding: store.EncodingProtobuf, Data: pb.Bytes()}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRaw(ctx, "kubelet", "/version", "application/json", []byte(`{"major":"1","minor":"36"}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { checkFile(t, path) })
	return path
}

type list struct {
	APIVersion string           `json:"apiVersion"`
	Kind       string           `json:"kind"`
	Items      []map[string]any `json:"items"`
}

func parseList(t *testing.T, out []byte, format string) list {
	t.Helper()
	var l list
	var err error
	if format == FormatYAML {
		err = yaml.Unmarshal(out, &l)
	} else {
		err = json.Unmarshal(out, &l)
	}
	if err != nil {
		t.Fatalf("dump output is not a %s List: %v\n%s", format, err, out)
	}
	if l.APIVersion != "v1" || l.Kind != "List" {
		t.Fatalf("dump is %s/%s, want v1/List", l.APIVersion, l.Kind)
	}
	return l
}

func item(l list, kind, name string) map[string]any {
	for _, it := range l.Items {
		if it["kind"] == kind && it["metadata"].(map[string]any)["name"] == name {
			return it
		}
	}
	return nil
}

func TestStoppedNode(t *testing.T) {
	path := sampleStore(t)
	target := Target{Socket: filepath.Join(filepath.Dir(path), "hub.sock"), CacheFile: path}

	var out bytes.Buffer
	if err := Query(ctx, target, Request{Op: "inspect"}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"schema version:  3", "kubelet", "pods.v1", "leases.v1.coordination.k8s.io", "imported 11 objects",
		"/version", "complete: imported from OpenYurt"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := Query(ctx, target, Request{Op: "inspect", Format: FormatJSON}, &out); err != nil {
		t.Fatal(err)
	}
	var st store.Stats
	if err := json.Unmarshal(out.Bytes(), &st); err != nil || len(st.Components) != 3 {
		t.Fatalf("inspect -o json: %v, %d components\n%s", err, len(st.Components), out.String())
	}

	tests := []struct {
		name      string
		req       Request
		wantItems int
		check     func(t *testing.T, l list)
	}{
		{"everything json", Request{Op: "dump", Format: FormatJSON}, 12, nil},
		{"everything yaml", Request{Op: "dump", Format: FormatYAML}, 12, nil},
		{"component", Request{Op: "dump", Dump: DumpOptions{Filter: store.Filter{Component: "kube-proxy"}}}, 3, nil},
		{"resource", Request{Op: "dump", Dump: DumpOptions{Filter: store.Filter{Resource: store.ParseResource("services")}}}, 2, nil},
		{"resource with group", Request{Op: "dump", Dump: DumpOptions{Filter: store.Filter{Resource: store.ParseResource("leases.v1.coordination.k8s.io")}}}, 1, nil},
		{"namespace and name", Request{Op: "dump", Dump: DumpOptions{Filter: store.Filter{Namespace: "default", Name: "kubernetes"}}}, 2, nil},
		{"nothing matches", Request{Op: "dump", Format: FormatYAML, Dump: DumpOptions{Filter: store.Filter{Component: "nobody"}}}, 0, nil},
		{"secrets redacted", Request{Op: "dump", Dump: DumpOptions{Filter: store.Filter{Resource: store.ParseResource("secrets")}}}, 2,
			func(t *testing.T, l list) {
				for _, it := range l.Items {
					for k, v := range it["data"].(map[string]any) {
						if v != Redacted {
							t.Errorf("%s data %s = %v, want %s", it["metadata"].(map[string]any)["name"], k, v, Redacted)
						}
					}
				}
			}},
		{"secrets shown when asked", Request{Op: "dump", Format: FormatYAML, Dump: DumpOptions{ShowSecrets: true, Filter: store.Filter{Name: "db-password"}}}, 1,
			func(t *testing.T, l list) {
				if got := l.Items[0]["data"].(map[string]any)["password"]; got != "czNjcjN0LXBhc3N3b3Jk" {
					t.Errorf("--show-secrets password = %v", got)
				}
			}},
		{"protobuf decoded", Request{Op: "dump", Dump: DumpOptions{Filter: store.Filter{Name: "proto-cm"}}}, 1,
			func(t *testing.T, l list) {
				it := l.Items[0]
				if it["kind"] != "ConfigMap" || it["apiVersion"] != "v1" || it["data"].(map[string]any)["k"] != "v" {
					t.Errorf("protobuf ConfigMap dumped as %v", it)
				}
				if it["metadata"].(map[string]any)["annotations"].(map[string]any)[ComponentAnnotation] != "kube-proxy" {
					t.Errorf("no component annotation: %v", it["metadata"])
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := Query(ctx, target, tc.req, &out); err != nil {
				t.Fatal(err)
			}
			format := tc.req.Format
			if format == "" {
				format = FormatJSON
			}
			l := parseList(t, out.Bytes(), format)
			if len(l.Items) != tc.wantItems {
				t.Fatalf("%d items, want %d:\n%s", len(l.Items), tc.wantItems, out.String())
			}
			if tc.check != nil {
				tc.check(t, l)
			}
		})
	}
	if err := Query(ctx, target, Request{Op: "dump", Format: "xml"}, &out); err == nil {
		t.Fatal("dump -o xml accepted")
	}
}

// A running daemon holds the lock: hubctl must get the same answer over the socket.
func TestRunningNodeOverSocket(t *testing.T) {
	path := sampleStore(t)
	// Expected output, read while nothing runs.
	target := Target{Socket: filepath.Join(filepath.Dir(path), "hub.sock"), CacheFile: path}
	var want bytes.Buffer
	if err := Query(ctx, target, Request{Op: "dump", Format: FormatYAML}, &want); err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	errc := make(chan error, 1)
	srv, err := Listen(target.Socket, s, slog.New(slog.DiscardHandler), errc)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(target.Socket)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %v mode %v", err, fi.Mode())
	}
	if _, err := Listen(target.Socket, s, slog.New(slog.DiscardHandler), errc); err == nil || !strings.Contains(err.Error(), "already serves") {
		t.Fatalf("second Listen on a live socket: %v", err)
	}
	var got bytes.Buffer
	if err := Query(ctx, target, Request{Op: "dump", Format: FormatYAML}, &got); err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Fatalf("socket dump differs from the file dump:\n%s\n---\n%s", got.String(), want.String())
	}
	got.Reset()
	if err := Query(ctx, target, Request{Op: "inspect"}, &got); err != nil || !strings.Contains(got.String(), "kubelet") {
		t.Fatalf("inspect over the socket: %v\n%s", err, got.String())
	}
	if err := Query(ctx, target, Request{Op: "dump", Format: "xml"}, &got); err == nil || !strings.Contains(err.Error(), "json or yaml") {
		t.Fatalf("bad format over the socket: %v", err)
	}
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(target.Socket); !os.IsNotExist(err) {
		t.Fatalf("socket left behind after Shutdown: %v", err)
	}
	// Locked file and nobody on the socket: a clear message.
	target.LockTimeout = 100_000_000
	err = Query(ctx, target, Request{Op: "inspect"}, &got)
	if err == nil || !strings.Contains(err.Error(), "is locked") || !strings.Contains(err.Error(), "hub.sock") {
		t.Fatalf("locked file, no socket: %v", err)
	}
}

// A stale socket file (daemon killed) is not an answer: fall back to the file.
func TestStaleSocketFallsBack(t *testing.T) {
	path := sampleStore(t)
	sock := filepath.Join(filepath.Dir(path), "hub.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	var out bytes.Buffer
	if err := Query(ctx, Target{Socket: sock, CacheFile: path}, Request{Op: "inspect"}, &out); err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	if !strings.Contains(out.String(), "kubelet") {
		t.Fatalf("inspect: %s", out.String())
	}
	err = Query(ctx, Target{Socket: sock, CacheFile: filepath.Join(t.TempDir(), "none.db")}, Request{Op: "inspect"}, &out)
	if err == nil || !strings.Contains(err.Error(), "no cache at") {
		t.Fatalf("missing file: %v", err)
	}
}

// TestDamagedObjectShown: bytes of one cached Secret changed in place in the real
// file (pages intact). hubctl inspect names it and dump shows it as damaged, never
// its broken bytes; the other objects are dumped as before.
func TestDamagedObjectShown(t *testing.T) {
	path := sampleStore(t)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off := bytes.Index(data, []byte("czNjcjN0LXBhc3N3b3Jk"))
	if off < 0 {
		t.Fatal("the sample secret's bytes are not in the file")
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("\x00\x01\"}garbage\xff"), int64(off)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	target := Target{Socket: filepath.Join(filepath.Dir(path), "hub.sock"), CacheFile: path}
	var out bytes.Buffer
	if err := Query(ctx, target, Request{Op: "inspect"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "damaged: kubelet secrets.v1: 1 object(s) failed the integrity check, never served: default/db-password") {
		t.Errorf("inspect does not name the damaged secret:\n%s", out.String())
	}
	out.Reset()
	if err := Query(ctx, target, Request{Op: "dump", Dump: DumpOptions{ShowSecrets: true}}, &out); err != nil {
		t.Fatal(err)
	}
	l := parseList(t, out.Bytes(), FormatJSON)
	if len(l.Items) != 12 {
		t.Fatalf("%d items, want 12", len(l.Items))
	}
	it := item(l, "Unknown", "db-password")
	if it == nil || !strings.Contains(it["hubctl.yurthub.io/damaged"].(string), "integrity check") || it["data"] != nil {
		t.Fatalf("the damaged secret is dumped as %v", it)
	}
	if strings.Contains(out.String(), "garbage") {
		t.Fatal("dump printed the damaged bytes")
	}
}

// TestInspectTruncatesLongCells: one view with a 97k-character selector must not pad
// every row of the text table to its width (15 lines weighed 900 KB); the cell is
// cut and says so, and -o json keeps the selector whole.
func TestInspectTruncatesLongCells(t *testing.T) {
	path := sampleStore(t)
	s, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	long := "labelSelector=app=" + strings.Repeat("z", 97_000)
	k := store.ListKey{Component: "kubelet", Resource: store.Resource{Version: "v1", Resource: "pods"}, Selector: long}
	if err := s.ReplaceList(ctx, k, 5, nil); err != nil {
		t.Fatal(err)
	}
	s.Close()
	target := Target{Socket: filepath.Join(filepath.Dir(path), "hub.sock"), CacheFile: path}
	var out bytes.Buffer
	if err := Query(ctx, target, Request{Op: "inspect"}, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out.String(), "\n")
	t.Logf("inspect: %d bytes, %d lines", out.Len(), len(lines))
	for _, l := range lines {
		if len(l) > 400 {
			t.Errorf("inspect line of %d bytes (want <= 400): %.200s...", len(l), l)
		}
	}
	if out.Len() > 16<<10 || !strings.Contains(out.String(), "more chars; -o json shows all)") {
		t.Errorf("inspect output is %d bytes (want < 16 KiB) or does not say a cell was cut:\n%.2000s", out.Len(), out.String())
	}
	out.Reset()
	if err := Query(ctx, target, Request{Op: "inspect", Format: FormatJSON}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), long) {
		t.Error("inspect -o json does not keep the long selector whole")
	}
}
