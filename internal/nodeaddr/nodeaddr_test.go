package nodeaddr

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/yurthub/yurthub/internal/testenv"
)

// TestContainsHostAddresses: in this process's own network namespace, every address
// the Go runtime sees on an interface is the node's, loopback always is (mapped or
// not), and a documentation address (192.0.2.0/24, never assigned) is not.
func TestContainsHostAddresses(t *testing.T) {
	s := New(nil)
	if err := s.Err(); err != nil {
		t.Fatalf("listing the addresses: %v", err)
	}
	ifAddrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	if len(ifAddrs) == 0 {
		t.Fatal("no interface address at all: the test proves nothing")
	}
	for _, a := range ifAddrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, _ := netip.AddrFromSlice(n.IP)
		if !s.Contains(ip) {
			t.Errorf("%s (an interface address) is not the node's; listed: %v", ip, s.Addrs())
		}
	}
	for _, ip := range []string{"127.0.0.1", "127.0.0.53", "::1", "::ffff:127.0.0.1"} {
		if !s.Contains(netip.MustParseAddr(ip)) {
			t.Errorf("loopback %s is not the node's", ip)
		}
	}
	for _, ip := range []string{"192.0.2.77", "2001:db8::77"} {
		if s.Contains(netip.MustParseAddr(ip)) {
			t.Errorf("%s (documentation range) counts as the node's", ip)
		}
	}
	if s.Contains(netip.Addr{}) {
		t.Error("the zero address counts as the node's")
	}
}

// TestNetnsFollowsChanges runs in a throw-away network namespace (the test binary
// re-executed under `unshare -n`): an address added while Run runs is listed without
// anyone asking (the netlink subscription), and a removed one goes; a Set that does
// not run (so has not listed it) still finds the new address at once by asking the
// kernel, and finds a documentation address not local.
func TestNetnsFollowsChanges(t *testing.T) {
	if os.Getenv("YURTHUB_NETNS") != "1" {
		testenv.RequireRoot(t)
		unshare := testenv.LookPath(t, "unshare")
		cmd := exec.Command(unshare, "-n", os.Args[0], "-test.run", "^"+t.Name()+"$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "YURTHUB_NETNS=1")
		out, err := cmd.CombinedOutput()
		t.Logf("in a new network namespace:\n%s", out)
		if err != nil || !bytes.Contains(out, []byte("--- PASS: "+t.Name())) {
			t.Fatalf("the test failed in its network namespace: %v", err)
		}
		return
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	s, cold := New(nil), New(nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	defer func() { cancel(); <-done }()

	ip := netip.MustParseAddr("10.77.0.1")
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP("10.77.0.1"), Mask: net.CIDRMask(32, 32)}}
	listed := func() bool { return slices.Contains(s.Addrs(), ip) }
	// Give Run a moment to subscribe before the change.
	time.Sleep(200 * time.Millisecond)
	if listed() {
		t.Fatal("10.77.0.1 listed before it was added")
	}
	if err := netlink.AddrAdd(lo, addr); err != nil {
		t.Fatal(err)
	}
	if !cold.Contains(ip) {
		t.Error("a Set that has not listed the new address does not find it (the kernel says it is local)")
	}
	if cold.Contains(netip.MustParseAddr("192.0.2.77")) {
		t.Error("192.0.2.77 counts as local")
	}
	waitFor(t, "the added address to be listed", listed)
	if err := netlink.AddrDel(lo, addr); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the removed address to go", func() bool { return !listed() })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second) // well under RefreshPeriod: only a notification can do it
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
