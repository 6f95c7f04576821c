package network

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/yurthub/yurthub/internal/testenv"
)

// Every TestNetns* test runs in a throw-away network namespace. On the host the test
// binary re-executes itself under `unshare -n` running only that test (with
// YURTHUB_NETNS=1 set), relays the child's output, fails if the child failed, and
// checks that the host namespace did not change. Inside the qemu guest (qemu_test.go)
// the whole machine is throw-away: /init sets YURTHUB_NETNS=1 and runs them directly.
//
// YURTHUB_LINK_KIND picks the link kind: ifb by default (this machine's kernel has
// no dummy driver), dummy in the guest.

const (
	envNetns    = "YURTHUB_NETNS"
	envLinkKind = "YURTHUB_LINK_KIND"
	testLink    = "yh-test0"
)

var (
	testIP    = net.ParseIP("169.254.2.1")
	testPorts = []int{10261, 10268}
)

func testKind() string {
	if k := os.Getenv(envLinkKind); k != "" {
		return k
	}
	return "ifb"
}

// inNetns reports whether the calling test should run its body (it is inside a
// throw-away namespace). Otherwise it runs the test in one and reports false.
// setpriv, if given, is a setpriv(1) argument list the child runs under.
func inNetns(t *testing.T, setpriv ...string) bool {
	t.Helper()
	if os.Getenv(envNetns) == "1" {
		return true
	}
	testenv.RequireRoot(t)
	unshare := testenv.LookPath(t, "unshare")
	testenv.LookPath(t, "iptables")
	testenv.LookPath(t, "iptables-save")
	args := []string{"-n"}
	if len(setpriv) > 0 {
		args = append(args, testenv.LookPath(t, "setpriv"))
		args = append(args, setpriv...)
	}
	args = append(args, os.Args[0], "-test.run", "^"+t.Name()+"$", "-test.count=1", "-test.v")

	before := hostState(t)
	cmd := exec.Command(unshare, args...)
	cmd.Env = append(os.Environ(), envNetns+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("in a new network namespace (unshare %s):\n%s", strings.Join(args, " "), out)
	if err != nil {
		t.Fatalf("the test failed in its network namespace: %v", err)
	}
	if !bytes.Contains(out, []byte("--- PASS: "+t.Name())) {
		t.Fatalf("the child did not report --- PASS: %s", t.Name())
	}
	if after := hostState(t); after != before {
		t.Fatalf("the host network namespace changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	return false
}

// hostState is what the tests could have leaked into the host namespace: the test
// link, anything on the test IP, and any YURTHUB chain or jump.
func hostState(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	if _, err := netlink.LinkByName(testLink); err == nil {
		fmt.Fprintf(&b, "link %s exists\n", testLink)
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatalf("list host addresses: %v", err)
	}
	for _, a := range addrs {
		if a.IP.Equal(testIP) || a.IP.Equal(testIP6) {
			fmt.Fprintf(&b, "address %s on link %d\n", a.IPNet, a.LinkIndex)
		}
	}
	for _, save := range []string{"iptables-save", "ip6tables-save"} {
		out, err := exec.Command(save).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", save, err, out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "YURTHUB") {
				fmt.Fprintf(&b, "%s: %s\n", save, line)
			}
		}
	}
	return b.String()
}

func newManager(t *testing.T, cfg Config) (*Manager, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	m, err := New(cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m, &logs
}

func fullConfig() Config {
	return Config{EnableLink: true, LinkName: testLink, LinkKind: testKind(), IP: testIP,
		EnableIPTables: true, Ports: testPorts}
}

func save(t *testing.T, cmd string) string {
	t.Helper()
	out, err := exec.Command(cmd, "-t", "filter").CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	// Drop comments and counters, which change between calls.
	var keep []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, ":") {
			line = strings.Fields(line)[0] + " " + strings.Fields(line)[1]
		}
		keep = append(keep, line)
	}
	return strings.Join(keep, "\n")
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// wantRules are the lines iptables-save must print for testIP and testPorts.
var wantRules = []string{
	":YURTHUB-INPUT -",
	":YURTHUB-OUTPUT -",
	"-A INPUT -j YURTHUB-INPUT",
	"-A OUTPUT -j YURTHUB-OUTPUT",
	"-A YURTHUB-INPUT -d 169.254.2.1/32 -p tcp -m tcp --dport 10261 -j ACCEPT",
	"-A YURTHUB-INPUT -d 169.254.2.1/32 -p tcp -m tcp --dport 10268 -j ACCEPT",
	"-A YURTHUB-OUTPUT -s 169.254.2.1/32 -p tcp -m tcp --sport 10261 -j ACCEPT",
	"-A YURTHUB-OUTPUT -s 169.254.2.1/32 -p tcp -m tcp --sport 10268 -j ACCEPT",
}

func checkRules(t *testing.T, dump string, want []string) {
	t.Helper()
	lines := map[string]bool{}
	for _, l := range strings.Split(dump, "\n") {
		lines[l] = true
	}
	for _, w := range want {
		if !lines[w] {
			t.Errorf("iptables-save lacks %q; it printed:\n%s", w, dump)
		}
	}
	if n := strings.Count(dump, "YURTHUB"); n != 8 {
		t.Errorf("iptables-save mentions YURTHUB %d times, want 8 (2 chains, 2 jumps, 4 rules):\n%s", n, dump)
	}
}

// checkLink asserts the link exists with the test kind, is up, and carries ipnet.
func checkLink(t *testing.T, ipnet string) {
	t.Helper()
	l, err := netlink.LinkByName(testLink)
	if err != nil {
		t.Fatalf("link %s: %v", testLink, err)
	}
	if l.Type() != testKind() {
		t.Errorf("link %s has type %s, want %s", testLink, l.Type(), testKind())
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("link %s is down", testLink)
	}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range addrs {
		got = append(got, a.IPNet.String())
		if a.IPNet.String() == ipnet {
			return
		}
	}
	t.Errorf("link %s carries %v, want %s among them", testLink, got, ipnet)
}

func TestNetnsEnsureCreatesLinkAndRules(t *testing.T) {
	if !inNetns(t) {
		return
	}
	// An operator's DROP already in INPUT: the jump must go before it.
	run(t, "iptables", "-A", "INPUT", "-p", "tcp", "--dport", "9", "-j", "DROP")
	m, logs := newManager(t, fullConfig())
	if err := m.Ensure(); err != nil {
		t.Fatalf("Ensure: %v\nlogs:\n%s", err, logs)
	}
	if !m.LinkReady() {
		t.Error("LinkReady() = false after a successful Ensure")
	}
	checkLink(t, "169.254.2.1/32")
	first := save(t, "iptables-save")
	checkRules(t, first, wantRules)
	if j, d := strings.Index(first, "-A INPUT -j YURTHUB-INPUT"), strings.Index(first, "-A INPUT -p tcp -m tcp --dport 9 -j DROP"); j < 0 || d < 0 || j > d {
		t.Errorf("the jump is not before the operator's DROP in INPUT:\n%s", first)
	}
	if testKind() == "dummy" {
		fmt.Printf("YURTHUB-GUEST-DUMMY: created %s of type dummy carrying 169.254.2.1/32, rules in YURTHUB-INPUT/OUTPUT\n", testLink)
	}

	// A second Ensure on a right state changes nothing and logs no change.
	logs.Reset()
	if err := m.Ensure(); err != nil {
		t.Fatalf("second Ensure: %v", err)
	}
	if logs.Len() != 0 {
		t.Errorf("second Ensure logged changes on a right state:\n%s", logs)
	}
	if second := save(t, "iptables-save"); second != first {
		t.Errorf("second Ensure changed the rules:\nbefore:\n%s\nafter:\n%s", first, second)
	}
}

// pod is a second network namespace, held by one locked OS thread, that plays a pod:
// a veth pair joins it to the test's namespace (the node), as a CNI would.
type pod struct {
	fns chan func()
}

func newPod(t *testing.T) (*pod, netns.NsHandle) {
	t.Helper()
	p := &pod{fns: make(chan func())}
	ready := make(chan netns.NsHandle)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		ns, err := netns.New()
		if err != nil {
			errc <- err
			return
		}
		ready <- ns
		for f := range p.fns {
			f()
		}
	}()
	t.Cleanup(func() { close(p.fns) })
	select {
	case ns := <-ready:
		return p, ns
	case err := <-errc:
		t.Fatalf("new pod namespace: %v", err)
	}
	return nil, 0
}

