package network

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"

	"github.com/coreos/go-iptables/iptables"
)

// Sentinel errors: callers branch with errors.Is. Every error Ensure returns is a
// *SetupError that wraps one of these (or only the underlying cause, for kinds
// without a sentinel) and says what to do.
var (
	// ErrNoPermission: the process lacks CAP_NET_ADMIN.
	ErrNoPermission = errors.New("no CAP_NET_ADMIN")
	// ErrNoDriver: the kernel has no driver for the link kind (netlink EOPNOTSUPP).
	ErrNoDriver = errors.New("kernel has no driver for the link kind")
	// ErrAddressInUse: the dummy IP is already on another interface.
	ErrAddressInUse = errors.New("address already on another interface")
	// ErrLinkConflict: an interface with the dummy name exists but is of another kind.
	ErrLinkConflict = errors.New("interface exists with another kind")
	// ErrIPTablesMissing: no iptables (or ip6tables) binary in PATH.
	ErrIPTablesMissing = errors.New("iptables not found")
)

// Error kinds, the values of the setup-error metric's "kind" label.
const (
	KindPermission      = "no_permission"
	KindNoDriver        = "no_driver"
	KindAddressInUse    = "address_in_use"
	KindLinkConflict    = "link_conflict"
	KindIPTablesMissing = "iptables_missing"
	KindLink            = "link"     // any other netlink error on the link
	KindAddress         = "address"  // any other netlink error on the address
	KindIPTables        = "iptables" // any other iptables error
)

// SetupError is what Ensure and Remove return: the operation, a kind (the metric
// label), a hint a person can act on, and the cause.
type SetupError struct {
	Op   string // what was being done, naming the interface, address, table or chain
	Kind string // one of the Kind constants
	Hint string // what is wrong and what to do; empty when the cause says it all
	Err  error  // the cause
	sent error  // the sentinel matching Kind, if any
}

func (e *SetupError) Error() string {
	if e.Hint == "" {
		return fmt.Sprintf("%s: %v", e.Op, e.Err)
	}
	return fmt.Sprintf("%s: %s (%v)", e.Op, e.Hint, e.Err)
}

// Unwrap returns the sentinel (if any) and the cause.
func (e *SetupError) Unwrap() []error {
	if e.sent == nil {
		return []error{e.Err}
	}
	return []error{e.sent, e.Err}
}

// KindOf returns the metric kind of err, or "" if err is not a *SetupError.
func KindOf(err error) string {
	var se *SetupError
	if errors.As(err, &se) {
		return se.Kind
	}
	return ""
}

// noDriverHint is the message for a kernel without the link kind's driver. For the
// production kind it reads: "kernel has no dummy driver: load the dummy module
// (modprobe dummy) or run with --enable-dummy-if=false".
func noDriverHint(kind string) string {
	return fmt.Sprintf("kernel has no %s driver: load the %s module (modprobe %s) or run with --enable-dummy-if=false", kind, kind, kind)
}

const (
	linkPermHint     = "no CAP_NET_ADMIN: run yurthub as root or grant it CAP_NET_ADMIN (systemd: AmbientCapabilities=CAP_NET_ADMIN), or run with --enable-dummy-if=false"
	iptablesPermHint = "no CAP_NET_ADMIN: run yurthub as root or grant it CAP_NET_ADMIN (systemd: AmbientCapabilities=CAP_NET_ADMIN), or run with --enable-iptables=false"
)

// linkErr classifies a netlink error from an operation on the link or its address.
func linkErr(op, kind, linkKind string, err error) *SetupError {
	switch {
	case errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES):
		return &SetupError{Op: op, Kind: KindPermission, Hint: linkPermHint, Err: err, sent: ErrNoPermission}
	case errors.Is(err, syscall.EOPNOTSUPP):
		return &SetupError{Op: op, Kind: KindNoDriver, Hint: noDriverHint(linkKind), Err: err, sent: ErrNoDriver}
	}
	return &SetupError{Op: op, Kind: kind, Err: err}
}

// iptablesErr classifies an error from go-iptables.
func iptablesErr(op string, err error) *SetupError {
	var ie *iptables.Error
	switch {
	case errors.Is(err, exec.ErrNotFound):
		return &SetupError{Op: op, Kind: KindIPTablesMissing, Err: err, sent: ErrIPTablesMissing,
			Hint: "iptables not found in PATH: install iptables or run with --enable-iptables=false"}
	case errors.As(err, &ie) && isPermissionMsg(ie.Error()):
		return &SetupError{Op: op, Kind: KindPermission, Hint: iptablesPermHint, Err: err, sent: ErrNoPermission}
	}
	return &SetupError{Op: op, Kind: KindIPTables, Err: err}
}

func isPermissionMsg(s string) bool {
	return strings.Contains(s, "Permission denied") || strings.Contains(s, "Operation not permitted")
}

// isLockContention reports whether iptables failed because another program held
// the xtables lock (or, with the nf_tables backend, changed the ruleset under it).
func isLockContention(err error) bool {
	var ie *iptables.Error
	if !errors.As(err, &ie) || ie.ExitStatus() != 4 {
		return false
	}
	msg := ie.Error()
	return strings.Contains(msg, "xtables lock") || strings.Contains(msg, "Resource temporarily unavailable")
}
