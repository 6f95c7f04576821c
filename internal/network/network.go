// Package network owns the node state through which pods reach the hub: a dummy
// interface carrying the hub's link-local address (--dummy-if-ip, default
// 169.254.2.1) and the iptables rules that accept traffic to it.
//
// Pods talk to the hub on that address, so it must exist on the node at every moment:
// an interface lost after a reboot breaks every pod on the node. The package
// therefore keeps putting the state back:
//
//   - Ensure creates what is missing, fixes what differs and leaves what is right
//     untouched, logging every change. The daemon calls it at start, before the
//     listeners that bind the dummy IP.
//   - Run calls Ensure on a period (the reconcile loop).
//   - Remove undoes exactly what the package owns. The daemon calls it on a clean
//     shutdown only; after a crash or a restart by systemd the next start ensures.
//
// The link: an interface of kind Config.LinkKind ("dummy" in production; tests use
// "ifb", which behaves the same, where the kernel has no dummy driver) named
// --dummy-if-name, up, carrying the IP as a /32 (or /128 for an IPv6 --dummy-if-ip),
// managed over netlink (github.com/vishvananda/netlink). The link is owned: any other
// address of the IP's family on it (our IP with another prefix, an earlier
// --dummy-if-ip) is deleted, except the kernel's IPv6 link-local one. An interface of
// another kind under the same name is refused (ErrLinkConflict), never deleted, and
// the IP on another interface is refused (ErrAddressInUse).
//
// The rules, in the filter table (iptables, or ip6tables for IPv6), through
// github.com/coreos/go-iptables. The product owns two chains and the built-in
// chains only jump to them, so removal is exact and never touches a rule it did not
// write:
//
//	INPUT  -j YURTHUB-INPUT    (inserted first)
//	OUTPUT -j YURTHUB-OUTPUT   (inserted first)
//	YURTHUB-INPUT  -d <ip>/32 -p tcp -m tcp --dport <port> -j ACCEPT   (per proxy port)
//	YURTHUB-OUTPUT -s <ip>/32 -p tcp -m tcp --sport <port> -j ACCEPT   (per proxy port)
//
// A rule in an owned chain that is not in this list is deleted by Ensure.
//
// The rules accept any source: pods reach the hub on the dummy IP. What a pod may do
// there is the proxy's decision: a request without credentials is taken only from the
// node's own addresses (internal/proxy, internal/nodeaddr).
//
// Errors are *SetupError values with a kind (the label of the
// node_yurthub_network_setup_errors_total counter) and a hint a person can act on:
// no CAP_NET_ADMIN, a kernel without the dummy driver (netlink answers EOPNOTSUPP),
// the address already on another interface, iptables missing. Netlink dumps the
// kernel interrupts (ErrDumpInterrupted) and iptables lock contention are retried.
// A failure of one part never stops the other: the link may be missing while the
// rules are in place, and the daemon keeps serving on its other addresses
// (LinkReady says whether the dummy IP can be bound).
//
// Tests: network_test.go runs everything in throw-away network namespaces (the
// test binary re-executed under `unshare -n`) with link kind ifb; qemu_test.go boots
// Debian's cloud kernel under qemu and runs the same tests there with the real dummy
// driver (testdata/qemu/build.sh prepares the kernel and initramfs).
package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-iptables/iptables"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ReconcilePeriod is how often the daemon re-ensures the interface and the rules.
const ReconcilePeriod = time.Minute

// DefaultLinkKind is the link kind in production.
const DefaultLinkKind = "dummy"

// Owned iptables chains, in the filter table.
const (
	Table       = "filter"
	ChainInput  = "YURTHUB-INPUT"
	ChainOutput = "YURTHUB-OUTPUT"
)

// Config is what the package manages. The daemon fills it from config.Config.
type Config struct {
	EnableLink     bool   // --enable-dummy-if
	LinkName       string // --dummy-if-name
	LinkKind       string // DefaultLinkKind unless a test says otherwise
	IP             net.IP // --dummy-if-ip
	EnableIPTables bool   // --enable-iptables
	Ports          []int  // the proxy ports accepted on IP (--proxy-port, --proxy-secure-port)
	// IPTablesCommand is the iptables binary; empty means iptables (or ip6tables)
	// from PATH. Tests set iptables-legacy to exercise the xtables lock.
	IPTablesCommand string
}

