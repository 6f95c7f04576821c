package network

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// isDumpInterrupted: the kernel changed the table during a netlink dump; the dump
// must be repeated.
func isDumpInterrupted(err error) bool { return errors.Is(err, netlink.ErrDumpInterrupted) }

func (m *Manager) family() int {
	if m.cfg.IP.To4() != nil {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

// wantAddr is the address the link carries: the IP as a host route (/32 or /128).
func (m *Manager) wantAddr() *net.IPNet {
	if ip4 := m.cfg.IP.To4(); ip4 != nil {
		return &net.IPNet{IP: ip4, Mask: net.CIDRMask(32, 32)}
	}
	return &net.IPNet{IP: m.cfg.IP.To16(), Mask: net.CIDRMask(128, 128)}
}

func (m *Manager) linkByName() (netlink.Link, error) {
	var l netlink.Link
	err := retry(func() (err error) { l, err = m.nl.LinkByName(m.cfg.LinkName); return err }, isDumpInterrupted)
	if _, ok := err.(netlink.LinkNotFoundError); ok {
		return nil, nil
	}
	return l, err
}

func (m *Manager) addrList(link netlink.Link) ([]netlink.Addr, error) {
	var as []netlink.Addr
	err := retry(func() (err error) { as, err = m.nl.AddrList(link, m.family()); return err }, isDumpInterrupted)
	return as, err
}

func (m *Manager) ensureLink() error {
	name, kind, want := m.cfg.LinkName, m.cfg.LinkKind, m.wantAddr()
	op := func(format string, args ...any) string {
		return fmt.Sprintf("interface %s (type %s): ", name, kind) + fmt.Sprintf(format, args...)
	}

	link, err := m.linkByName()
	if err != nil {
		return linkErr(op("look up"), KindLink, kind, err)
	}

	// The address must not be another interface's: taking it would break whatever uses it.
	all, err := m.addrList(nil)
	if err != nil {
		return linkErr(op("list addresses"), KindAddress, kind, err)
	}
	for _, a := range all {
		if !a.IP.Equal(want.IP) || (link != nil && a.LinkIndex == link.Attrs().Index) {
			continue
		}
		owner := fmt.Sprintf("index %d", a.LinkIndex)
		if l, err := m.nl.LinkByIndex(a.LinkIndex); err == nil {
			owner = l.Attrs().Name
		}
		return &SetupError{Op: op("add address %s", want), Kind: KindAddressInUse, sent: ErrAddressInUse,
			Err:  fmt.Errorf("%s is on %s", a.IPNet, owner),
			Hint: fmt.Sprintf("address %s is already on interface %s: remove it there (ip addr del %s dev %s) or choose another --dummy-if-ip", want.IP, owner, a.IPNet, owner)}
	}

	if link != nil && link.Type() != kind {
		return &SetupError{Op: op("check"), Kind: KindLinkConflict, sent: ErrLinkConflict,
			Err:  fmt.Errorf("%s is of type %s", name, link.Type()),
			Hint: fmt.Sprintf("an interface named %s exists with type %s, not %s: delete it (ip link del %s) or choose another --dummy-if-name", name, link.Type(), kind, name)}
	}
	if link == nil {
		err := m.nl.LinkAdd(&netlink.GenericLink{LinkAttrs: netlink.LinkAttrs{Name: name}, LinkType: kind})
		if err != nil && !errors.Is(err, syscall.EEXIST) {
			return linkErr(op("create"), KindLink, kind, err)
		}
		if link, err = m.linkByName(); err != nil || link == nil {
			return linkErr(op("look up after creating"), KindLink, kind, errors.Join(err, errors.New("not found")))
		}
		m.log.Info("created interface", slog.String("name", name), slog.String("type", kind))
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		if err := m.nl.LinkSetUp(link); err != nil {
			return linkErr(op("set up"), KindLink, kind, err)
		}
		m.log.Info("set interface up", slog.String("name", name))
	}

	mine, err := m.addrList(link)
	if err != nil {
		return linkErr(op("list addresses"), KindAddress, kind, err)
	}
	have := false
	for _, a := range mine {
		switch {
		case a.IPNet.String() == want.String():
			have = true
			continue
		case a.IP.To4() == nil && a.IP.IsLinkLocalUnicast():
			continue // fe80::/64, the kernel's own
		}
		// The link is ours: our IP with another prefix, or an address left from an
		// earlier --dummy-if-ip, goes.
		if err := m.nl.AddrDel(link, &a); err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) {
			return linkErr(op("delete address %s", a.IPNet), KindAddress, kind, err)
		}
		m.log.Info("deleted address", slog.String("name", name), slog.String("addr", a.IPNet.String()),
			slog.String("reason", "not "+want.String()))
	}
	if have {
		return nil
	}
	addr := &netlink.Addr{IPNet: want}
	if m.family() == netlink.FAMILY_V6 {
		addr.Flags = unix.IFA_F_NODAD // bindable at once, no duplicate-address detection wait
	}
	if err := m.nl.AddrAdd(link, addr); err != nil && !errors.Is(err, syscall.EEXIST) {
		return linkErr(op("add address %s", want), KindAddress, kind, err)
	}
	m.log.Info("added address", slog.String("name", name), slog.String("addr", want.String()))
	return nil
}

func (m *Manager) removeLink() error {
	name, kind := m.cfg.LinkName, m.cfg.LinkKind
	link, err := m.linkByName()
	if err != nil {
		return linkErr(fmt.Sprintf("interface %s: look up", name), KindLink, kind, err)
	}
	if link == nil {
		return nil
	}
	if link.Type() != kind {
		m.log.Warn("not deleting interface: it is not ours", slog.String("name", name), slog.String("type", link.Type()))
		return nil
	}
	if err := m.nl.LinkDel(link); err != nil && !errors.Is(err, syscall.ENODEV) {
		return linkErr(fmt.Sprintf("interface %s: delete", name), KindLink, kind, err)
	}
	m.log.Info("deleted interface", slog.String("name", name))
	return nil
}
