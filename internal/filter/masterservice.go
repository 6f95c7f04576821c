package filter

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// masterService is filter "masterservice".
//
//   - Components: kubelet.
//   - Resources and verbs: services; list, watch.
//   - Rewrite: Service default/kubernetes gets the hub's address as its ClusterIP
//     (and ClusterIPs) and the hub's TLS proxy port as the port named "https".
//     kubelet builds the KUBERNETES_SERVICE_HOST/PORT environment of every pod
//     from this Service, so pods that use in-cluster config talk to the hub, which
//     keeps serving them from its cache while the cloud is away.
//   - Every other Service is left as it is.
type masterService struct{ env *Env }

const (
	kubeServiceNamespace = "default"
	kubeServiceName      = "kubernetes"
	kubeServicePortName  = "https"
)

func (f *masterService) Name() string { return MasterService }

func (f *masterService) Apply(obj runtime.Object) (Outcome, error) {
	svc, ok := obj.(*corev1.Service)
	if !ok || svc.Namespace != kubeServiceNamespace || svc.Name != kubeServiceName || f.env.HubHost == "" {
		return Unchanged, nil
	}
	changed := false
	if svc.Spec.ClusterIP != f.env.HubHost {
		svc.Spec.ClusterIP = f.env.HubHost
		changed = true
	}
	if len(svc.Spec.ClusterIPs) != 1 || svc.Spec.ClusterIPs[0] != f.env.HubHost {
		svc.Spec.ClusterIPs = []string{f.env.HubHost}
		changed = true
	}
	for i := range svc.Spec.Ports {
		if p := &svc.Spec.Ports[i]; p.Name == kubeServicePortName && p.Port != f.env.HubPort {
			p.Port = f.env.HubPort
			changed = true
		}
	}
	if !changed {
		return Unchanged, nil
	}
	return Rewritten, nil
}
