package daemon

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/yurthub/yurthub/internal/config"
	"github.com/yurthub/yurthub/internal/ota"
	"github.com/yurthub/yurthub/internal/testkube"
)

func otaPost(t *testing.T, cfg *config.Config, ns, pod, op string) (int, string) {
	t.Helper()
	u := fmt.Sprintf("http://127.0.0.1:%d/openyurt.io/v1/namespaces/%s/pods/%s/%s", cfg.ServePort, ns, pod, op)
	resp, err := http.Post(u, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	t.Logf("POST %s -> %d %s", strings.TrimPrefix(u, fmt.Sprintf("http://127.0.0.1:%d", cfg.ServePort)), resp.StatusCode, strings.TrimSpace(string(b)))
	return resp.StatusCode, string(b)
}

// bindPod does the scheduler's part (the harness runs no kube-scheduler).
func bindPod(t *testing.T, cs kubernetes.Interface, p *corev1.Pod, node string) {
	t.Helper()
	err := cs.CoreV1().Pods(p.Namespace).Bind(context.Background(), &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: node}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("bind %s: %v", p.Name, err)
	}
}

func setNeedUpgrade(t *testing.T, cs kubernetes.Interface, ns, name, revision string) {
	t.Helper()
	ctx := context.Background()
	p, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: ota.PodNeedUpgrade, Status: corev1.ConditionTrue,
		Message: ota.VersionPrefix + revision, LastTransitionTime: metav1.Now()})
	if _, err := cs.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestOTAUpgrade: a DaemonSet with OpenYurt's OTA strategy (OnDelete) whose pod on
