package filter

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// discardCloudService is filter "discardcloudservice".
//
//   - Components: kube-proxy. Not in cloud working mode.
//   - Resources and verbs: services; list, watch.
//   - Drops: LoadBalancer Services annotated svc.openyurt.io/discard=true (a
//     cloud load balancer that edge nodes cannot serve, e.g. Raven's gateway
//     proxy services), and Service kube-system/x-tunnel-server-internal-svc
//     (the tunnel server's in-cloud address). kube-proxy programs no rules for
//     them on this node.
type discardCloudService struct{}

const discardServiceAnnotation = "svc.openyurt.io/discard"

// cloudOnlyServices are dropped whatever their type.
var cloudOnlyServices = map[string]bool{"kube-system/x-tunnel-server-internal-svc": true}

func (discardCloudService) Name() string { return DiscardCloudService }

func (discardCloudService) Apply(obj runtime.Object) (Outcome, error) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return Unchanged, nil
	}
	if svc.Spec.Type == corev1.ServiceTypeLoadBalancer && svc.Annotations[discardServiceAnnotation] == "true" {
		return Dropped, nil
	}
	if cloudOnlyServices[svc.Namespace+"/"+svc.Name] {
		return Dropped, nil
	}
	return Unchanged, nil
}
