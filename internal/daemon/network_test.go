package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/yurthub/yurthub/internal/config"
	"github.com/yurthub/yurthub/internal/network"
	"github.com/yurthub/yurthub/internal/testenv"
)

// syncBuffer is a log sink safe for the daemon's goroutines.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDaemonNodeNetwork runs the whole daemon with --enable-dummy-if and
// --enable-iptables in a throw-away network namespace (the test binary re-executed
// under `unshare -n`). Where the kernel has no dummy driver (this machine) it asserts
// that the EOPNOTSUPP error reaches the daemon's log in words a person can act on,
// that /metrics counts it as kind no_driver, and that the proxy keeps serving on its
// other address; where dummy exists it asserts the interface carries the IP. Either
// way the iptables rules are in place while it runs and gone after a clean shutdown.
func TestDaemonNodeNetwork(t *testing.T) { testDaemonNodeNetwork(t, network.DefaultLinkKind) }

// TestDaemonNodeNetworkIFB is TestDaemonNodeNetwork with the interface of kind ifb,
// which every kernel here has: the daemon creates it with the dummy IP, and its
// proxy answers on that IP (what pods use), not only on --bind-proxy-address.
func TestDaemonNodeNetworkIFB(t *testing.T) { testDaemonNodeNetwork(t, "ifb") }

