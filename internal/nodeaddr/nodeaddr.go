// Package nodeaddr knows the node's own IP addresses: those of every interface in
// the host network namespace, where the hub runs. The proxy asks it whether a
// request without credentials comes from the node itself (a host-network component:
// kubelet, kube-proxy, a CNI agent) or from a pod, because such a request goes
// upstream with the node's identity (issue 15 item 9).
//
// What counts is the connection's source address, never the address it was made
// to: a pod that connects to the dummy IP (169.254.2.1) has its pod IP as source,
// which is not an address of the host namespace; the host itself connecting to the
// dummy IP has the dummy IP as source, which is. A pod cannot open a TCP connection
// with a node address as source: the node's answers to such a source are delivered
// to the node, never to the pod. Loopback (127.0.0.0/8, ::1) is always the node.
//
// The addresses are listed over netlink (every interface, IPv4 and IPv6) when the
// Set is made, again on every address change the kernel reports (a netlink
// subscription), and every RefreshPeriod as a backstop. A source not in the list is
// asked of the kernel itself before it is refused: the route to it is of type local
// exactly when it is an address of this namespace (`ip route get <ip>` says "local").
// That covers an address added a moment ago whose notification is not handled yet,
// without re-listing every address (with kube-proxy's IPVS mode every Service IP is
// an address of the host) for every refused request.
package nodeaddr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// RefreshPeriod is how often the addresses are listed even without a notification.
const RefreshPeriod = time.Minute

// Set is the node's addresses. Safe for concurrent use.
type Set struct {
	log *slog.Logger

	mu      sync.RWMutex
	addrs   map[netip.Addr]struct{}
	err     error // of the last listing; nil when it worked
	errSaid bool  // the current listing failure has been logged

	refreshing atomic.Bool // a Refresh started by Contains is running
}

// New lists the addresses now. A failure is logged and kept (Err): until a listing
// works, only loopback and what the kernel answers is local count as the node.
func New(log *slog.Logger) *Set {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Set{log: log, addrs: map[netip.Addr]struct{}{}}
	s.Refresh()
	return s
}

// Contains reports whether ip is one of the node's addresses (or loopback).
func (s *Set) Contains(ip netip.Addr) bool {
	ip = ip.Unmap().WithZone("")
	if !ip.IsValid() {
		return false
	}
	if ip.IsLoopback() {
		return true
	}
	if s.has(ip) {
		return true
	}
	local, err := isLocal(ip)
	if err != nil {
		s.log.Debug("cannot ask the kernel whether an address is local", slog.String("addr", ip.String()), slog.Any("err", err))
		return false
	}
	if local && s.refreshing.CompareAndSwap(false, true) {
		// New since the last listing: list again, so the next request finds it here.
		go func() {
			defer s.refreshing.Store(false)
			s.Refresh()
		}()
	}
	return local
}

// isLocal asks the kernel for the route to ip: of type local when ip is an address of
// this network namespace.
func isLocal(ip netip.Addr) (bool, error) {
	routes, err := netlink.RouteGet(net.IP(ip.AsSlice()))
	if err != nil {
		return false, fmt.Errorf("route to %s (netlink): %w", ip, err)
	}
	for _, r := range routes {
		if r.Type == unix.RTN_LOCAL {
			return true, nil
		}
	}
	return false, nil
}

func (s *Set) has(ip netip.Addr) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.addrs[ip]
	return ok
}

// Addrs returns the addresses as last listed (loopback ones included when listed).
func (s *Set) Addrs() []netip.Addr {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]netip.Addr, 0, len(s.addrs))
	for a := range s.addrs {
		out = append(out, a)
	}
	return out
}

// Err is the error of the last listing, nil when it worked.
func (s *Set) Err() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.err
}

// Refresh lists the addresses now. On failure the previous list stays.
func (s *Set) Refresh() {
	addrs, err := list()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.err = err
		if !s.errSaid {
			s.errSaid = true
			s.log.Error("cannot list the node's addresses: credential-less proxy requests are accepted only from the addresses listed before (loopback at least) until it works",
				slog.Any("err", err))
		}
		return
	}
	if s.err != nil {
		s.log.Info("the node's addresses are listed again", slog.Int("addresses", len(addrs)))
	}
	s.err, s.errSaid = nil, false
	changed := len(addrs) != len(s.addrs)
	next := make(map[netip.Addr]struct{}, len(addrs))
	for _, a := range addrs {
		next[a] = struct{}{}
		if _, ok := s.addrs[a]; !ok {
			changed = true
		}
	}
	s.addrs = next
	if changed {
		s.log.Debug("node addresses", slog.Any("addrs", addrs))
	}
}

// Run keeps the addresses current until ctx ends: on every change the kernel reports
// and every RefreshPeriod. If the subscription fails, the period alone keeps them
// (and subscribing is tried again on the next period).
func (s *Set) Run(ctx context.Context) {
	t := time.NewTicker(RefreshPeriod)
	defer t.Stop()
	warned := false
	for {
		updates, stop, err := s.subscribe()
		switch {
		case err != nil && !warned:
			warned = true
			s.log.Warn("no netlink notifications of address changes: the node's addresses are listed every period instead (and a source not listed is asked of the kernel)",
				slog.Duration("period", RefreshPeriod), slog.Any("err", err))
		case err != nil:
			s.log.Debug("netlink address subscription still failing", slog.Any("err", err))
		case warned:
			warned = false
			s.log.Info("netlink notifications of address changes work again")
		}
		s.Refresh() // what changed while not subscribed
	follow:
		for {
			select {
			case <-ctx.Done():
				stop()
				return
			case <-t.C:
				s.Refresh()
				if updates == nil {
					break follow // try subscribing again
				}
			case _, ok := <-updates:
				if !ok {
					s.log.Debug("netlink address subscription ended; subscribing again")
					updates = nil
					break follow
				}
				// Coalesce a burst (an interface coming up brings several).
				drain(updates)
				s.Refresh()
			}
		}
		stop()
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// subscribe returns a channel of address notifications, which closes when the
// subscription fails or after stop (which ends it; always call it).
func (s *Set) subscribe() (<-chan netlink.AddrUpdate, func(), error) {
	ch := make(chan netlink.AddrUpdate, 64)
	done := make(chan struct{})
	var once sync.Once
	stop := func() { once.Do(func() { close(done) }) }
	err := netlink.AddrSubscribeWithOptions(ch, done, netlink.AddrSubscribeOptions{
		ErrorCallback: func(err error) { s.log.Debug("netlink address subscription", slog.Any("err", err)) },
	})
	if err != nil {
		stop()
		return nil, stop, fmt.Errorf("subscribe to netlink address changes: %w", err)
	}
	return ch, stop, nil
}

func drain(ch <-chan netlink.AddrUpdate) {
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		default:
			return
		}
	}
}

// list returns every address of every interface in this network namespace.
func list() ([]netip.Addr, error) {
	var as []netlink.Addr
	var err error
	for range 5 {
		as, err = netlink.AddrList(nil, netlink.FAMILY_ALL)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("list the addresses of every interface (netlink): %w", err)
	}
	out := make([]netip.Addr, 0, len(as))
	for _, a := range as {
		if a.IPNet == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		out = append(out, ip.Unmap())
	}
	return out, nil
}