func (p *pod) do(f func() error) error {
	errc := make(chan error)
	p.fns <- func() { errc <- f() }
	return <-errc
}

// TestNetnsTCPThroughRules: with INPUT and OUTPUT dropping everything, a pod reaches
// the hub on the dummy IP and a proxy port only once Ensure has put the rules in.
func TestNetnsTCPThroughRules(t *testing.T) {
	if !inNetns(t) {
		return
	}
	lo, _ := netlink.LinkByName("lo")
	if err := netlink.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	p, podNs := newPod(t)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "yh-node"}, PeerName: "yh-pod", PeerNamespace: netlink.NsFd(podNs)}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("create veth: %v", err)
	}
	node, _ := netlink.LinkByName("yh-node")
	mustAddr(t, netlink.AddrAdd(node, &netlink.Addr{IPNet: mustCIDR("10.99.0.1/24")}))
	mustAddr(t, netlink.LinkSetUp(node))
	if err := p.do(func() error {
		l, err := netlink.LinkByName("yh-pod")
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: mustCIDR("10.99.0.2/24")}); err != nil {
			return err
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return err
		}
		return netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: net.ParseIP("10.99.0.1"), Dst: mustCIDR("0.0.0.0/0")})
	}); err != nil {
		t.Fatalf("configure the pod namespace: %v", err)
	}

	// The node's firewall drops everything it is not told to accept.
	run(t, "iptables", "-P", "INPUT", "DROP")
	run(t, "iptables", "-P", "OUTPUT", "DROP")

	linkOnly := fullConfig()
	linkOnly.EnableIPTables = false
	ml, _ := newManager(t, linkOnly)
	if err := ml.Ensure(); err != nil {
		t.Fatalf("Ensure (link only): %v", err)
	}
	hub, err := net.Listen("tcp", net.JoinHostPort(testIP.String(), "10261"))
	if err != nil {
		t.Fatalf("listen on the dummy IP: %v", err)
	}
	defer hub.Close()
	go func() {
		for {
			c, err := hub.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("hub\n"))
			c.Close()
		}
	}()
	dial := func(timeout time.Duration) (string, error) {
		var got string
		err := p.do(func() error {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(testIP.String(), "10261"), timeout)
			if err != nil {
				return err
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(timeout))
			buf := make([]byte, 4)
			n, err := c.Read(buf)
			got = string(buf[:n])
			return err
		})
		return got, err
	}
	if got, err := dial(2 * time.Second); err == nil {
		t.Fatalf("the pod reached the hub (%q) before the rules existed: the DROP policy is not in force, the test proves nothing", got)
	}

	m, logs := newManager(t, fullConfig())
	if err := m.Ensure(); err != nil {
		t.Fatalf("Ensure: %v\n%s", err, logs)
	}
	got, err := dial(30 * time.Second)
	if err != nil || got != "hub\n" {
		t.Fatalf("pod -> %s:10261 after Ensure: got %q, %v; rules:\n%s", testIP, got, err, save(t, "iptables-save"))
	}
}

