package proxy

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NodeAddrs tells whether an address is the node's own (internal/nodeaddr.Set): a
// request without credentials is accepted only from one of them.
type NodeAddrs interface {
	Contains(ip netip.Addr) bool
}

// loopbackOnly is the NodeAddrs of a proxy given none.
type loopbackOnly struct{}

func (loopbackOnly) Contains(ip netip.Addr) bool { return ip.Unmap().IsLoopback() }

// Reasons of node_yurthub_proxy_anonymous_rejected_total.
const (
	rejectNotNode       = "not_node_address" // the source is not an address of the node
	rejectUnknownSource = "unknown_source"   // the source address could not be read
)

// hasCredentials: the request says who it is, so it does not go upstream with the
// node's identity borrowed (an Authorization header goes over the token transport
// and the apiserver judges it), or it proved itself with a client certificate the
// secure port verified against the cluster CA.
func hasCredentials(r *http.Request) bool {
	if r.Header.Get("Authorization") != "" {
		return true
	}
	return r.TLS != nil && len(r.TLS.VerifiedChains) > 0
}

// anonymousGuard refuses credential-less requests that do not come from the node:
// they would be sent upstream with the hub's node certificate, and every pod on the
// node can reach the proxy (on the dummy IP, whose iptables rules accept any source).
type anonymousGuard struct {
	addrs NodeAddrs
	log   *slog.Logger

	mu     sync.Mutex
	warned map[netip.Addr]time.Time // source -> last WARN line
}

// warnEvery bounds the WARN lines: one per source address per period.
const warnEvery = 10 * time.Minute

// maxWarned bounds the sources remembered for warnEvery; past it the memory is reset
// (so at worst a source is logged again early).
const maxWarned = 4096

// refuse answers 403 and returns true when r has no credentials and does not come
// from the node.
func (p *Proxy) refuseAnonymous(w http.ResponseWriter, r *http.Request) bool {
	if hasCredentials(r) {
		return false
	}
	g := p.anon
	src, reason := sourceAddr(r), ""
	switch {
	case !src.IsValid():
		reason = rejectUnknownSource
	case !g.addrs.Contains(src):
		reason = rejectNotNode
	default:
		return false
	}
	p.opts.Metrics.AnonymousRejected.WithLabelValues(reason).Inc()
	shown := r.RemoteAddr
	if src.IsValid() {
		shown = src.String()
		if g.shouldWarn(src) {
			local := ""
			if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
				local = a.String()
			}
			g.log.Warn("request without credentials refused: it does not come from the node (the hub forwards credential-less requests with the node's identity, so only for the node's own components); this source is logged once every "+warnEvery.String(),
				slog.String("source", shown), slog.String("listener", local), slog.String("user_agent", shorten(r.UserAgent(), maxEcho)),
				slog.String("method", r.Method), slog.String("path", shorten(r.URL.Path, maxEcho)))
		}
	}
	st := metav1.Status{Code: http.StatusForbidden, Reason: metav1.StatusReasonForbidden, Message: fmt.Sprintf(
		"yurthub: this request has no credentials (no Authorization header, no client certificate) and comes from %s, which is not an address of this node. "+
			"The hub sends credential-less requests to the apiserver as the node itself, so it takes them only from the node (loopback or the host network). "+
			"From a pod, send the pod's service-account token (in-cluster clients send it as Authorization: Bearer), or run the client on the host network",
		shorten(shown, maxEcho))}
	writeStatus(w, r, &st, 0)
	return true
}

func (g *anonymousGuard) shouldWarn(src netip.Addr) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	if last, ok := g.warned[src]; ok && now.Sub(last) < warnEvery {
		return false
	}
	if len(g.warned) >= maxWarned {
		clear(g.warned)
	}
	g.warned[src] = now
	return true
}

// sourceAddr is the connection's source IP (r.RemoteAddr, which net/http sets from
// the accepted connection, never from a header); invalid when it cannot be read.
func sourceAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap().WithZone("")
}
