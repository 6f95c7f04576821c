package daemon

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/yurthub/yurthub/internal/config"
	"github.com/yurthub/yurthub/internal/testkube"
)

// TestKubeletNodeLifecycle runs a real kubelet (kubemark's hollow node: the kubelet's
// own code over a fake runtime) whose only API server is the hub, through the life of
// an edge node: online, the cloud cut, the hub restarted offline, the kubelet restarted
// offline with an empty runtime (a reboot), and the cloud back. Each step waits for
// what the kubelet itself reports (its log, the status it writes, the files its volume
// plugins write) and, on failure, names the step and quotes the kubelet's log.
func TestKubeletNodeLifecycle(t *testing.T) {
	const node = "edge-kubelet-1"
	c := testkube.Start(t, testkube.Options{Nodes: []string{node}, ControllerManager: true})
	admin := kubernetes.NewForConfigOrDie(c.AdminConfig())
	ctx := context.Background()

	cfg := kubeletHubConfig(t, c, node, t.TempDir())
	_, stopHub := startDaemon(t, cfg)
	hubURL := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.ProxyPort))
	waitHubReady(t, cfg)
	k := c.StartKubelet(t, testkube.KubeletOptions{Node: node, Server: hubURL})
	lc := &lifecycle{t: t, k: k, admin: admin, node: node}

	// --- online: the node registers and is Ready; the pod runs with its volumes.
	lc.step = "online"
	lc.waitNodeReady(90 * time.Second)
	_, err := admin.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "app-config"},
		Data: map[string]string{"greeting": "hello from the cloud"}}, metav1.CreateOptions{})
	lc.must(err)
	_, err = admin.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "app-secret"},
		StringData: map[string]string{"password": "s3cr3t"}}, metav1.CreateOptions{})
	lc.must(err)
	pod, err := admin.CoreV1().Pods("default").Create(ctx, lifecyclePod(node), metav1.CreateOptions{})
	lc.must(err)
	lc.waitPodRunning(pod, 60*time.Second, admin)
	onlineToken := lc.checkVolumes(pod)
	// A node up for more than a moment: kubelet renews its own Lease (its first try
	// is skipped while its Node does not exist yet, so this takes up to 10 s).
	lc.waitRequest(time.Time{}, "PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/"+node, 200, 30*time.Second)
	started := lc.kubeletStatus(pod, admin).ContainerStatuses[0]
	t.Logf("online: pod %s (uid %s) running, container %s started %s", pod.Name, pod.UID, started.ContainerID, startedAt(started))
	time.Sleep(3 * time.Second) // let the cache manager commit what it teed

	// --- outage: the running kubelet keeps its pod; its status writes are accepted.
	lc.step = "outage"
	c.APIServer().Stop(t)
	cut := time.Now()
	lc.waitRequest(cut, "PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/"+node, 200, 40*time.Second)
	lc.noKill()

	// --- the hub restarts offline: the same.
	lc.step = "hub restarted offline"
	stopHub()
	_, stopHub = startDaemon(t, cfg)
	waitHubReady(t, cfg)
	restarted := time.Now()
	lc.waitRequest(restarted, "PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/"+node, 200, 40*time.Second)
	lc.noKill()

	// --- the node reboots offline: the kubelet dies, the hub restarts, and the kubelet
	// starts again with an empty runtime and an empty root directory.
	lc.step = "kubelet restarted offline"
	k.Kill(t)
	stopHub()
	_, stopHub = startDaemon(t, cfg)
	waitHubReady(t, cfg)
	rebooted := time.Now()
	k.Start(t)
	hubKubelet := kubernetes.NewForConfigOrDie(kubeletRESTConfig(c, hubURL))
	lc.waitOfflinePodRunning(pod, hubKubelet, rebooted, 30*time.Second)
	t.Logf("kubelet restarted offline: pod running again %.1fs after the restart", time.Since(rebooted).Seconds())
	if tok := lc.checkVolumes(pod); tok != onlineToken {
		// The hub hands back the token the cloud issued for the same request (kubelet
		// asks with no audiences), not a placeholder, while that token is valid.
		lc.failf("the token mounted after the reboot is not the one the cloud issued online (%d vs %d bytes)", len(tok), len(onlineToken))
	}
	lc.waitRequest(rebooted, "PATCH", "/api/v1/namespaces/default/pods/"+pod.Name+"/status", 200, 10*time.Second)
	lc.waitRequest(rebooted, "PATCH", "/api/v1/nodes/"+node+"/status", 200, 10*time.Second)
	lc.quote("pod ADD from the hub", "SyncLoop ADD", pod.Name)
	lc.quote("ConfigMap volume mounted", "MountVolume.SetUp succeeded", `volume \"config\"`)
	lc.quote("Secret volume mounted", "MountVolume.SetUp succeeded", `volume \"secret\"`)
	lc.quote("token volume mounted", "MountVolume.SetUp succeeded", `volume \"kube-api-access-`)
	lc.quote("container started", "ContainerStarted", pod.Name)
	lc.noKill()
	lc.logRequests(rebooted)
	offline := lc.cachedStatus(pod, hubKubelet).ContainerStatuses[0]

	// --- the cloud returns: the node is Ready again, the pod keeps its UID, and what
	// kubelet wrote offline reaches the cloud.
	lc.step = "cloud back"
	c.APIServer().Start(t)
	back := time.Now()
	lc.waitNodeReadySince(back, 30*time.Second)
	t.Logf("cloud back: node Ready again after %.1fs", time.Since(back).Seconds())
	got, err := admin.CoreV1().Pods("default").Get(ctx, pod.Name, metav1.GetOptions{})
	lc.must(err)
	if got.UID != pod.UID {
		lc.failf("the pod was recreated: uid %s, was %s", got.UID, pod.UID)
	}
	lc.waitCloudStatus(pod, admin, offline, 60*time.Second)
	t.Logf("cloud back: the cloud's pod status shows the container kubelet started offline (started %s), %.1fs after the return", startedAt(offline), time.Since(back).Seconds())
	stopHub()
}