func mustCIDR(s string) *net.IPNet {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	n.IP = ip
	return n
}

func mustAddr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestNetnsReconcileRestores: what vanishes or drifts comes back, by Ensure and by the
// Run loop; what is foreign in an owned chain goes.
func TestNetnsReconcileRestores(t *testing.T) {
	if !inNetns(t) {
		return
	}
	m, logs := newManager(t, fullConfig())
	if err := m.Ensure(); err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	right := save(t, "iptables-save")

	// Address deleted, then put back with another prefix; link set down.
	l, _ := netlink.LinkByName(testLink)
	mustAddr(t, netlink.AddrDel(l, &netlink.Addr{IPNet: mustCIDR("169.254.2.1/32")}))
	mustAddr(t, m.Ensure())
	checkLink(t, "169.254.2.1/32")
	mustAddr(t, netlink.AddrDel(l, &netlink.Addr{IPNet: mustCIDR("169.254.2.1/32")}))
	mustAddr(t, netlink.AddrAdd(l, &netlink.Addr{IPNet: mustCIDR("169.254.2.1/24")}))
	mustAddr(t, netlink.AddrAdd(l, &netlink.Addr{IPNet: mustCIDR("169.254.2.9/32")})) // from an earlier --dummy-if-ip
	mustAddr(t, netlink.LinkSetDown(l))
	mustAddr(t, m.Ensure())
	checkLink(t, "169.254.2.1/32")
	if as, _ := netlink.AddrList(l, netlink.FAMILY_V4); len(as) != 1 {
		t.Errorf("after fixing the prefix and dropping the stale address the link carries %v, want only 169.254.2.1/32", as)
	}

	// Rules: one deleted, a jump deleted, a foreign rule added to an owned chain.
	run(t, "iptables", "-D", "YURTHUB-INPUT", "-d", "169.254.2.1/32", "-p", "tcp", "-m", "tcp", "--dport", "10268", "-j", "ACCEPT")
	run(t, "iptables", "-D", "OUTPUT", "-j", "YURTHUB-OUTPUT")
	run(t, "iptables", "-A", "YURTHUB-INPUT", "-p", "udp", "--dport", "53", "-j", "ACCEPT")
	mustAddr(t, m.Ensure())
	if got := save(t, "iptables-save"); got != right {
		t.Errorf("Ensure did not restore the rules:\nwant:\n%s\ngot:\n%s", right, got)
	}

	// The link deleted while the reconcile loop runs: the loop puts it back.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { m.Run(ctx, 50*time.Millisecond); close(done) }()
	logs.Reset()
	mustAddr(t, netlink.LinkDel(l))
	run(t, "iptables", "-F", "YURTHUB-OUTPUT")
	// Generous: under qemu's software emulation on a loaded machine one iptables call
	// can take a second; a working loop finishes in well under a second here.
	deadline := time.Now().Add(90 * time.Second)
	for {
		nl, err := netlink.LinkByName(testLink)
		if err == nil && nl.Attrs().Flags&net.FlagUp != 0 && save(t, "iptables-save") == right {
			if as, _ := netlink.AddrList(nl, netlink.FAMILY_V4); len(as) == 1 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reconcile loop did not restore the link and rules in 90s; logs:\n%s", logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	<-done
	checkLink(t, "169.254.2.1/32")
	for _, want := range []string{"created interface", "added address", "added iptables rule"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the reconcile loop did not log %q:\n%s", want, logs)
		}
	}
}

// TestNetnsRemoveIsExact: after Ensure and Remove the namespace is as it was,
// an operator's own rules and links included; Remove is idempotent.
func TestNetnsRemoveIsExact(t *testing.T) {
	if !inNetns(t) {
		return
	}
	run(t, "iptables", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT")
	run(t, "iptables", "-A", "OUTPUT", "-d", "10.0.0.0/8", "-j", "DROP")
	run(t, "iptables", "-N", "OPERATOR")
	run(t, "iptables", "-A", "OPERATOR", "-s", "169.254.2.1/32", "-j", "ACCEPT")
	before := save(t, "iptables-save")
	links := func() string {
		ls, err := netlink.LinkList()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, l := range ls {
			names = append(names, l.Attrs().Name)
		}
		return strings.Join(names, ",")
	}
	linksBefore := links()

	m, _ := newManager(t, fullConfig())
	mustAddr(t, m.Ensure())
	checkRules(t, save(t, "iptables-save"), wantRules)
	mustAddr(t, m.Remove())
	if after := save(t, "iptables-save"); after != before {
		t.Errorf("Remove left the rules different:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if got := links(); got != linksBefore {
		t.Errorf("links after Remove %s, before Ensure %s", got, linksBefore)
	}
	if m.LinkReady() {
		t.Error("LinkReady() = true after Remove")
	}
	if err := m.Remove(); err != nil {
		t.Errorf("second Remove: %v", err)
	}
}

// TestNetnsAddressOnAnotherInterface: the dummy IP already on another interface is
// refused with the owner's name, counted, and the rules are still ensured.
func TestNetnsAddressOnAnotherInterface(t *testing.T) {
	if !inNetns(t) {
		return
	}
	other := &netlink.Ifb{LinkAttrs: netlink.LinkAttrs{Name: "other0"}}
	mustAddr(t, netlink.LinkAdd(other))
	mustAddr(t, netlink.AddrAdd(other, &netlink.Addr{IPNet: mustCIDR("169.254.2.1/32")}))
	m, logs := newManager(t, fullConfig())
	err := m.Ensure()
	if !errors.Is(err, ErrAddressInUse) {
		t.Fatalf("Ensure = %v, want ErrAddressInUse", err)
	}
	for _, want := range []string{"address 169.254.2.1 is already on interface other0", "ip addr del 169.254.2.1/32 dev other0", "--dummy-if-ip"} {
		if !strings.Contains(err.Error(), want) || !strings.Contains(logs.String(), want) {
			t.Errorf("error and log should say %q:\nerr: %v\nlog: %s", want, err, logs)
		}
	}
	if got := testutil.ToFloat64(m.setupErrors.WithLabelValues(KindAddressInUse)); got != 1 {
		t.Errorf("setup errors{kind=%s} = %v, want 1", KindAddressInUse, got)
	}
	if m.LinkReady() {
		t.Error("LinkReady() = true though the address could not be added")
	}
	if _, err := netlink.LinkByName(testLink); err == nil {
		t.Errorf("%s was created though its address belongs to other0", testLink)
	}
	checkRules(t, save(t, "iptables-save"), wantRules)
}

// TestNetnsLinkNameTaken: an interface of another kind holding the name is refused,
// not deleted.
func TestNetnsLinkNameTaken(t *testing.T) {
	if !inNetns(t) {
		return
	}
	mustAddr(t, netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: testLink}}))
	m, _ := newManager(t, fullConfig())
	err := m.Ensure()
	if !errors.Is(err, ErrLinkConflict) || !strings.Contains(err.Error(), "exists with type bridge") {
		t.Fatalf("Ensure = %v, want ErrLinkConflict naming the bridge", err)
	}
	mustAddr(t, m.Remove())
	if l, err := netlink.LinkByName(testLink); err != nil || l.Type() != "bridge" {
		t.Errorf("Remove touched the operator's bridge: %v %v", l, err)
	}
}