func testDaemonNodeNetwork(t *testing.T, kind string) {
	if os.Getenv("YURTHUB_NETNS") != "1" {
		testenv.RequireRoot(t)
		unshare := testenv.LookPath(t, "unshare")
		testenv.LookPath(t, "iptables")
		cmd := exec.Command(unshare, "-n", os.Args[0], "-test.run", "^"+t.Name()+"$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "YURTHUB_NETNS=1")
		out, err := cmd.CombinedOutput()
		t.Logf("in a new network namespace:\n%s", out)
		if err != nil || !bytes.Contains(out, []byte("--- PASS: "+t.Name())) {
			t.Fatalf("the test failed in its network namespace: %v", err)
		}
		return
	}
	lo, _ := netlink.LinkByName("lo")
	if err := netlink.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	hasDummy := true
	var probe netlink.Link = &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: "yh-probe"}}
	if kind != network.DefaultLinkKind {
		probe = &netlink.GenericLink{LinkAttrs: netlink.LinkAttrs{Name: "yh-probe"}, LinkType: kind}
	}
	if err := netlink.LinkAdd(probe); err != nil {
		if !errors.Is(err, syscall.EOPNOTSUPP) || kind != network.DefaultLinkKind {
			t.Fatalf("probing for the %s driver: %v", kind, err)
		}
		hasDummy = false
	} else {
		_ = netlink.LinkDel(probe)
	}
	defer func(k string) { linkKind = k }(linkKind)
	linkKind = kind

	cfg := testConfig(t, t.TempDir(), config.WorkingModeCloud)
	cfg.EnableDummyIf, cfg.EnableIPTables = true, true
	logs, stop := startDaemon(t, cfg)
	base := fmt.Sprintf("http://127.0.0.1:%d", cfg.ServePort)

	rules, err := exec.Command("iptables-save", "-t", "filter").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables-save: %v\n%s", err, rules)
	}
	for _, want := range []string{
		"-A INPUT -j YURTHUB-INPUT",
		fmt.Sprintf("-A YURTHUB-INPUT -d 169.254.2.1/32 -p tcp -m tcp --dport %d -j ACCEPT", cfg.ProxyPort),
		fmt.Sprintf("-A YURTHUB-OUTPUT -s 169.254.2.1/32 -p tcp -m tcp --sport %d -j ACCEPT", cfg.ProxySecurePort),
	} {
		if !strings.Contains(string(rules), want) {
			t.Errorf("while the daemon runs, iptables-save lacks %q:\n%s", want, rules)
		}
	}

	_, metrics := get(t, base+"/metrics")
	if hasDummy {
		l, err := netlink.LinkByName(config.DefaultDummyIfName)
		if err != nil || l.Type() != kind {
			t.Fatalf("no %s interface %s: %v", kind, config.DefaultDummyIfName, err)
		}
		// The proxy listens on the dummy IP too, as soon as it carries the address.
		dummyURL := fmt.Sprintf("http://%s/api/v1/namespaces", net.JoinHostPort(config.DefaultDummyIfIP, fmt.Sprint(cfg.ProxyPort)))
		deadline := time.Now().Add(15 * time.Second)
		for {
			code, body := get(t, dummyURL)
			if code != 0 {
				t.Logf("proxy on the dummy IP: GET %s -> %d", dummyURL, code)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the proxy does not answer on the dummy IP (%s): %s\nlog:\n%s", dummyURL, body, logs.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	} else {
		const words = "kernel has no dummy driver: load the dummy module (modprobe dummy) or run with --enable-dummy-if=false"
		if !strings.Contains(logs.String(), words) {
			t.Errorf("the daemon's log lacks %q:\n%s", words, logs.String())
		}
		if !strings.Contains(metrics, `node_yurthub_network_setup_errors_total{kind="no_driver"} 1`) {
			t.Errorf("/metrics does not count the no_driver error:\n%s", grepLines(metrics, "node_yurthub_network"))
		}
	}
	// The proxy serves on its other address whatever happened to the dummy interface
	// (no credentials in this test: it answers, with an error status, but it answers).
	if code, body := get(t, fmt.Sprintf("http://127.0.0.1:%d/api/v1/namespaces", cfg.ProxyPort)); code == 0 {
		t.Errorf("the proxy on 127.0.0.1:%d does not answer: %s", cfg.ProxyPort, body)
	}

	t.Logf("dummy driver in this kernel: %v; daemon log:\n%s", hasDummy, logs.String())
	stop()
	after, _ := exec.Command("iptables-save", "-t", "filter").CombinedOutput()
	if strings.Contains(string(after), "YURTHUB") {
		t.Errorf("a clean shutdown left rules behind:\n%s", after)
	}
	if _, err := netlink.LinkByName(config.DefaultDummyIfName); err == nil {
		t.Errorf("a clean shutdown left %s behind", config.DefaultDummyIfName)
	}
	if hasDummy {
		if code, _ := get(t, fmt.Sprintf("http://%s/", net.JoinHostPort(config.DefaultDummyIfIP, fmt.Sprint(cfg.ProxyPort)))); code != 0 {
			t.Errorf("after a clean shutdown something still answers on the dummy IP")
		}
	}
}

// startDaemon runs the daemon with cfg until stop, which cancels it and fails the
// test unless Run returns nil within 30 s. It returns once /v1/healthz answers 200.
func startDaemon(t *testing.T, cfg *config.Config) (logs *testenv.LogBuffer, stop func()) {
	t.Helper()
	logs = &testenv.LogBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, slog.New(slog.NewTextHandler(logs, nil))) }()
	t.Cleanup(cancel)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if code, _ := get(t, fmt.Sprintf("http://127.0.0.1:%d/v1/healthz", cfg.ServePort)); code == http.StatusOK {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("Run returned before the hub server was up: %v; log:\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("hub server not up in 30s; log:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return logs, func() {
		t.Helper()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Run after a clean shutdown: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return 30s after cancel")
		}
	}
}

// testConfig is a valid daemon configuration on free loopback ports, with its
// --root-dir under root, no node network, and token bootstrap without a cloud
// (the hub server and the proxy ports run; the proxy answers 503).
func testConfig(t *testing.T, root string, mode string) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.ServerAddrs, cfg.NodeName, cfg.WorkingMode = []*url.URL{{Scheme: "https", Host: "127.0.0.1:1"}}, "edge-1", mode
	cfg.ServePort, cfg.ProxyPort, cfg.ProxySecurePort = freeLoopbackPort(t), freeLoopbackPort(t), freeLoopbackPort(t)
	cfg.RootDir, cfg.DiskCachePath = filepath.Join(root, "hub"), filepath.Join(root, "no-cache")
	cfg.EnableDummyIf, cfg.EnableIPTables = false, false
	cfg.JoinToken, cfg.DiscoveryTokenUnsafeSkipCAVerification = "abcdef.0123456789abcdef", true
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	return cfg
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
