// Package config holds the hub's validated configuration.
//
// The command line (package cmd) is the only place that reads flags: it fills a
// Config, calls Validate, and hands the value to the daemon. Every other package
// receives what it needs from Config and never looks at flags or the environment.
// Flag names and defaults are OpenYurt YurtHub's, so an existing systemd unit or
// static-pod command line works unchanged.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/yurthub/yurthub/internal/filter"
)

// Working modes.
const (
	WorkingModeEdge  = "edge"  // cache responses and serve from the cache when the cloud is gone
	WorkingModeCloud = "cloud" // pure proxy, no cache, no health gating
)

// Load-balancing modes.
const (
	LBModeRoundRobin = "rr"       // round robin over healthy backends
	LBModePriority   = "priority" // first healthy backend in --server-addr order
)

// Bootstrap modes.
const (
	BootstrapModeToken              = "token"
	BootstrapModeKubeletCertificate = "kubeletcertificate"
)

// Log formats.
const (
	LogFormatText = "text"
	LogFormatJSON = "json"
)

// Defaults, as OpenYurt YurtHub has them.
const (
	DefaultRootDir          = "/var/lib/yurthub"
	DefaultDiskCachePath    = "/etc/kubernetes/cache/"
	DefaultDummyIfName      = "yurthub-dummy0"
	DefaultDummyIfIP        = "169.254.2.1"
	DefaultServePort        = 10267
	DefaultProxyPort        = 10261
	DefaultProxySecurePort  = 10268
	DefaultKubeletCAFile    = "/etc/kubernetes/pki/ca.crt"
	DefaultKubeletClientPEM = "/var/lib/kubelet/pki/kubelet-client-current.pem"
	DefaultNamespace        = "kube-system"
	DefaultMultiplexerPort  = 10269
	// CacheFileName is the bbolt file under the root dir that holds the whole cache.
	CacheFileName = "cache.db"
	// AdminSocketName is the unix socket under the root dir on which a running daemon
	// answers hubctl (the cache file itself is locked while the daemon runs).
	AdminSocketName = "hub.sock"
)

// Config is the hub's whole configuration, validated.
type Config struct {
	ServerAddrs  []*url.URL // --server-addr, in the order given
	NodeName     string
	NodePoolName string
	WorkingMode  string
	LBMode       string

	BindAddress      string // hub server
	ServePort        int
	BindProxyAddress string // proxy
	ProxyPort        int
	ProxySecurePort  int

	RootDir       string
	DiskCachePath string // OpenYurt's cache dir, imported once into ours

	EnableDummyIf  bool
	DummyIfName    string
	DummyIfIP      net.IP
	EnableIPTables bool

	HeartbeatFailedRetry      int
	HeartbeatHealthyThreshold int
	HeartbeatTimeout          time.Duration
	HeartbeatInterval         time.Duration
	KubeletHealthGracePeriod  time.Duration
	GCFrequency               time.Duration

	JoinToken                              string
	BootstrapFile                          string
	DiscoveryTokenCACertHashes             []string
	DiscoveryTokenUnsafeSkipCAVerification bool
	BootstrapMode                          string
	HubCertOrganizations                   []string
	KubeletCAFile                          string
	KubeletClientCertificate               string
	// NodeIP is --node-ip, a SAN of the serving certificate; nil: the node's
	// default-route IPv4 address, found at start.
	NodeIP net.IP

	EnableResourceFilter    bool
	DisabledResourceFilters []string
	EnableNodePool          bool
	MaxRequestsInFlight     int
	MinRequestTimeout       time.Duration
	Profiling               bool
	CertMgrMode             string
	AccessServerThroughHub  bool

	// Namespace is --namespace: where the hub's own objects live (the yurt-hub-cfg
	// ConfigMap).
	Namespace string
	// PoolScopeResources are served by the node-level multiplexer
	// (internal/multiplexer): "group/version/resource", the core group empty.
	PoolScopeResources []string
	// EnablePoolServiceTopology turns on pool-scoped service topology (with
	// EnableNodePool, either one: OpenYurt v1.7 reads both).
	EnablePoolServiceTopology bool
	// OpenYurt v1.6/v1.7 flags whose features are not built yet (see Inert).
	MultiplexerPort         int
	HostControlPlaneAddress string

	LogFormat string
	Verbosity int // -v, accepted for compatibility with klog-style command lines
}

