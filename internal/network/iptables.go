package network

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"
)

// lockWaitSeconds is how long one iptables call waits for the xtables lock (-w) before
// it fails with exit status 4; such a failure is retried (see retryLock). A variable
// so that the lock test need not wait 5 s per try.
var lockWaitSeconds = 5

// rule is one rule in an owned chain, in the canonical form iptables -S prints it,
// so that listed rules compare as strings.
type rule struct {
	chain string
	spec  []string
}

func (r rule) String() string { return strings.Join(r.spec, " ") }

func (m *Manager) rules() []rule {
	ip := m.wantAddr().String()
	var out []rule
	for _, p := range m.cfg.Ports {
		port := strconv.Itoa(p)
		out = append(out,
			rule{ChainInput, []string{"-d", ip, "-p", "tcp", "-m", "tcp", "--dport", port, "-j", "ACCEPT"}},
			rule{ChainOutput, []string{"-s", ip, "-p", "tcp", "-m", "tcp", "--sport", port, "-j", "ACCEPT"}})
	}
	return out
}

// jumps: built-in chain -> owned chain.
var jumps = [][2]string{{"INPUT", ChainInput}, {"OUTPUT", ChainOutput}}

// iptables returns the go-iptables handle for the IP's family, finding the binary
// on first use (and again on the next call if it was missing).
func (m *Manager) iptables() (*iptables.IPTables, error) {
	m.iptMu.Lock()
	defer m.iptMu.Unlock()
	if m.ipt != nil {
		return m.ipt, nil
	}
	proto := iptables.ProtocolIPv4
	if m.family() != netlink.FAMILY_V4 {
		proto = iptables.ProtocolIPv6
	}
	var ipt *iptables.IPTables
	var err error
	if m.cfg.IPTablesCommand != "" {
		ipt, err = iptables.New(iptables.IPFamily(proto), iptables.Timeout(lockWaitSeconds), iptables.Path(m.cfg.IPTablesCommand))
	} else {
		ipt, err = iptables.New(iptables.IPFamily(proto), iptables.Timeout(lockWaitSeconds))
	}
	if err != nil {
		return nil, iptablesErr("find iptables", err)
	}
	m.ipt = ipt
	return ipt, nil
}

// retryLock runs an iptables operation, retrying while another program holds the
// xtables lock (iptables-legacy) or changes the ruleset under it (iptables-nft).
func (m *Manager) retryLock(op func() error) error {
	return retry(op, func(err error) bool {
		if !isLockContention(err) {
			return false
		}
		m.log.Warn("iptables is busy (another program holds the xtables lock), retrying", slog.Any("err", err))
		return true
	})
}

func (m *Manager) ensureRules() error {
	ipt, err := m.iptables()
	if err != nil {
		return err
	}
	want := m.rules()
	for _, chain := range []string{ChainInput, ChainOutput} {
		var exists bool
		if err := m.retryLock(func() (err error) { exists, err = ipt.ChainExists(Table, chain); return err }); err != nil {
			return iptablesErr(fmt.Sprintf("table %s chain %s: check", Table, chain), err)
		}
		if !exists {
			if err := m.retryLock(func() error { return ipt.NewChain(Table, chain) }); err != nil {
				return iptablesErr(fmt.Sprintf("table %s chain %s: create", Table, chain), err)
			}
			m.log.Info("created iptables chain", slog.String("table", Table), slog.String("chain", chain))
		}

		var listed []string
		if err := m.retryLock(func() (err error) { listed, err = ipt.List(Table, chain); return err }); err != nil {
			return iptablesErr(fmt.Sprintf("table %s chain %s: list", Table, chain), err)
		}
		have := map[string]bool{}
		prefix := "-A " + chain + " "
		for _, line := range listed {
			if !strings.HasPrefix(line, prefix) {
				continue // the "-N chain" line
			}
			spec := strings.TrimPrefix(line, prefix)
			if wanted(want, chain, spec) && !have[spec] {
				have[spec] = true
				continue
			}
			// Not ours (or a duplicate): the chain is owned, so it goes.
			if err := m.retryLock(func() error { return ipt.Delete(Table, chain, strings.Fields(spec)...) }); err != nil {
				return iptablesErr(fmt.Sprintf("table %s chain %s: delete rule %q", Table, chain, spec), err)
			}
			m.log.Info("deleted unexpected iptables rule", slog.String("chain", chain), slog.String("rule", spec))
		}
		for _, r := range want {
			if r.chain != chain || have[r.String()] {
				continue
			}
			if err := m.retryLock(func() error { return ipt.Append(Table, chain, r.spec...) }); err != nil {
				return iptablesErr(fmt.Sprintf("table %s chain %s: append rule %q", Table, chain, r), err)
			}
			m.log.Info("added iptables rule", slog.String("chain", chain), slog.String("rule", r.String()))
		}
	}
	for _, j := range jumps {
		var ok bool
		if err := m.retryLock(func() (err error) { ok, err = ipt.Exists(Table, j[0], "-j", j[1]); return err }); err != nil {
			return iptablesErr(fmt.Sprintf("table %s chain %s: check jump to %s", Table, j[0], j[1]), err)
		}
		if ok {
			continue
		}
		if err := m.retryLock(func() error { return ipt.Insert(Table, j[0], 1, "-j", j[1]) }); err != nil {
			return iptablesErr(fmt.Sprintf("table %s chain %s: insert jump to %s", Table, j[0], j[1]), err)
		}
		m.log.Info("added iptables jump", slog.String("chain", j[0]), slog.String("to", j[1]))
	}
	return nil
}

func wanted(want []rule, chain, spec string) bool {
	for _, r := range want {
		if r.chain == chain && r.String() == spec {
			return true
		}
	}
	return false
}

func (m *Manager) removeRules() error {
	ipt, err := m.iptables()
	if err != nil {
		return err
	}
	for _, j := range jumps {
		var exists bool
		if err := m.retryLock(func() (err error) { exists, err = ipt.ChainExists(Table, j[1]); return err }); err != nil {
			return iptablesErr(fmt.Sprintf("table %s chain %s: check", Table, j[1]), err)
		}
		for exists { // no owned chain means no jump to it can exist either
			var ok bool
			if err := m.retryLock(func() (err error) { ok, err = ipt.Exists(Table, j[0], "-j", j[1]); return err }); err != nil {
				return iptablesErr(fmt.Sprintf("table %s chain %s: check jump to %s", Table, j[0], j[1]), err)
			}
			if !ok {
				break
			}
			if err := m.retryLock(func() error { return ipt.Delete(Table, j[0], "-j", j[1]) }); err != nil {
				return iptablesErr(fmt.Sprintf("table %s chain %s: delete jump to %s", Table, j[0], j[1]), err)
			}
			m.log.Info("deleted iptables jump", slog.String("chain", j[0]), slog.String("to", j[1]))
		}
	}
	for _, chain := range []string{ChainInput, ChainOutput} {
		var exists bool
		if err := m.retryLock(func() (err error) { exists, err = ipt.ChainExists(Table, chain); return err }); err != nil {
			return iptablesErr(fmt.Sprintf("table %s chain %s: check", Table, chain), err)
		}
		if !exists {
			continue
		}
		if err := m.retryLock(func() error { return ipt.ClearAndDeleteChain(Table, chain) }); err != nil {
			return iptablesErr(fmt.Sprintf("table %s chain %s: delete", Table, chain), err)
		}
		m.log.Info("deleted iptables chain", slog.String("table", Table), slog.String("chain", chain))
	}
	return nil
}