// this node is outdated: imagepull marks it for yurt-manager's pre-pull, upgrade
// deletes it and the DaemonSet controller recreates it at the new revision;
// refusals (not upgradable, another node's pod, unsupported owner, unknown pod,
// offline) answer with their codes and say why.
func TestOTAUpgrade(t *testing.T) {
	const node = "edge-1"
	c := testkube.Start(t, testkube.Options{Nodes: []string{node}, ControllerManager: true})
	c.GrantNodeReadAll(t, node)
	ctx := context.Background()
	adm := kubernetes.NewForConfigOrDie(c.AdminConfig())
	if _, err := adm.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "ota"}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "ota-ds", Namespace: "default", Annotations: map[string]string{"apps.openyurt.io/update-strategy": "OTA"}},
		Spec: appsv1.DaemonSetSpec{
			Selector:       &metav1.LabelSelector{MatchLabels: labels},
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
					Containers: []corev1.Container{{Name: "c", Image: "busybox:1.36"}}}},
		},
	}
	if _, err := adm.AppsV1().DaemonSets("default").Create(ctx, ds, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dsPod := func(notUID string) *corev1.Pod {
		var found *corev1.Pod
		waitUntilTrue(t, 60*time.Second, "the DaemonSet's pod for "+node, func() bool {
			l, err := adm.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=ota"})
			if err != nil {
				return false
			}
			for i := range l.Items {
				p := &l.Items[i]
				if p.UID != types.UID(notUID) && p.DeletionTimestamp == nil {
					found = p
					return true
				}
			}
			return false
		})
		if found.Spec.NodeName == "" {
			bindPod(t, adm, found, node)
		}
		return found
	}
	old := dsPod("")
	t.Logf("DaemonSet pod %s (uid %s, image %s) bound to %s", old.Name, old.UID, old.Spec.Containers[0].Image, node)

	// Other pods for the refusals.
	for _, p := range []*corev1.Pod{nodePod("edge-2", "elsewhere"), nodePod(node, "ownerless")} {
		if _, err := adm.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		setNeedUpgrade(t, adm, "default", p.Name, "whatever")
	}

	cfg := kubeletHubConfig(t, c, node, t.TempDir())
	logs, stop := runHub(t, cfg)
	defer stop()

	expect := func(op, pod string, code int, says string) {
		t.Helper()
		got, body := otaPost(t, cfg, "default", pod, op)
		if got != code || !strings.Contains(body, says) {
			t.Fatalf("%s %s: %d %q, want %d saying %q", op, pod, got, body, code, says)
		}
	}
	expect("upgrade", old.Name, http.StatusForbidden, "no update available")
	expect("upgrade", "elsewhere", http.StatusForbidden, `runs on node "edge-2"`)
	expect("upgrade", "ownerless", http.StatusBadRequest, "has no owner")
	expect("imagepull", "ownerless", http.StatusBadRequest, "DaemonSet pods only")
	expect("upgrade", "no-such-pod", http.StatusForbidden, "does not exist in the cloud")

	// A new revision: the template changes; with OnDelete the pod stays outdated
	// until yurt-manager marks it and the node's owner asks for the upgrade.
	cur, err := adm.AppsV1().DaemonSets("default").Get(ctx, "ota-ds", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Spec.Template.Spec.Containers[0].Image = "busybox:1.37"
	if _, err := adm.AppsV1().DaemonSets("default").Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	setNeedUpgrade(t, adm, "default", old.Name, "rev2")

	expect("imagepull", old.Name, http.StatusOK, "Start pulling images")
	p, err := adm.CoreV1().Pods("default").Get(ctx, old.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ready *corev1.PodCondition
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == ota.PodImageReady {
			ready = &p.Status.Conditions[i]
		}
	}
	if ready == nil || ready.Status != corev1.ConditionFalse || ready.Reason != ota.WaitPullImage || ready.Message != "controllerrevision: rev2" {
		t.Fatalf("PodImageReady after imagepull: %+v", ready)
	}
	t.Logf("PodImageReady in the cloud: status=%s reason=%s message=%q", ready.Status, ready.Reason, ready.Message)
	expect("imagepull", old.Name, http.StatusOK, "already requested")

	// Offline: 503 with the reason.
	c.APIServer().Stop(t)
	waitUntilTrue(t, 10*time.Second, "the hub to notice the cloud is gone", func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", cfg.ServePort))
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return strings.Contains(string(b), `node_yurthub_server_healthy_status{server="`+c.URL()+`"} 0`)
	})
	expect("upgrade", old.Name, http.StatusServiceUnavailable, "unreachable")
	expect("imagepull", old.Name, http.StatusServiceUnavailable, "unreachable")
	c.APIServer().Start(t)
	waitUntilTrue(t, 20*time.Second, "the hub to see the cloud again", func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", cfg.ServePort))
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return strings.Contains(string(b), `node_yurthub_server_healthy_status{server="`+c.URL()+`"} 1`)
	})

	expect("upgrade", old.Name, http.StatusOK, "Start updating pod default/"+old.Name)
	var deleting *corev1.Pod
	waitUntilTrue(t, 10*time.Second, "the outdated pod deleted", func() bool {
		p, err := adm.CoreV1().Pods("default").Get(ctx, old.Name, metav1.GetOptions{})
		deleting = p
		return apierrors.IsNotFound(err) || (err == nil && p.DeletionTimestamp != nil)
	})
	if deleting != nil && deleting.DeletionTimestamp != nil {
		// A graceful deletion, as OpenYurt's: kubelet stops the containers and then
		// removes the pod. This test runs no kubelet (TestKubeletNodeLifecycle runs a
		// real one), so it does kubelet's final step itself.
		t.Logf("pod %s is terminating (deletionTimestamp %s, grace %ds): finishing it as kubelet would", old.Name, deleting.DeletionTimestamp, *deleting.DeletionGracePeriodSeconds)
		zero := int64(0)
		uid := deleting.UID
		if err := adm.CoreV1().Pods("default").Delete(ctx, old.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &uid}}); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
	}
	neu := dsPod(string(old.UID))
	if neu.Spec.Containers[0].Image != "busybox:1.37" {
		t.Fatalf("recreated pod runs %s, want the new revision's busybox:1.37", neu.Spec.Containers[0].Image)
	}
	t.Logf("recreated by the DaemonSet controller: %s (uid %s, image %s)", neu.Name, neu.UID, neu.Spec.Containers[0].Image)
	t.Logf("hub log (ota):\n%s", grepLines(logs.String(), "part=ota"))
}