// Default is the configuration the command line gives when no flag is set: OpenYurt
// YurtHub's defaults (REFERENCE.md section 1). The flags take their defaults from it,
// so it is the one place they are written. ServerAddrs and NodeName, which have no
// default, are empty: Default is not valid until they are set.
func Default() *Config {
	return &Config{
		WorkingMode:               WorkingModeEdge,
		LBMode:                    LBModeRoundRobin,
		BindAddress:               "127.0.0.1",
		ServePort:                 DefaultServePort,
		BindProxyAddress:          "127.0.0.1",
		ProxyPort:                 DefaultProxyPort,
		ProxySecurePort:           DefaultProxySecurePort,
		RootDir:                   DefaultRootDir,
		DiskCachePath:             DefaultDiskCachePath,
		EnableDummyIf:             true,
		DummyIfName:               DefaultDummyIfName,
		DummyIfIP:                 net.ParseIP(DefaultDummyIfIP),
		EnableIPTables:            true,
		HeartbeatFailedRetry:      3,
		HeartbeatHealthyThreshold: 2,
		HeartbeatTimeout:          2 * time.Second,
		HeartbeatInterval:         10 * time.Second,
		KubeletHealthGracePeriod:  40 * time.Second,
		GCFrequency:               120 * time.Minute,
		BootstrapMode:             BootstrapModeToken,
		KubeletCAFile:             DefaultKubeletCAFile,
		KubeletClientCertificate:  DefaultKubeletClientPEM,
		EnableResourceFilter:      true,
		EnableNodePool:            true,
		MaxRequestsInFlight:       250,
		MinRequestTimeout:         30 * time.Minute,
		Profiling:                 true,
		CertMgrMode:               "hubself",
		AccessServerThroughHub:    true,
		Namespace:                 DefaultNamespace,
		MultiplexerPort:           DefaultMultiplexerPort,
		PoolScopeResources:        []string{"/v1/services", "discovery.k8s.io/v1/endpointslices"},
		LogFormat:                 LogFormatText,
	}
}

// InertSetting is a flag that is accepted, for OpenYurt command lines, but whose
// feature is not built yet, set to something other than its default.
type InertSetting struct {
	Flag  string // without dashes
	Value string
}

// Inert lists the flags set to a non-default value that have no effect yet, so the
// daemon can say so at start: no flag is ever silently ignored.
func (c *Config) Inert() []InertSetting {
	d := Default()
	var out []InertSetting
	add := func(flag string, differs bool, v any) {
		if differs {
			out = append(out, InertSetting{Flag: flag, Value: fmt.Sprint(v)})
		}
	}
	add("cert-mgr-mode", c.CertMgrMode != d.CertMgrMode, c.CertMgrMode)
	add("access-server-through-hub", c.AccessServerThroughHub != d.AccessServerThroughHub, c.AccessServerThroughHub)
	add("multiplexer-port", c.MultiplexerPort != d.MultiplexerPort, c.MultiplexerPort)
	add("host-control-plane-address", c.HostControlPlaneAddress != d.HostControlPlaneAddress, c.HostControlPlaneAddress)
	return out
}

// CacheFile is the path of the bbolt cache file.
func (c *Config) CacheFile() string { return filepath.Join(c.RootDir, CacheFileName) }

// AdminSocket is the path of the daemon's local admin socket.
func (c *Config) AdminSocket() string { return filepath.Join(c.RootDir, AdminSocketName) }

// PKIDir is where certificates and keys live.
func (c *Config) PKIDir() string { return filepath.Join(c.RootDir, "pki") }

