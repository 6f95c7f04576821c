package ota_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/yurthub/yurthub/internal/kubescheme"
	"github.com/yurthub/yurthub/internal/ota"
	"github.com/yurthub/yurthub/internal/testkube"
)

// TestStaticPodUpgrade: a YurtStaticSet pod (a mirror pod owned by its Node, named
// <name>-<node>) gets the manifest of ConfigMap yurt-static-set-<name> written over
// kubelet's manifest file, atomically, the old one kept; a missing ConfigMap and a
// ConfigMap with more than one manifest are refused. The cloud is a real apiserver,
// reached with the node's identity.
func TestStaticPodUpgrade(t *testing.T) {
	const node = "edge-1"
	c := testkube.Start(t, testkube.Options{Nodes: []string{node}})
	c.GrantNodeReadAll(t, node)
	ctx := context.Background()
	adm := kubernetes.NewForConfigOrDie(c.AdminConfig())
	n, err := adm.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	yes := true
	mirror := func(name string) {
		t.Helper()
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "kube-system",
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node, UID: n.UID, Controller: &yes}}},
			Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "nginx:1"}}}}
		p, err := adm.CoreV1().Pods("kube-system").Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.Status.Conditions = []corev1.PodCondition{{Type: ota.PodNeedUpgrade, Status: corev1.ConditionTrue, Message: ota.VersionPrefix + "abc"}}
		if _, err := adm.CoreV1().Pods("kube-system").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mirror("web-" + node)
	mirror("orphan-" + node)
	mirror("bad-" + node)
	newManifest := "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: nginx:2\n"
	for name, data := range map[string]map[string]string{"web": {"web": newManifest}, "bad": {"a.yaml": "x", "b.yaml": "y"}} {
		if _, err := adm.CoreV1().ConfigMaps("kube-system").Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: ota.StaticSetConfigPrefix + name, Namespace: "kube-system"}, Data: data}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	manifests, backup := t.TempDir(), filepath.Join(t.TempDir(), "ota-backup")
	if err := os.WriteFile(filepath.Join(manifests, "web.yaml"), []byte("old manifest\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	ota.Register(mux, ota.Options{Node: node, ManifestDir: manifests, BackupDir: backup,
		Cloud: func() (*rest.RESTClient, error) {
			return kubescheme.NewRESTClient(c.NodeConfig(node), corev1.SchemeGroupVersion)
		}})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	post := func(pod string) (int, string) {
		resp, err := http.Post(srv.URL+"/openyurt.io/v1/namespaces/kube-system/pods/"+pod+"/upgrade", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		t.Logf("POST .../pods/%s/upgrade -> %d %s", pod, resp.StatusCode, strings.TrimSpace(string(b)))
		return resp.StatusCode, string(b)
	}
	if code, body := post("web-" + node); code != 200 || !strings.Contains(body, "Start updating pod kube-system/web-"+node) {
		t.Fatalf("upgrade: %d %s", code, body)
	}
	got, err := os.ReadFile(filepath.Join(manifests, "web.yaml"))
	if err != nil || string(got) != newManifest {
		t.Fatalf("manifest after upgrade: %q %v", got, err)
	}
	if old, err := os.ReadFile(filepath.Join(backup, "web.yaml.bak")); err != nil || string(old) != "old manifest\n" {
		t.Fatalf("backup: %q %v", old, err)
	}
	entries, _ := os.ReadDir(manifests)
	if len(entries) != 1 {
		t.Fatalf("manifest dir holds %d files (a temporary file left?)", len(entries))
	}
	if fi, _ := os.Stat(filepath.Join(manifests, "web.yaml")); fi.Mode().Perm() != 0o600 {
		t.Errorf("manifest mode %v", fi.Mode().Perm())
	}
	if code, body := post("orphan-" + node); code != http.StatusForbidden || !strings.Contains(body, "Configmap for static pod does not exist") {
		t.Fatalf("no ConfigMap: %d %s", code, body)
	}
	if code, body := post("bad-" + node); code != http.StatusInternalServerError || !strings.Contains(body, "want exactly one") {
		t.Fatalf("two manifests in the ConfigMap: %d %s", code, body)
	}
	// No cache: /pods says so.
	resp, err := http.Get(srv.URL + "/pods")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/pods without a cache: %d %s", resp.StatusCode, b)
	}
	t.Logf("GET /pods without a cache -> %d %s", resp.StatusCode, strings.TrimSpace(string(b)))
}