// TestNetnsNoDriverReachesLog: a kernel without the link kind's driver answers
// EOPNOTSUPP; the log says so in words a person can act on, the error kind is
// counted, and the rules are still ensured (the hub goes on without the link). On
// this machine's kernel (no dummy driver) the kind is dummy itself; where dummy
// exists (the qemu guest) a kind no kernel has stands in for it.
func TestNetnsNoDriverReachesLog(t *testing.T) {
	if !inNetns(t) {
		return
	}
	kind := "dummy"
	probe := &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: "yh-probe"}}
	if err := netlink.LinkAdd(probe); err == nil {
		_ = netlink.LinkDel(probe)
		kind = "yhnodriver"
	} else if !errors.Is(err, syscall.EOPNOTSUPP) {
		t.Fatalf("probing for the dummy driver: %v", err)
	}
	cfg := fullConfig()
	cfg.LinkKind = kind
	m, logs := newManager(t, cfg)
	err := m.Ensure()
	if !errors.Is(err, ErrNoDriver) || !errors.Is(err, syscall.EOPNOTSUPP) {
		t.Fatalf("Ensure = %v, want ErrNoDriver wrapping EOPNOTSUPP", err)
	}
	want := fmt.Sprintf("kernel has no %[1]s driver: load the %[1]s module (modprobe %[1]s) or run with --enable-dummy-if=false", kind)
	if !strings.Contains(logs.String(), want) {
		t.Errorf("the log lacks %q:\n%s", want, logs)
	}
	if kind == "dummy" && !strings.Contains(logs.String(), "kernel has no dummy driver: load the dummy module (modprobe dummy) or run with --enable-dummy-if=false") {
		t.Errorf("the log lacks the dummy wording:\n%s", logs)
	}
	t.Logf("kind %s, log:\n%s", kind, logs)
	if got := testutil.ToFloat64(m.setupErrors.WithLabelValues(KindNoDriver)); got != 1 {
		t.Errorf("setup errors{kind=%s} = %v, want 1", KindNoDriver, got)
	}
	if m.LinkReady() {
		t.Error("LinkReady() = true without a link")
	}
	checkRules(t, save(t, "iptables-save"), wantRules)
}