// ServeAddr is the hub server's listen address.
func (c *Config) ServeAddr() string {
	return net.JoinHostPort(c.BindAddress, fmt.Sprint(c.ServePort))
}

// ProxyAddr is the plain HTTP proxy's listen address on the bind-proxy address.
func (c *Config) ProxyAddr() string {
	return net.JoinHostPort(c.BindProxyAddress, fmt.Sprint(c.ProxyPort))
}

// ProxySecureAddr is the TLS proxy's listen address on the bind-proxy address.
func (c *Config) ProxySecureAddr() string {
	return net.JoinHostPort(c.BindProxyAddress, fmt.Sprint(c.ProxySecurePort))
}

// FlagError is a validation error that names the flag at fault.
type FlagError struct {
	Flag   string // without dashes
	Value  string
	Reason string // what is wrong and what to do, one line
}

func (e *FlagError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("--%s: %s", e.Flag, e.Reason)
	}
	return fmt.Sprintf("--%s=%q: %s", e.Flag, e.Value, e.Reason)
}

func flagErr(flag, value, format string, args ...any) error {
	return &FlagError{Flag: flag, Value: value, Reason: fmt.Sprintf(format, args...)}
}

// bootstrapTokenRE is a kubeadm bootstrap token: <id>.<secret>.
var bootstrapTokenRE = regexp.MustCompile(`^[a-z0-9]{6}\.[a-z0-9]{16}$`)

// ValidJoinToken reports whether s has the form of a bootstrap token.
func ValidJoinToken(s string) bool { return bootstrapTokenRE.MatchString(s) }

// JoinTokenFile is where a join token set through POST /v1/token is kept.
func (c *Config) JoinTokenFile() string { return filepath.Join(c.RootDir, "join-token") }

// Link-local ranges the dummy IP must stay out of: 169.254.31.0/24 is used by
// OpenYurt's edge tunnel and 169.254.1.1 by Calico's default gateway.
var (
	reservedDummyNet = &net.IPNet{IP: net.IPv4(169, 254, 31, 0).To4(), Mask: net.CIDRMask(24, 32)}
	reservedDummyIP  = net.IPv4(169, 254, 1, 1)
)

// ParseServerAddrs parses a comma-separated list of https apiserver URLs.
func ParseServerAddrs(s string) ([]*url.URL, error) {
	if strings.TrimSpace(s) == "" {
		return nil, flagErr("server-addr", "", "required: give the cloud kube-apiserver address(es), e.g. --server-addr=https://10.0.0.1:6443")
	}
	var out []*url.URL
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		u, err := url.Parse(part)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, flagErr("server-addr", part, "not an https URL; give each apiserver as https://host:port")
		}
		if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil {
			return nil, flagErr("server-addr", part, "must be scheme://host[:port] only, without path, query or user info")
		}
		u.Path = ""
		if seen[u.Host] {
			return nil, flagErr("server-addr", part, "listed twice")
		}
		seen[u.Host] = true
		out = append(out, u)
	}
	if len(out) == 0 {
		return nil, flagErr("server-addr", s, "no apiserver address in the list")
	}
	return out, nil
}

