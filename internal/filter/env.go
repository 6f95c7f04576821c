package filter

import (
	"errors"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
)

// Env is what the filters know about this node and the hub. Its fields are set
// before the settings are built; Pool and Services are read on every object, so
// their implementations must be safe for concurrent use.
type Env struct {
	// NodeName is this node (servicetopology's kubernetes.io/hostname scope).
	NodeName string
	// HubHost and HubPort are where pods reach the hub's TLS proxy: the dummy
	// interface IP (or the proxy bind address) and --proxy-secure-port
	// (masterservice, forwardkubesvctraffic, serviceenvupdater).
	HubHost string
	HubPort int32
	// PoolTopology enables pool-scoped servicetopology and pool-based
	// nodeportisolation (--enable-pool-service-topology or --enable-node-pool).
	PoolTopology bool
	// Pool tells this node's pool and its members; nil: no pool known.
	Pool Pool
	// Services looks Services up for servicetopology; nil: servicetopology
	// leaves every object as it is.
	Services ServiceGetter
}

// Pool is this node's NodePool membership.
type Pool interface {
	// PoolName is the node's pool ("" when the node is in none, or not known yet).
	PoolName() string
	// PoolNodes returns the nodes of pool; ok=false when the membership is not
	// known (no NodePool CRD, not listed yet).
	PoolNodes(pool string) (nodes []string, ok bool)
}

// ErrNotFound is what a ServiceGetter returns for a Service it does not hold.
var ErrNotFound = errors.New("not found")

// ServiceGetter returns a Service by namespace and name.
type ServiceGetter interface {
	Service(namespace, name string) (*corev1.Service, error)
}

// TopologyNamer is implemented by a ServiceGetter that also knows which Services
// carry openyurt.io/topologyKeys: servicetopology then tells from a slice's bytes
// that it keeps it as it is (Skipper) when none of their names occurs in them.
type TopologyNamer interface {
	// TopologyServiceNames returns the names (without namespace) of the Services
	// carrying the annotation; known is false before the first list.
	TopologyServiceNames() (names []string, known bool)
}

// StaticPool is a Pool with a fixed membership, settable at run time (the
// --nodepool-name flag, tests, and the NodePool watcher's store).
type StaticPool struct {
	v atomic.Pointer[staticPool]
}

type staticPool struct {
	name  string
	nodes map[string][]string
}

// Set replaces the node's pool name and the known pools' members.
func (p *StaticPool) Set(name string, members map[string][]string) {
	p.v.Store(&staticPool{name: name, nodes: members})
}

func (p *StaticPool) PoolName() string {
	if v := p.v.Load(); v != nil {
		return v.name
	}
	return ""
}

func (p *StaticPool) PoolNodes(pool string) ([]string, bool) {
	v := p.v.Load()
	if v == nil || v.nodes == nil {
		return nil, false
	}
	n, ok := v.nodes[pool]
	return n, ok
}
