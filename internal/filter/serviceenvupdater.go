package filter

import (
	"bytes"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// serviceEnvUpdater is filter "serviceenvupdater".
//
//   - Components: kubelet.
//   - Resources and verbs: pods; get, list, watch (and patch in OpenYurt's table:
//     the hub filters read responses only, and kubelet takes a pod's environment
//     from what it reads, not from a patch's answer).
//   - Rewrite: an explicit KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT
//     variable in a container's env (set by a user or a webhook that pins pods to
//     the apiserver's address) gets the hub's address and TLS proxy port, so that
//     such pods too go through the hub. Only existing variables are rewritten;
//     none is added (kubelet adds them from the masterservice-rewritten Service).
//     Init and ephemeral containers are left as they are, as OpenYurt does.
type serviceEnvUpdater struct{ env *Env }

const (
	envServiceHost = "KUBERNETES_SERVICE_HOST"
	envServicePort = "KUBERNETES_SERVICE_PORT"
)

func (f *serviceEnvUpdater) Name() string { return ServiceEnvUpdater }

// envPrefix is what both variables start with: a pod whose bytes do not hold it
// has neither (the apiserver's encoders write ASCII names as they are, in JSON and
// in protobuf), so it is kept as it is without being decoded.
var envPrefix = []byte("KUBERNETES_SERVICE_")

// Skips: the filter never drops a pod, and rewrites only one that names a variable.
func (f *serviceEnvUpdater) Skips(data []byte) bool { return !bytes.Contains(data, envPrefix) }

func (f *serviceEnvUpdater) Apply(obj runtime.Object) (Outcome, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok || f.env.HubHost == "" {
		return Unchanged, nil
	}
	port := strconv.Itoa(int(f.env.HubPort))
	changed := false
	for i := range pod.Spec.Containers {
		env := pod.Spec.Containers[i].Env
		for j := range env {
			var want string
			switch env[j].Name {
			case envServiceHost:
				want = f.env.HubHost
			case envServicePort:
				want = port
			default:
				continue
			}
			if env[j].Value != want || env[j].ValueFrom != nil {
				env[j].Value, env[j].ValueFrom = want, nil
				changed = true
			}
		}
	}
	if !changed {
		return Unchanged, nil
	}
	return Rewritten, nil
}