// Validate checks every field and returns the first problem as a *FlagError.
func (c *Config) Validate() error {
	if len(c.ServerAddrs) == 0 {
		return flagErr("server-addr", "", "required: give the cloud kube-apiserver address(es), e.g. --server-addr=https://10.0.0.1:6443")
	}
	if c.NodeName == "" {
		return flagErr("node-name", "", "required: give this node's name as registered by kubelet")
	}
	if errs := validation.IsDNS1123Subdomain(c.NodeName); len(errs) > 0 {
		return flagErr("node-name", c.NodeName, "not a valid node name: %s", errs[0])
	}
	if c.NodePoolName != "" {
		if errs := validation.IsDNS1123Subdomain(c.NodePoolName); len(errs) > 0 {
			return flagErr("nodepool-name", c.NodePoolName, "not a valid nodepool name: %s", errs[0])
		}
	}
	for _, f := range c.DisabledResourceFilters {
		if !filter.Known(f) {
			return flagErr("disabled-resource-filters", f, "unknown filter; the filters are %s", strings.Join(filter.KnownNames(), ", "))
		}
	}
	if c.WorkingMode == "local" {
		return flagErr("working-mode", c.WorkingMode, "local mode (OpenYurt v1.6+, load-balancing to a host control plane) is not built in this hub; use edge or cloud")
	}
	if err := oneOf("working-mode", c.WorkingMode, WorkingModeEdge, WorkingModeCloud); err != nil {
		return err
	}
	if err := oneOf("lb-mode", c.LBMode, LBModeRoundRobin, LBModePriority); err != nil {
		return err
	}
	if err := oneOf("bootstrap-mode", c.BootstrapMode, BootstrapModeToken, BootstrapModeKubeletCertificate); err != nil {
		return err
	}
	if err := oneOf("cert-mgr-mode", c.CertMgrMode, "hubself", "kubelet"); err != nil {
		return err
	}
	if err := oneOf("log-format", c.LogFormat, LogFormatText, LogFormatJSON); err != nil {
		return err
	}
	for _, a := range []struct{ flag, v string }{{"bind-address", c.BindAddress}, {"bind-proxy-address", c.BindProxyAddress}} {
		if net.ParseIP(a.v) == nil {
			return flagErr(a.flag, a.v, "not an IP address; give the address to listen on, e.g. 127.0.0.1")
		}
	}
	for _, r := range c.PoolScopeResources {
		if p := strings.Split(r, "/"); len(p) != 3 || p[1] == "" || p[2] == "" {
			return flagErr("pool-scope-resources", r, "want group/version/resource, the core group empty (/v1/services, discovery.k8s.io/v1/endpointslices)")
		}
	}
	if c.MultiplexerPort < 1 || c.MultiplexerPort > 65535 {
		return flagErr("multiplexer-port", fmt.Sprint(c.MultiplexerPort), "port out of range 1-65535")
	}
	if c.NodeIP != nil && (c.NodeIP.IsUnspecified() || c.NodeIP.IsMulticast()) {
		return flagErr("node-ip", c.NodeIP.String(), "must be a unicast address of this node")
	}
	if c.Namespace != "" {
		if errs := validation.IsDNS1123Label(c.Namespace); len(errs) > 0 {
			return flagErr("namespace", c.Namespace, "not a valid namespace: %s", errs[0])
		}
	}
	ports := []struct {
		flag string
		v    int
	}{{"serve-port", c.ServePort}, {"proxy-port", c.ProxyPort}, {"proxy-secure-port", c.ProxySecurePort}}
	for i, p := range ports {
		if p.v < 1 || p.v > 65535 {
			return flagErr(p.flag, fmt.Sprint(p.v), "port out of range 1-65535")
		}
		for _, q := range ports[:i] {
			if p.v == q.v && (p.flag == "serve-port" || q.flag == "serve-port") && c.BindAddress != c.BindProxyAddress {
				continue // different addresses: no clash
			}
			if p.v == q.v {
				return flagErr(p.flag, fmt.Sprint(p.v), "clashes with --%s; each listener needs its own port", q.flag)
			}
		}
	}
	if c.DummyIfIP == nil {
		return flagErr("dummy-if-ip", "", "not an IP address")
	}
	if ip4 := c.DummyIfIP.To4(); ip4 != nil {
		if reservedDummyNet.Contains(ip4) {
			return flagErr("dummy-if-ip", c.DummyIfIP.String(), "inside 169.254.31.0/24, which the edge tunnel uses; pick another link-local address such as 169.254.2.1")
		}
		if ip4.Equal(reservedDummyIP) {
			return flagErr("dummy-if-ip", c.DummyIfIP.String(), "169.254.1.1 is Calico's gateway address; pick another link-local address such as 169.254.2.1")
		}
	}
	if c.DummyIfIP.IsUnspecified() || c.DummyIfIP.IsMulticast() {
		return flagErr("dummy-if-ip", c.DummyIfIP.String(), "must be a unicast address")
	}
	if c.EnableDummyIf {
		if c.DummyIfName == "" || len(c.DummyIfName) > 15 || strings.ContainsAny(c.DummyIfName, "/ \t\n:") {
			return flagErr("dummy-if-name", c.DummyIfName, "not a valid interface name (1-15 characters, no '/', ':' or spaces)")
		}
	}
	positive := []struct {
		flag string
		v    int64
	}{
		{"heartbeat-failed-retry", int64(c.HeartbeatFailedRetry) + 1}, // 0 retries is allowed
		{"heartbeat-healthy-threshold", int64(c.HeartbeatHealthyThreshold)},
		{"heartbeat-timeout-seconds", int64(c.HeartbeatTimeout)},
		{"heartbeat-interval-seconds", int64(c.HeartbeatInterval)},
		{"kubelet-health-grace-period", int64(c.KubeletHealthGracePeriod)},
		{"gc-frequency", int64(c.GCFrequency)},
		{"min-request-timeout", int64(c.MinRequestTimeout)},
		{"max-requests-in-flight", int64(c.MaxRequestsInFlight) + 1}, // 0 disables the limit
	}
	for _, p := range positive {
		if p.v <= 0 {
			return flagErr(p.flag, "", "must be greater than zero")
		}
	}
	if err := checkDir("root-dir", c.RootDir); err != nil {
		return err
	}
	if c.BootstrapFile != "" {
		if err := checkReadable("bootstrap-file", c.BootstrapFile); err != nil {
			return err
		}
	}
	if c.BootstrapMode == BootstrapModeKubeletCertificate {
		if err := checkReadable("kubelet-ca-file", c.KubeletCAFile); err != nil {
			return err
		}
		if err := checkReadable("kubelet-client-certificate", c.KubeletClientCertificate); err != nil {
			return err
		}
	}
	for _, h := range c.DiscoveryTokenCACertHashes {
		if !strings.HasPrefix(h, "sha256:") || len(h) != len("sha256:")+64 || strings.Trim(strings.ToLower(h[len("sha256:"):]), "0123456789abcdef") != "" {
			return flagErr("discovery-token-ca-cert-hash", h, "must be sha256:<64 hex digits>, as printed by kubeadm token create --print-join-command")
		}
	}
	if c.JoinToken != "" {
		if !bootstrapTokenRE.MatchString(c.JoinToken) {
			return flagErr("join-token", "", "not a bootstrap token: the form is <6 characters [a-z0-9]>.<16 characters [a-z0-9]>, as kubeadm token create prints it")
		}
		if c.BootstrapFile == "" && len(c.DiscoveryTokenCACertHashes) == 0 && !c.DiscoveryTokenUnsafeSkipCAVerification {
			return flagErr("join-token", "", "needs --discovery-token-ca-cert-hash=sha256:<hex> to pin the cluster CA "+
				"(kubeadm token create --print-join-command prints it); --discovery-token-unsafe-skip-ca-verification joins without pinning (unsafe)")
		}
	}
	return nil
}

func oneOf(flag, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return flagErr(flag, v, "unknown value; must be one of %s", strings.Join(allowed, ", "))
}

// checkDir accepts a directory that exists, or a path whose nearest existing parent
// is a directory (the daemon creates the rest).
func checkDir(flag, p string) error {
	if p == "" {
		return flagErr(flag, p, "must not be empty")
	}
	for dir := filepath.Clean(p); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err == nil {
			if !fi.IsDir() {
				return flagErr(flag, p, "%s is not a directory", dir)
			}
			return nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return flagErr(flag, p, "cannot be used: %v", err)
		}
		if dir == filepath.Dir(dir) {
			return nil
		}
	}
}

func checkReadable(flag, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return flagErr(flag, p, "cannot be read: %v", unwrapPathError(err))
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return flagErr(flag, p, "is a directory; give a file")
	}
	return nil
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