// TestNetnsNoPermission: without CAP_NET_ADMIN both parts fail with the capability
// named. The child runs under setpriv with CAP_NET_ADMIN dropped from every set.
func TestNetnsNoPermission(t *testing.T) {
	if !inNetns(t, "--bounding-set=-net_admin", "--inh-caps=-net_admin") {
		return
	}
	m, logs := newManager(t, fullConfig())
	err := m.Ensure()
	if !errors.Is(err, ErrNoPermission) {
		t.Fatalf("Ensure = %v, want ErrNoPermission", err)
	}
	for _, want := range []string{"no CAP_NET_ADMIN", "--enable-dummy-if=false", "--enable-iptables=false"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, logs)
		}
	}
	if got := testutil.ToFloat64(m.setupErrors.WithLabelValues(KindPermission)); got != 2 {
		t.Errorf("setup errors{kind=%s} = %v, want 2 (link and iptables)", KindPermission, got)
	}
}

var testIP6 = net.ParseIP("fd00:169:254::2:1")

// TestNetnsIPv6: an IPv6 --dummy-if-ip gets a /128 and ip6tables rules.
func TestNetnsIPv6(t *testing.T) {
	if !inNetns(t) {
		return
	}
	testenv.LookPath(t, "ip6tables-save")
	cfg := fullConfig()
	cfg.IP = testIP6
	m, _ := newManager(t, cfg)
	if err := m.Ensure(); err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	checkLink(t, "fd00:169:254::2:1/128")
	got := save(t, "ip6tables-save")
	for _, w := range []string{
		"-A INPUT -j YURTHUB-INPUT",
		"-A YURTHUB-INPUT -d fd00:169:254::2:1/128 -p tcp -m tcp --dport 10261 -j ACCEPT",
		"-A YURTHUB-OUTPUT -s fd00:169:254::2:1/128 -p tcp -m tcp --sport 10268 -j ACCEPT",
	} {
		if !strings.Contains(got, w) {
			t.Errorf("ip6tables-save lacks %q:\n%s", w, got)
		}
	}
	if v4 := save(t, "iptables-save"); strings.Contains(v4, "YURTHUB") {
		t.Errorf("IPv6 config wrote IPv4 rules:\n%s", v4)
	}
	// Listening on it works at once (no duplicate-address detection delay).
	ln, err := net.Listen("tcp", net.JoinHostPort(testIP6.String(), "10261"))
	if err != nil {
		t.Fatalf("listen on the IPv6 dummy IP: %v", err)
	}
	ln.Close()
	mustAddr(t, m.Remove())
	if got := save(t, "ip6tables-save"); strings.Contains(got, "YURTHUB") {
		t.Errorf("Remove left ip6tables rules:\n%s", got)
	}
}

