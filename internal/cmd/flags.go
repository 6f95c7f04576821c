package cmd

import (
	"net"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/yurthub/yurthub/internal/config"
)

// daemonFlags are OpenYurt YurtHub's flags, with its names and defaults
// (../shared/REFERENCE.md section 1), plus --log-format. urfave/cli parses with Go's
// flag package, so -flag, --flag, --flag=value and --flag value all work, as they do
// for OpenYurt's pflag-based command line.
func daemonFlags() []cli.Flag {
	d := config.Default()
	// Flags whose feature is not built yet say so in --help; the daemon logs a WARN
	// line for each one set to a non-default value (config.Config.Inert).
	const inert = " (accepted; no effect yet)"
	return []cli.Flag{
		&cli.StringFlag{Name: "server-addr", Usage: "comma-separated list of the cloud kube-apiserver https URLs (required)"},
		&cli.StringFlag{Name: "node-name", Usage: "name of the node this hub serves (required)"},
		&cli.StringFlag{Name: "nodepool-name", Usage: "name of the nodepool the node belongs to (servicetopology, nodeportisolation); default: the node's apps.openyurt.io/nodepool label"},
		&cli.StringFlag{Name: "working-mode", Value: d.WorkingMode, Usage: "edge: cache responses and serve offline; cloud: pure proxy"},
		&cli.StringFlag{Name: "lb-mode", Value: d.LBMode, Usage: "rr: round robin over healthy apiservers; priority: first healthy in --server-addr order"},
		&cli.StringFlag{Name: "bind-address", Value: d.BindAddress, Usage: "address of the hub server (healthz, readyz, metrics, pprof, token)"},
		&cli.IntFlag{Name: "serve-port", Value: d.ServePort, Usage: "port of the hub server"},
		&cli.StringFlag{Name: "bind-proxy-address", Value: d.BindProxyAddress, Usage: "address of the proxy listeners"},
		&cli.IntFlag{Name: "proxy-port", Value: d.ProxyPort, Usage: "port of the plain HTTP proxy"},
		&cli.IntFlag{Name: "proxy-secure-port", Value: d.ProxySecurePort, Usage: "port of the TLS proxy (client certificates checked against the cluster CA)"},
		&cli.StringFlag{Name: "root-dir", Value: d.RootDir, Usage: "directory for certificates, kubeconfigs and the cache file"},
		&cli.StringFlag{Name: "disk-cache-path", Value: d.DiskCachePath, Usage: "OpenYurt's cache directory; imported once into the cache file if found"},
		&cli.BoolFlag{Name: "enable-dummy-if", Value: d.EnableDummyIf, Usage: "create a dummy interface carrying --dummy-if-ip that the proxy also listens on"},
		&cli.StringFlag{Name: "dummy-if-name", Value: d.DummyIfName, Usage: "name of the dummy interface"},
		&cli.StringFlag{Name: "dummy-if-ip", Value: d.DummyIfIP.String(), Usage: "IP of the dummy interface; not in 169.254.31.0/24 nor 169.254.1.1"},
		&cli.BoolFlag{Name: "enable-iptables", Value: d.EnableIPTables, Usage: "ensure iptables ACCEPT rules for the dummy IP and the proxy ports"},
		&cli.IntFlag{Name: "heartbeat-failed-retry", Value: d.HeartbeatFailedRetry, Usage: "failed heartbeats tolerated before an apiserver is marked unhealthy"},
		&cli.IntFlag{Name: "heartbeat-healthy-threshold", Value: d.HeartbeatHealthyThreshold, Usage: "consecutive good heartbeats before an apiserver is marked healthy"},
		&cli.IntFlag{Name: "heartbeat-timeout-seconds", Value: int(d.HeartbeatTimeout / time.Second), Usage: "timeout of one heartbeat, seconds"},
		&cli.IntFlag{Name: "heartbeat-interval-seconds", Value: int(d.HeartbeatInterval / time.Second), Usage: "interval between heartbeats, seconds"},
		&cli.DurationFlag{Name: "kubelet-health-grace-period", Value: d.KubeletHealthGracePeriod, Usage: "stop heartbeating when kubelet has been silent this long"},
		&cli.IntFlag{Name: "gc-frequency", Value: int(d.GCFrequency / time.Minute), Usage: "period of the cache's garbage collection (expired events, objects nothing refreshes), minutes, jittered"},
		&cli.StringFlag{Name: "join-token", Usage: "bootstrap token (<id>.<secret>): with --discovery-token-ca-cert-hash, the hub reads kube-public/cluster-info, checks it and gets its certificates by CSR"},
		&cli.StringFlag{Name: "bootstrap-file", Usage: "bootstrap kubeconfig (server, CA, bootstrap token, as yurtadm writes it), used to get the hub's certificates by CSR; preferred over --join-token"},
		&cli.StringSliceFlag{Name: "discovery-token-ca-cert-hash", Usage: "sha256:<hex> of the cluster CA's public key (kubeadm's format) for --join-token discovery (repeatable)"},
		&cli.BoolFlag{Name: "discovery-token-unsafe-skip-ca-verification", Usage: "allow --join-token discovery without --discovery-token-ca-cert-hash (unsafe: trusts whatever CA the server presents)"},
		&cli.StringFlag{Name: "bootstrap-mode", Value: d.BootstrapMode, Usage: "token, or kubeletcertificate to reuse kubelet's client certificate"},
		&cli.StringSliceFlag{Name: "hub-cert-organizations", Usage: "extra O= values in the hub's client certificate (comma-separated or repeated)"},
		&cli.StringFlag{Name: "kubelet-ca-file", Value: d.KubeletCAFile, Usage: "cluster CA used in kubeletcertificate mode"},
		&cli.StringFlag{Name: "kubelet-client-certificate", Value: d.KubeletClientCertificate, Usage: "kubelet's client certificate and key used in kubeletcertificate mode"},
		&cli.BoolFlag{Name: "enable-resource-filter", Value: d.EnableResourceFilter, Usage: "apply the response filters (masterservice, servicetopology, ...) to what node components read"},
		&cli.StringSliceFlag{Name: "disabled-resource-filters", Usage: "response filters to turn off, comma-separated"},
		&cli.BoolFlag{Name: "enable-node-pool", Value: d.EnableNodePool, Usage: "watch NodePool objects (apps.openyurt.io) for pool-scoped service topology"},
		&cli.IntFlag{Name: "max-requests-in-flight", Value: d.MaxRequestsInFlight, Usage: "in-flight non-long-running requests before 429 with Retry-After (0: no limit)"},
		&cli.DurationFlag{Name: "min-request-timeout", Value: d.MinRequestTimeout, Usage: "a watch served from the cache without timeoutSeconds ends after a random time between this and twice this (as the apiserver's --min-request-timeout)"},
		&cli.BoolFlag{Name: "profiling", Value: d.Profiling, Usage: "serve /debug/pprof on the hub server"},
		&cli.StringFlag{Name: "cert-mgr-mode", Value: d.CertMgrMode, Usage: "certificate manager of OpenYurt (hubself)" + inert},
		&cli.BoolFlag{Name: "access-server-through-hub", Value: d.AccessServerThroughHub, Usage: "pods reach the apiserver through the hub (response filters)" + inert},
		&cli.StringFlag{Name: "node-ip", Usage: "this node's IP, a SAN of the serving certificate of --proxy-secure-port (default: the IPv4 address of the default route's interface)"},
		&cli.StringFlag{Name: "namespace", Value: d.Namespace, Usage: "namespace of the hub's own objects: the yurt-hub-cfg ConfigMap (cache_agents) is read from it"},
		&cli.IntFlag{Name: "multiplexer-port", Value: d.MultiplexerPort, Usage: "port serving pool-scope list/watch to other hubs" + inert},
		&cli.StringSliceFlag{Name: "pool-scope-resources", Value: cli.NewStringSlice(d.PoolScopeResources...), Usage: "group/version/resource list the multiplexer serves: one upstream list/watch per resource shared by every local client (the core group empty: /v1/services)"},
		&cli.BoolFlag{Name: "enable-pool-service-topology", Value: d.EnablePoolServiceTopology, Usage: "pool-scoped service topology (openyurt.io/topologyKeys: openyurt.io/nodepool)"},
		&cli.StringFlag{Name: "host-control-plane-address", Usage: "host control plane address for --working-mode=local" + inert},
		&cli.StringFlag{Name: "log-format", Value: d.LogFormat, Usage: "text or json"},
		&cli.IntFlag{Name: "v", Usage: "log verbosity; 4 or more turns on debug logs (klog compatibility)"},
	}
}