// Manager ensures, reconciles and removes the node network state.
type Manager struct {
	cfg Config
	log *slog.Logger

	nl    *netlink.Handle
	ipt   *iptables.IPTables // nil until found; looked up again when missing
	iptMu sync.Mutex

	mu        sync.Mutex // serialises Ensure and Remove
	linkReady atomic.Bool

	setupErrors *prometheus.CounterVec
}

// New returns a manager for cfg. It opens a netlink socket in the current network
// namespace; Close releases it.
func New(cfg Config, log *slog.Logger) (*Manager, error) {
	if cfg.LinkKind == "" {
		cfg.LinkKind = DefaultLinkKind
	}
	if cfg.IP == nil {
		return nil, errors.New("network: no IP given (--dummy-if-ip)")
	}
	if cfg.EnableLink && cfg.LinkName == "" {
		return nil, errors.New("network: no interface name given (--dummy-if-name)")
	}
	m := &Manager{
		cfg: cfg,
		log: log.With(slog.String("component", "network")),
		setupErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "node_yurthub_network_setup_errors_total",
			Help: "Errors ensuring or removing the dummy interface and the iptables rules, by kind.",
		}, []string{"kind"}),
	}
	for _, k := range []string{KindPermission, KindNoDriver, KindAddressInUse, KindLinkConflict,
		KindIPTablesMissing, KindLink, KindAddress, KindIPTables} {
		m.setupErrors.WithLabelValues(k) // export every kind at 0
	}
	if cfg.EnableLink {
		// Only rtnetlink: asking for every family fails on kernels without xfrm_user.
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return nil, fmt.Errorf("network: open netlink socket: %w", err)
		}
		m.nl = h
	}
	return m, nil
}

// Collectors returns the package's metrics, for the daemon's registry.
func (m *Manager) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.setupErrors}
}

// Register registers the package's metrics into reg.
func (m *Manager) Register(reg prometheus.Registerer) error {
	for _, c := range m.Collectors() {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("network: register metrics: %w", err)
		}
	}
	return nil
}

// Close releases the netlink socket. It does not remove anything.
func (m *Manager) Close() {
	if m.nl != nil {
		m.nl.Close()
	}
}

// LinkReady reports whether the last Ensure left the dummy IP on the interface, so
// that listeners may bind it. It is false when the link is disabled.
func (m *Manager) LinkReady() bool { return m.linkReady.Load() }

// Ensure brings the interface and the rules to the wanted state. Each part is tried
// even when the other fails; every failure is logged, counted by kind, and returned
// (joined).
func (m *Manager) Ensure() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	if m.cfg.EnableLink {
		err := m.ensureLink()
		m.linkReady.Store(err == nil)
		if err != nil {
			errs = append(errs, m.fail("cannot ensure the dummy interface; the hub keeps serving on its other addresses", err))
		}
	}
	if m.cfg.EnableIPTables {
		if err := m.ensureRules(); err != nil {
			errs = append(errs, m.fail("cannot ensure the iptables rules", err))
		}
	}
	return errors.Join(errs...)
}

// Remove deletes the interface (only if it has the managed kind) and the owned
// chains with the jumps to them. Missing pieces are not an error.
func (m *Manager) Remove() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	if m.cfg.EnableIPTables {
		if err := m.removeRules(); err != nil {
			errs = append(errs, m.fail("cannot remove the iptables rules", err))
		}
	}
	if m.cfg.EnableLink {
		m.linkReady.Store(false)
		if err := m.removeLink(); err != nil {
			errs = append(errs, m.fail("cannot remove the dummy interface", err))
		}
	}
	return errors.Join(errs...)
}

// Run re-ensures every period until ctx ends. Failures are logged and counted by
// Ensure; the loop keeps going.
func (m *Manager) Run(ctx context.Context, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = m.Ensure()
		}
	}
}

func (m *Manager) fail(msg string, err error) error {
	kind := KindOf(err)
	if kind == "" {
		kind = KindLink
	}
	m.setupErrors.WithLabelValues(kind).Inc()
	m.log.Error(msg, slog.String("kind", kind), slog.Any("err", err))
	return err
}

// retry runs op up to 5 times while retryable says its error is transient.
func retry(op func() error, retryable func(error) bool) error {
	var err error
	for i := 0; i < 5; i++ {
		if err = op(); err == nil || !retryable(err) {
			return err
		}
		time.Sleep(time.Duration(20<<i) * time.Millisecond)
	}
	return err
}