// TestNetnsIPTablesLockContention: another program holds the xtables lock longer than
// one iptables call waits (-w 1 here); Ensure retries and succeeds once the lock is
// released. iptables-legacy takes the lock (iptables-nft does not); XTABLES_LOCKFILE
// points it at a lock file of the test's own, so the host's lock is never held.
func TestNetnsIPTablesLockContention(t *testing.T) {
	if !inNetns(t) {
		return
	}
	legacy := testenv.LookPath(t, "iptables-legacy")
	lock := filepath.Join(t.TempDir(), "xtables.lock")
	t.Setenv("XTABLES_LOCKFILE", lock)
	f, err := os.OpenFile(lock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	old := lockWaitSeconds
	lockWaitSeconds = 1
	defer func() { lockWaitSeconds = old }()
	released := time.Now().Add(1500 * time.Millisecond)
	go func() {
		time.Sleep(time.Until(released))
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	}()

	cfg := fullConfig()
	cfg.EnableLink = false
	cfg.IPTablesCommand = legacy
	m, logs := newManager(t, cfg)
	if err := m.Ensure(); err != nil {
		t.Fatalf("Ensure with the lock held for 1.5s: %v\n%s", err, logs)
	}
	if time.Now().Before(released) {
		t.Fatal("Ensure finished before the lock was released: iptables did not take the lock, the test proves nothing")
	}
	if !strings.Contains(logs.String(), "xtables lock") || !strings.Contains(logs.String(), "retrying") {
		t.Errorf("no retry on lock contention was logged:\n%s", logs)
	}
	checkRules(t, save(t, legacy+"-save"), wantRules)
}

// TestRetryDumpInterrupted: a netlink dump the kernel interrupted is repeated; any
// other error is not. (The kernel interrupts dumps only under concurrent changes, so
// the error is fed in here rather than provoked.)
func TestRetryDumpInterrupted(t *testing.T) {
	calls := 0
	err := retry(func() error {
		if calls++; calls < 3 {
			return fmt.Errorf("list addresses: %w", netlink.ErrDumpInterrupted)
		}
		return nil
	}, isDumpInterrupted)
	if err != nil || calls != 3 {
		t.Errorf("retry = %v after %d calls, want nil after 3", err, calls)
	}
	calls = 0
	err = retry(func() error { calls++; return syscall.EPERM }, isDumpInterrupted)
	if !errors.Is(err, syscall.EPERM) || calls != 1 {
		t.Errorf("retry = %v after %d calls, want EPERM after 1", err, calls)
	}
	calls = 0
	err = retry(func() error { calls++; return netlink.ErrDumpInterrupted }, isDumpInterrupted)
	if !errors.Is(err, netlink.ErrDumpInterrupted) || calls != 5 {
		t.Errorf("retry = %v after %d calls, want ErrDumpInterrupted after 5", err, calls)
	}
}

// TestIPTablesMissing: with no iptables in PATH, Ensure says so and what to do, and
// counts it. Nothing is changed, so it needs no namespace.
func TestIPTablesMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	m, logs := newManager(t, Config{IP: testIP, EnableIPTables: true, Ports: testPorts})
	err := m.Ensure()
	if !errors.Is(err, ErrIPTablesMissing) {
		t.Fatalf("Ensure = %v, want ErrIPTablesMissing", err)
	}
	const want = "iptables not found in PATH: install iptables or run with --enable-iptables=false"
	if !strings.Contains(logs.String(), want) {
		t.Errorf("the log lacks %q:\n%s", want, logs)
	}
	if got := testutil.ToFloat64(m.setupErrors.WithLabelValues(KindIPTablesMissing)); got != 1 {
		t.Errorf("setup errors{kind=%s} = %v, want 1", KindIPTablesMissing, got)
	}
}