// configFromFlags turns the parsed command line into a validated Config. It is the
// only place that reads flags.
func configFromFlags(c *cli.Context) (*config.Config, error) {
	cfg := &config.Config{
		NodeName:                               c.String("node-name"),
		NodePoolName:                           c.String("nodepool-name"),
		WorkingMode:                            c.String("working-mode"),
		LBMode:                                 c.String("lb-mode"),
		BindAddress:                            c.String("bind-address"),
		ServePort:                              c.Int("serve-port"),
		BindProxyAddress:                       c.String("bind-proxy-address"),
		ProxyPort:                              c.Int("proxy-port"),
		ProxySecurePort:                        c.Int("proxy-secure-port"),
		RootDir:                                c.String("root-dir"),
		DiskCachePath:                          c.String("disk-cache-path"),
		EnableDummyIf:                          c.Bool("enable-dummy-if"),
		DummyIfName:                            c.String("dummy-if-name"),
		DummyIfIP:                              net.ParseIP(c.String("dummy-if-ip")),
		EnableIPTables:                         c.Bool("enable-iptables"),
		HeartbeatFailedRetry:                   c.Int("heartbeat-failed-retry"),
		HeartbeatHealthyThreshold:              c.Int("heartbeat-healthy-threshold"),
		HeartbeatTimeout:                       time.Duration(c.Int("heartbeat-timeout-seconds")) * time.Second,
		HeartbeatInterval:                      time.Duration(c.Int("heartbeat-interval-seconds")) * time.Second,
		KubeletHealthGracePeriod:               c.Duration("kubelet-health-grace-period"),
		GCFrequency:                            time.Duration(c.Int("gc-frequency")) * time.Minute,
		JoinToken:                              c.String("join-token"),
		BootstrapFile:                          c.String("bootstrap-file"),
		DiscoveryTokenCACertHashes:             splitList(c.StringSlice("discovery-token-ca-cert-hash")),
		DiscoveryTokenUnsafeSkipCAVerification: c.Bool("discovery-token-unsafe-skip-ca-verification"),
		BootstrapMode:                          c.String("bootstrap-mode"),
		HubCertOrganizations:                   splitList(c.StringSlice("hub-cert-organizations")),
		KubeletCAFile:                          c.String("kubelet-ca-file"),
		KubeletClientCertificate:               c.String("kubelet-client-certificate"),
		EnableResourceFilter:                   c.Bool("enable-resource-filter"),
		DisabledResourceFilters:                splitList(c.StringSlice("disabled-resource-filters")),
		EnableNodePool:                         c.Bool("enable-node-pool"),
		MaxRequestsInFlight:                    c.Int("max-requests-in-flight"),
		MinRequestTimeout:                      c.Duration("min-request-timeout"),
		Profiling:                              c.Bool("profiling"),
		CertMgrMode:                            c.String("cert-mgr-mode"),
		AccessServerThroughHub:                 c.Bool("access-server-through-hub"),
		Namespace:                              c.String("namespace"),
		MultiplexerPort:                        c.Int("multiplexer-port"),
		PoolScopeResources:                     splitList(c.StringSlice("pool-scope-resources")),
		EnablePoolServiceTopology:              c.Bool("enable-pool-service-topology"),
		HostControlPlaneAddress:                c.String("host-control-plane-address"),
		LogFormat:                              c.String("log-format"),
		Verbosity:                              c.Int("v"),
	}
	if s := c.String("dummy-if-ip"); cfg.DummyIfIP == nil {
		return nil, &config.FlagError{Flag: "dummy-if-ip", Value: s, Reason: "not an IP address; use a link-local address such as 169.254.2.1"}
	}
	if s := c.String("node-ip"); s != "" {
		if cfg.NodeIP = net.ParseIP(s); cfg.NodeIP == nil {
			return nil, &config.FlagError{Flag: "node-ip", Value: s, Reason: "not an IP address"}
		}
	}
	addrs, err := config.ParseServerAddrs(c.String("server-addr"))
	if err != nil {
		return nil, err
	}
	cfg.ServerAddrs = addrs
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// splitList accepts both repeated flags and comma-separated values, as pflag's
// StringSlice did for OpenYurt.
func splitList(in []string) []string {
	var out []string
	for _, s := range in {
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}
