package filter

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// nodePortIsolation is filter "nodeportisolation".
//
//   - Components: kube-proxy.
//   - Resources and verbs: services; list, watch.
//   - Drops: a NodePort or LoadBalancer Service annotated
//     nodeport.openyurt.io/listen that does not list this node's pool. The value
//     is a comma-separated list of pool names: "pool" listens there, "-pool"
//     does not, "*" listens in every pool not excluded; an explicit name wins
//     over "*", the first mention of a name wins over a later one, and an empty
//     list listens nowhere. kube-proxy then opens the node port only in the
//     pools the Service is meant for.
//   - A node in no pool (no --nodepool-name, no apps.openyurt.io/nodepool label
//     known) keeps every Service, as in plain Kubernetes; so does a Service
//     without the annotation or of another type.
type nodePortIsolation struct{ env *Env }

const nodePortListenAnnotation = "nodeport.openyurt.io/listen"

func (f *nodePortIsolation) Name() string { return NodePortIsolation }

func (f *nodePortIsolation) Apply(obj runtime.Object) (Outcome, error) {
	svc, ok := obj.(*corev1.Service)
	if !ok || svc.Spec.Type != corev1.ServiceTypeNodePort && svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return Unchanged, nil
	}
	listen, ok := svc.Annotations[nodePortListenAnnotation]
	if !ok {
		return Unchanged, nil
	}
	pool := ""
	if f.env.Pool != nil {
		pool = f.env.Pool.PoolName()
	}
	if pool == "" {
		return Unchanged, nil
	}
	if listensIn(listen, pool) {
		return Unchanged, nil
	}
	return Dropped, nil
}

// listensIn reads a nodeport.openyurt.io/listen value for pool.
func listensIn(value, pool string) bool {
	seen := map[string]bool{}
	var include, exclude, wildcard bool
	for _, n := range strings.Split(value, ",") {
		n = strings.TrimSpace(n)
		bare := strings.TrimPrefix(n, "-")
		if bare == "" || seen[bare] {
			continue
		}
		seen[bare] = true
		switch n {
		case pool:
			include = true
		case "-" + pool:
			exclude = true
		case "*":
			wildcard = true
		}
	}
	switch {
	case include:
		return true
	case exclude:
		return false
	default:
		return wildcard
	}
}
