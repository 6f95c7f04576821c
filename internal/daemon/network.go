package daemon

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yurthub/yurthub/internal/config"
	"github.com/yurthub/yurthub/internal/network"
)

// nodeNetwork runs internal/network for the daemon: the dummy interface and the
// iptables rules, ensured once at start (before the listeners that bind the dummy IP),
// then every network.ReconcilePeriod, and removed only on a clean shutdown. A failure
// is logged (with what to do) and counted, never fatal: the proxy keeps serving on
// its other addresses, and the dummy-IP listeners open once the address exists.
type nodeNetwork struct {
	m      *network.Manager
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}
}

// linkKind is the kind of the interface the hub creates: dummy. This package's
// tests set it to ifb, which this project's CI kernel has and which takes the same
// code path, to run the whole daemon on a real link and address.
var linkKind = network.DefaultLinkKind

// startNetwork returns nil when --enable-dummy-if and --enable-iptables are both off.
func startNetwork(ctx context.Context, cfg *config.Config, log *slog.Logger) *nodeNetwork {
	if !cfg.EnableDummyIf && !cfg.EnableIPTables {
		return nil
	}
	m, err := network.New(network.Config{
		EnableLink:     cfg.EnableDummyIf,
		LinkName:       cfg.DummyIfName,
		LinkKind:       linkKind,
		IP:             cfg.DummyIfIP,
		EnableIPTables: cfg.EnableIPTables,
		Ports:          []int{cfg.ProxyPort, cfg.ProxySecurePort},
	}, log)
	if err != nil {
		log.Error("cannot manage the node network; the hub runs without the dummy interface and iptables rules", slog.Any("err", err))
		return nil
	}
	_ = m.Ensure() // failures are logged and counted by the manager
	rctx, cancel := context.WithCancel(ctx)
	n := &nodeNetwork{m: m, log: log, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(n.done)
		m.Run(rctx, network.ReconcilePeriod)
	}()
	return n
}

// register adds the network metrics (node_yurthub_network_*) to reg.
func (n *nodeNetwork) register(reg prometheus.Registerer) {
	if n == nil {
		return
	}
	if err := n.m.Register(reg); err != nil {
		n.log.Warn("network metrics not registered", slog.Any("err", err))
	}
}

// stop ends the reconcile loop and, on a clean shutdown only, removes the interface
// and the rules. After a failure the state stays: the next start ensures it.
func (n *nodeNetwork) stop(clean bool) {
	if n == nil {
		return
	}
	n.cancel()
	<-n.done
	if clean {
		_ = n.m.Remove() // failures are logged and counted by the manager
	}
	n.m.Close()
}