// lifecyclePod is a pod bound to node with the default service account's
// kube-api-access volume (added by admission), a ConfigMap volume and a Secret volume.
func lifecyclePod(node string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p1", Namespace: "default"},
		Spec: corev1.PodSpec{
			NodeName: node,
			Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10", VolumeMounts: []corev1.VolumeMount{
				{Name: "config", MountPath: "/etc/app"}, {Name: "secret", MountPath: "/etc/secret"},
			}}},
			Volumes: []corev1.Volume{
				{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "app-config"}}}},
				{Name: "secret", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "app-secret"}}},
			},
		},
	}
}

// kubeletHubConfig is a hub for node in front of c with --bootstrap-mode=kubeletcertificate
// (a node client certificate from the cluster CA) and a short heartbeat, under root.
func kubeletHubConfig(t *testing.T, c *testkube.Cluster, node, root string) *config.Config {
	t.Helper()
	certPEM, keyPEM := c.IssueNodeClientCert(node)
	clientFile := filepath.Join(root, "kubelet-client-current.pem")
	if err := os.WriteFile(clientFile, append(certPEM, keyPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(c.URL())
	cfg := config.Default()
	cfg.ServerAddrs, cfg.NodeName = []*url.URL{u}, node
	cfg.ServePort, cfg.ProxyPort, cfg.ProxySecurePort = freeLoopbackPort(t), freeLoopbackPort(t), freeLoopbackPort(t)
	cfg.RootDir, cfg.DiskCachePath = filepath.Join(root, "hub"), filepath.Join(root, "no-openyurt-cache")
	cfg.EnableDummyIf, cfg.EnableIPTables = false, false
	cfg.HeartbeatInterval = 2 * time.Second
	cfg.BootstrapMode, cfg.KubeletCAFile, cfg.KubeletClientCertificate = config.BootstrapModeKubeletCertificate, c.CAFile(), clientFile
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	return cfg
}

func waitHubReady(t *testing.T, cfg *config.Config) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if code, _ := get(t, fmt.Sprintf("http://127.0.0.1:%d/v1/readyz", cfg.ServePort)); code == 200 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("hub not ready in 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kubeletRESTConfig reads through the hub as kubelet does (its User-Agent, protobuf):
// offline, what the hub answers kubelet is what kubelet wrote.
func kubeletRESTConfig(c *testkube.Cluster, hubURL string) *rest.Config {
	rc := &rest.Config{Host: hubURL, UserAgent: c.KubeletUserAgent(), QPS: -1}
	rc.ContentType, rc.AcceptContentTypes = runtime.ContentTypeProtobuf, runtime.ContentTypeProtobuf+","+runtime.ContentTypeJSON
	return rc
}

type lifecycle struct {
	t     *testing.T
	k     *testkube.Kubelet
	admin kubernetes.Interface
	node  string
	step  string
}

// failf fails the test naming the step, with the kubelet's recent log lines that
// carry an error, and the tail of its request log.
func (lc *lifecycle) failf(format string, args ...any) {
	lc.t.Helper()
	var errs []string
	for _, l := range lc.k.LogLines() {
		if strings.HasPrefix(l, "E") || strings.Contains(l, "rror") || strings.Contains(l, "ailed") {
			errs = append(errs, l)
		}
	}
	if len(errs) > 15 {
		errs = errs[len(errs)-15:]
	}
	reqs, _ := os.ReadFile(lc.k.RequestLogPath())
	rl := strings.Split(strings.TrimSpace(string(reqs)), "\n")
	if len(rl) > 25 {
		rl = rl[len(rl)-25:]
	}
	lc.t.Fatalf("step %q: %s\nkubelet's last error lines:\n%s\nkubelet's last requests (through the hub):\n%s",
		lc.step, fmt.Sprintf(format, args...), strings.Join(errs, "\n"), strings.Join(rl, "\n"))
}

func (lc *lifecycle) must(err error) {
	lc.t.Helper()
	if err != nil {
		lc.failf("%v", err)
	}
}

func (lc *lifecycle) wait(timeout time.Duration, what string, cond func() (bool, string)) {
	lc.t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if err := lc.k.ExitErr(); err != nil {
			lc.failf("the kubelet exited while waiting for %s: %v", what, err)
		}
		if time.Now().After(deadline) {
			lc.failf("%s: not within %s (last seen: %s)", what, timeout, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func nodeReady(n *corev1.Node) (*corev1.NodeCondition, bool) {
	for i := range n.Status.Conditions {
		if c := &n.Status.Conditions[i]; c.Type == corev1.NodeReady {
			return c, c.Status == corev1.ConditionTrue
		}
	}
	return nil, false
}

func (lc *lifecycle) waitNodeReady(timeout time.Duration) {
	lc.t.Helper()
	lc.waitNodeReadySince(time.Time{}, timeout)
}

// waitNodeReadySince waits until the cloud has the node Ready and its Lease renewed
// after since (what the node lifecycle controller judges a node by: kubelet patches
// its status only on a change or every 5 minutes).
func (lc *lifecycle) waitNodeReadySince(since time.Time, timeout time.Duration) {
	lc.t.Helper()
	lc.wait(timeout, "node "+lc.node+" Ready in the cloud with its Lease renewed", func() (bool, string) {
		ctx := context.Background()
		n, err := lc.admin.CoreV1().Nodes().Get(ctx, lc.node, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		c, ready := nodeReady(n)
		if c == nil {
			return false, "no Ready condition"
		}
		state := fmt.Sprintf("Ready=%s since %s (%s)", c.Status, c.LastTransitionTime.UTC().Format(time.RFC3339), c.Message)
		l, err := lc.admin.CoordinationV1().Leases("kube-node-lease").Get(ctx, lc.node, metav1.GetOptions{})
		if err != nil || l.Spec.RenewTime == nil {
			return false, state + fmt.Sprintf("; lease: %v", err)
		}
		state += "; lease renewed " + l.Spec.RenewTime.UTC().Format(time.RFC3339Nano)
		return ready && !l.Spec.RenewTime.Time.Before(since), state
	})
}

func running(p *corev1.Pod) (corev1.ContainerStatus, bool) {
	if p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) == 0 {
		return corev1.ContainerStatus{}, false
	}
	cs := p.Status.ContainerStatuses[0]
	return cs, cs.State.Running != nil && cs.Ready
}

func (lc *lifecycle) waitPodRunning(pod *corev1.Pod, timeout time.Duration, cs kubernetes.Interface) {
	lc.t.Helper()
	lc.wait(timeout, "pod "+pod.Name+" Running in the cloud", func() (bool, string) {
		p, err := cs.CoreV1().Pods(pod.Namespace).Get(context.Background(), pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		_, ok := running(p)
		return ok, fmt.Sprintf("phase %s, %+v", p.Status.Phase, p.Status.ContainerStatuses)
	})
}

func (lc *lifecycle) kubeletStatus(pod *corev1.Pod, cs kubernetes.Interface) corev1.PodStatus {
	lc.t.Helper()
	p, err := cs.CoreV1().Pods(pod.Namespace).Get(context.Background(), pod.Name, metav1.GetOptions{})
	lc.must(err)
	return p.Status
}

func (lc *lifecycle) cachedStatus(pod *corev1.Pod, hub kubernetes.Interface) corev1.PodStatus {
	lc.t.Helper()
	return lc.kubeletStatus(pod, hub)
}

// startedAt is when the running container started ("" when not running).
func startedAt(cs corev1.ContainerStatus) string {
	if cs.State.Running == nil {
		return ""
	}
	return cs.State.Running.StartedAt.UTC().Format(time.RFC3339)
}

// waitOfflinePodRunning waits until the status kubelet wrote through the hub shows the
// pod's container running and started after since (the fake runtime names containers
// by pod and attempt, so a container started again after a reboot has the same ID: its
// start time tells it apart).
func (lc *lifecycle) waitOfflinePodRunning(pod *corev1.Pod, hub kubernetes.Interface, since time.Time, timeout time.Duration) {
	lc.t.Helper()
	lc.wait(timeout, "pod "+pod.Name+" running again in a container started after "+since.UTC().Format(time.RFC3339)+" (the status kubelet writes offline)", func() (bool, string) {
		p, err := hub.CoreV1().Pods(pod.Namespace).Get(context.Background(), pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		cs, ok := running(p)
		return ok && !cs.State.Running.StartedAt.Time.Before(since.Truncate(time.Second)), fmt.Sprintf("phase %s, container %s started %s", p.Status.Phase, cs.ContainerID, startedAt(cs))
	})
}

// waitCloudStatus waits until the cloud has the container kubelet started offline.
func (lc *lifecycle) waitCloudStatus(pod *corev1.Pod, cs kubernetes.Interface, offline corev1.ContainerStatus, timeout time.Duration) {
	lc.t.Helper()
	lc.wait(timeout, "the cloud's pod status showing the container started offline (started "+startedAt(offline)+")", func() (bool, string) {
		p, err := cs.CoreV1().Pods(pod.Namespace).Get(context.Background(), pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		st, ok := running(p)
		return ok && startedAt(st) == startedAt(offline), fmt.Sprintf("phase %s, container %s started %s", p.Status.Phase, st.ContainerID, startedAt(st))
	})
}

// checkVolumes reads what the kubelet's volume plugins wrote for the pod in the
// current run's root directory: the ConfigMap and Secret data and a service-account
// token with the cluster CA beside it. It returns the token.
func (lc *lifecycle) checkVolumes(pod *corev1.Pod) string {
	lc.t.Helper()
	root := lc.k.RootDir()
	if root == "" {
		lc.failf("the kubelet did not log its root directory")
	}
	vols := filepath.Join(root, "pods", string(pod.UID), "volumes")
	read := func(pattern string) string {
		m, _ := filepath.Glob(filepath.Join(vols, pattern))
		if len(m) != 1 {
			lc.failf("volume file %s: %d matches under %s", pattern, len(m), vols)
		}
		b, err := os.ReadFile(m[0])
		lc.must(err)
		return string(b)
	}
	if got := read("kubernetes.io~configmap/config/greeting"); got != "hello from the cloud" {
		lc.failf("ConfigMap volume: %q", got)
	}
	if got := read("kubernetes.io~secret/secret/password"); got != "s3cr3t" {
		lc.failf("Secret volume: %q", got)
	}
	tok := read("kubernetes.io~projected/kube-api-access-*/token")
	if strings.Count(tok, ".") != 2 {
		lc.failf("service-account token: %q", tok)
	}
	if ca := read("kubernetes.io~projected/kube-api-access-*/ca.crt"); !strings.Contains(ca, "BEGIN CERTIFICATE") {
		lc.failf("kube-root-ca.crt in the token volume: %q", ca)
	}
	return tok
}

// waitRequest waits until the kubelet has sent method path (prefix) after since and
// got code.
func (lc *lifecycle) waitRequest(since time.Time, method, path string, code int, timeout time.Duration) {
	lc.t.Helper()
	lc.wait(timeout, fmt.Sprintf("kubelet's %s %s answered %d", method, path, code), func() (bool, string) {
		b, _ := os.ReadFile(lc.k.RequestLogPath())
		last := ""
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) < 4 || f[1] != method || !strings.HasPrefix(f[2], path) {
				continue
			}
			at, err := time.Parse("15:04:05.000", f[0])
			if err != nil {
				continue
			}
			y, m, d := since.UTC().Date()
			at = at.AddDate(y, int(m)-1, d-1)
			last = l
			if !at.Before(since.UTC().Truncate(time.Millisecond)) && f[3] == strconv.Itoa(code) {
				return true, l
			}
		}
		return false, last
	})
}

// noKill fails if the kubelet killed a container in the current run.
func (lc *lifecycle) noKill() {
	lc.t.Helper()
	for _, s := range []string{"Killing container", "ContainerDied"} {
		if l := lc.k.LogLines(s); len(l) > 0 {
			lc.failf("the kubelet killed a container: %s", l[0])
		}
	}
}

// logRequests logs what the kubelet asked the hub since since, one line per distinct
// method, path and answer, with a count.
func (lc *lifecycle) logRequests(since time.Time) {
	lc.t.Helper()
	b, _ := os.ReadFile(lc.k.RequestLogPath())
	type key struct{ method, path, code string }
	count := map[key]int{}
	var order []key
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 4 {
			continue
		}
		at, err := time.Parse("15:04:05.000", f[0])
		if err != nil {
			continue
		}
		y, m, d := since.UTC().Date()
		if at.AddDate(y, int(m)-1, d-1).Before(since.UTC().Truncate(time.Millisecond)) {
			continue
		}
		path, query, _ := strings.Cut(f[2], "?")
		if strings.Contains(query, "watch=true") {
			path += " (watch)"
		}
		k := key{f[1], path, f[3]}
		if count[k] == 0 {
			order = append(order, k)
		}
		count[k]++
	}
	var out []string
	for _, k := range order {
		out = append(out, fmt.Sprintf("  %dx %s %s -> %s", count[k], k.method, k.path, k.code))
	}
	lc.t.Logf("step %q: what the kubelet asked the hub and got:\n%s", lc.step, strings.Join(out, "\n"))
}

// quote logs the first kubelet log line of this run with all of subs (the resolving
// note quotes them), failing when there is none.
func (lc *lifecycle) quote(what string, subs ...string) {
	lc.t.Helper()
	l := lc.k.LogLines(subs...)
	if len(l) == 0 {
		lc.failf("no kubelet log line for %s (%q)", what, subs)
	}
	lc.t.Logf("kubelet log, %s: %s", what, l[0])
}
