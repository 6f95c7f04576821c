package filter

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// inClusterConfig is filter "inclusterconfig".
//
//   - Components: kubelet.
//   - Resources and verbs: configmaps; get, list, watch.
//   - Rewrite: in ConfigMap kube-system/kube-proxy, key config.conf, a line
//     "kubeconfig: <path>" (top level or indented, as kubeadm writes it under
//     clientConnection) is commented out ("#kubeconfig: <path>"). kube-proxy then
//     falls back to in-cluster config, i.e. to the Service default/kubernetes
//     that masterservice points at the hub. kubelet reads the ConfigMap to mount
//     it into the kube-proxy pod, hence the component.
//   - A line whose value contains a colon (a Windows path "C:\...") is not a
//     two-part "key: value" line and is left as it is, as in OpenYurt.
type inClusterConfig struct{}

const (
	kubeProxyConfigMapNamespace = "kube-system"
	kubeProxyConfigMapName      = "kube-proxy"
	kubeProxyConfigKey          = "config.conf"
)

func (inClusterConfig) Name() string { return InClusterConfig }

func (inClusterConfig) Apply(obj runtime.Object) (Outcome, error) {
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok || cm.Namespace != kubeProxyConfigMapNamespace || cm.Name != kubeProxyConfigMapName {
		return Unchanged, nil
	}
	conf := cm.Data[kubeProxyConfigKey]
	if conf == "" {
		return Unchanged, nil
	}
	lines := strings.Split(conf, "\n")
	changed := false
	for i, l := range lines {
		parts := strings.Split(strings.Trim(l, " "), ":")
		if len(parts) == 2 && parts[0] == "kubeconfig" {
			lines[i] = strings.Replace(l, "kubeconfig", "#kubeconfig", 1)
			changed = true
		}
	}
	if !changed {
		return Unchanged, nil
	}
	cm.Data[kubeProxyConfigKey] = strings.Join(lines, "\n")
	return Rewritten, nil
}
