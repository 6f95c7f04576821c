package cmd

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/yurthub/yurthub/internal/testenv"
	"github.com/yurthub/yurthub/internal/testkube"
)

// TestMain lets a test run the program itself: with YURTHUB_TEST_MAIN set, the test
// binary is yurthub, its arguments the newline-separated YURTHUB_TEST_ARGS.
func TestMain(m *testing.M) {
	if os.Getenv("YURTHUB_TEST_MAIN") == "1" {
		os.Exit(Main(strings.Split(os.Getenv("YURTHUB_TEST_ARGS"), "\n"), os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestYurtadmJoinStartsTheDaemon runs the program with the command line OpenYurt's
// yurthub YurtStaticSet template (what yurtadm join installs) gives it, plus what
// a test needs (ports, root dir, no dummy interface), against a control plane
// prepared like kubeadm init: it joins with the bootstrap file, becomes ready, serves
// kubelet, says which flag has no effect, and stops cleanly on SIGTERM.
func TestYurtadmJoinStartsTheDaemon(t *testing.T) {
	const node = "edge-1"
	c := testkube.Start(t, testkube.Options{Nodes: []string{node}, ControllerManager: true})
	c.PrepareTokenBootstrap(t)
	token := c.CreateBootstrapToken(t)
	c.AutoApproveCSRs(t)
	admin := kubernetes.NewForConfigOrDie(c.AdminConfig())
	if _, err := admin.CoreV1().Nodes().Create(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bootstrap := filepath.Join(dir, "bootstrap-hub.conf")
	kc := "apiVersion: v1\nkind: Config\nclusters:\n- name: cluster\n  cluster:\n    server: " + c.URL() +
		"\n    certificate-authority-data: " + base64.StdEncoding.EncodeToString(c.CAPEM()) +
		"\nusers:\n- name: token-bootstrap-client\n  user:\n    token: " + token +
		"\ncontexts:\n- name: bootstrap\n  context:\n    cluster: cluster\n    user: token-bootstrap-client\ncurrent-context: bootstrap\n"
	if err := os.WriteFile(bootstrap, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	port := func() int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
	serve, proxyPort, secure := port(), port(), port()
	args := []string{"yurthub",
		// OpenYurt's template:
		"--v=2", "--bind-address=127.0.0.1", "--server-addr=" + c.URL(), "--node-name=" + node,
		"--bootstrap-file=" + bootstrap, "--working-mode=edge", "--namespace=kube-system",
		"--hub-cert-organizations=org-a", "--nodepool-name=pool-a",
		// this test's:
		"--root-dir=" + filepath.Join(dir, "hub"), "--disk-cache-path=" + filepath.Join(dir, "no-cache"),
		"--serve-port=" + strconv.Itoa(serve), "--proxy-port=" + strconv.Itoa(proxyPort), "--proxy-secure-port=" + strconv.Itoa(secure),
		"--enable-dummy-if=false", "--enable-iptables=false",
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "YURTHUB_TEST_MAIN=1", "YURTHUB_TEST_ARGS="+strings.Join(args, "\n"))
	logs := &testenv.LogBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	began := time.Now()
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/v1/readyz", serve))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("yurthub exited: %v\n%s", err, logs.String())
		default:
		}
		if time.Since(began) > 60*time.Second {
			t.Fatalf("not ready after 60s:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("yurtadm's command line: ready %s after start", time.Since(began).Round(time.Millisecond))
	nodeURL := fmt.Sprintf("http://127.0.0.1:%d/api/v1/nodes/%s", proxyPort, node)
	for {
		req, _ := http.NewRequest(http.MethodGet, nodeURL, nil)
		req.Header.Set("User-Agent", "kubelet/v1.36.3 (linux/amd64) kubernetes/test")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Since(began) > 75*time.Second {
			t.Fatalf("kubelet's node GET through the hub never answered 200 (%v)\n%s", err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit 30s after SIGTERM\n%s", logs.String())
	}
	out := logs.String()
	for _, want := range []string{`msg="response filters" part=filter`, `nodepool=pool-a`, `msg="new certificate in use" part=certs kind=client`} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "level=ERROR") {
		t.Errorf("a clean join logged an error:\n%s", out)
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "no effect yet") || strings.Contains(l, "new certificate in use") || strings.Contains(l, "level=ERROR") {
			t.Log(l)
		}
	}
}
