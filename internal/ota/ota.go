package ota

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/yurthub/yurthub/internal/store"
)

// OpenYurt's names (yurt-manager's daemonpodupdater / image-preheat controllers and
// YurtStaticSet).
const (
	PodNeedUpgrade        corev1.PodConditionType = "PodNeedUpgrade"
	PodImageReady         corev1.PodConditionType = "PodImageReady"
	WaitPullImage                                 = "WaitPullImage"
	VersionPrefix                                 = "controllerrevision: "
	StaticSetConfigPrefix                         = "yurt-static-set-"
	ownerDaemonSet                                = "DaemonSet"
	ownerNode                                     = "Node" // a static pod's mirror is owned by its Node
)

// Options configure the handlers.
type Options struct {
	Store *store.Store // the cache (GET /pods)
	Node  string       // this node's name
	// Cloud returns a core/v1 client to a healthy cloud apiserver, or an error
	// wrapping ErrOffline when none is healthy.
	Cloud func() (*rest.RESTClient, error)
	// ManifestDir is kubelet's static pod directory (default /etc/kubernetes/manifests).
	ManifestDir string
	// BackupDir keeps the manifest a static pod upgrade replaced, as <file>.bak
	// (the daemon passes <root-dir>/ota-backup); "" keeps no copy.
	BackupDir string
	// Timeout bounds each cloud call (default 30s).
	Timeout time.Duration
	Log     *slog.Logger
}

// ErrOffline is what Options.Cloud wraps when no cloud apiserver is healthy.
var ErrOffline = errOffline

// Handler serves /pods and the OTA endpoints.
type Handler struct {
	opts Options
	log  *slog.Logger
}

// Mux is where the handlers go (hubserver.Server).
type Mux interface {
	Handle(pattern string, h http.Handler)
}

// Register adds GET /pods and the two OTA POSTs to mux.
func Register(mux Mux, opts Options) *Handler {
	if opts.ManifestDir == "" {
		opts.ManifestDir = "/etc/kubernetes/manifests"
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{opts: opts, log: opts.Log.With(slog.String("part", "ota"))}
	mux.Handle("GET /pods", http.HandlerFunc(h.podsHandler))
	mux.Handle("POST /openyurt.io/v1/namespaces/{ns}/pods/{pod}/upgrade", http.HandlerFunc(h.upgrade))
	mux.Handle("POST /openyurt.io/v1/namespaces/{ns}/pods/{pod}/imagepull", http.HandlerFunc(h.imagePull))
	return h
}

// refusal is a checked "no" with its HTTP code.
type refusal struct {
	code int
	msg  string
}

func (r *refusal) Error() string { return r.msg }

func refuse(code int, format string, args ...any) error {
	return &refusal{code: code, msg: fmt.Sprintf(format, args...)}
}

func (h *Handler) answer(w http.ResponseWriter, err error) {
	var rf *refusal
	switch {
	case errors.As(err, &rf):
		h.fail(w, rf.code, rf.msg)
	case errors.Is(err, ErrOffline):
		h.reply(w, http.StatusServiceUnavailable, "OTA needs the cloud and "+err.Error()+"; retry when the node is connected", false)
	default:
		h.fail(w, http.StatusInternalServerError, err.Error())
	}
}

// preCheck fetches the pod from the cloud and applies OpenYurt's checks: it
// exists, is not being deleted, runs on this node, and has an update available.
func (h *Handler) preCheck(ctx context.Context, c *rest.RESTClient, ns, name string) (*corev1.Pod, error) {
	var pod corev1.Pod
	err := c.Get().Namespace(ns).Resource("pods").Name(name).Do(ctx).Into(&pod)
	switch {
	case apierrors.IsNotFound(err):
		return nil, refuse(http.StatusForbidden, "pod %s/%s does not exist in the cloud: not updatable", ns, name)
	case err != nil:
		return nil, refuse(http.StatusServiceUnavailable, "get pod %s/%s from the cloud: %v", ns, name, err)
	}
	if pod.DeletionTimestamp != nil {
		return nil, refuse(http.StatusForbidden, "pod %s/%s is being deleted: not updatable", ns, name)
	}
	if pod.Spec.NodeName != h.opts.Node {
		return nil, refuse(http.StatusForbidden, "pod %s/%s runs on node %q, not on this node (%s): not updatable here", ns, name, pod.Spec.NodeName, h.opts.Node)
	}
	cond := condition(&pod, PodNeedUpgrade)
	if cond == nil || cond.Status != corev1.ConditionTrue {
		state := "no PodNeedUpgrade condition"
		if cond != nil {
			state = fmt.Sprintf("PodNeedUpgrade=%s", cond.Status)
		}
		return nil, refuse(http.StatusForbidden, "pod %s/%s has no update available (%s; yurt-manager sets PodNeedUpgrade=True when its DaemonSet or YurtStaticSet has a newer revision and uses the OTA strategy): not updatable", ns, name, state)
	}
	return &pod, nil
}

func condition(p *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

func ownerKind(p *corev1.Pod) string {
	for _, o := range p.OwnerReferences {
		if o.Controller != nil && *o.Controller {
			return o.Kind
		}
	}
	if len(p.OwnerReferences) > 0 {
		return p.OwnerReferences[0].Kind
	}
	return ""
}

func (h *Handler) cloud(ctx context.Context) (*rest.RESTClient, context.Context, context.CancelFunc, error) {
	c, err := h.opts.Cloud()
	if err != nil {
		return nil, nil, nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, h.opts.Timeout)
	return c, cctx, cancel, nil
}

// updatable reaches the cloud and runs preCheck on the pod a request names; when it
// returns false it has answered the request.
func (h *Handler) updatable(w http.ResponseWriter, r *http.Request, ns, name string) (*rest.RESTClient, context.Context, *corev1.Pod, context.CancelFunc, bool) {
	c, ctx, cancel, err := h.cloud(r.Context())
	if err != nil {
		h.answer(w, err)
		return nil, nil, nil, nil, false
	}
	pod, err := h.preCheck(ctx, c, ns, name)
	if err != nil {
		cancel()
		h.answer(w, err)
		return nil, nil, nil, nil, false
	}
	return c, ctx, pod, cancel, true
}

func (h *Handler) upgrade(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("ns"), r.PathValue("pod")
	c, ctx, pod, cancel, ok := h.updatable(w, r, ns, name)
	if !ok {
		return
	}
	defer cancel()
	switch kind := ownerKind(pod); kind {
	case ownerDaemonSet:
		uid := pod.UID
		err := c.Delete().Namespace(ns).Resource("pods").Name(name).
			Body(&metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}}).Do(ctx).Error()
		if err != nil {
			h.answer(w, fmt.Errorf("apply update failed: delete pod %s/%s (uid %s) in the cloud: %w", ns, name, uid, err))
			return
		}
		h.log.Info("OTA upgrade: DaemonSet pod deleted, its controller recreates it at the new revision",
			slog.String("pod", ns+"/"+name), slog.String("uid", string(uid)))
	case ownerNode:
		if err := h.upgradeStatic(ctx, c, pod); err != nil {
			h.answer(w, err)
			return
		}
	case "":
		h.answer(w, refuse(http.StatusBadRequest, "pod %s/%s has no owner: OTA upgrades DaemonSet pods and static pods (owner Node) only", ns, name))
		return
	default:
		h.answer(w, refuse(http.StatusBadRequest, "Not support ota upgrade pod type %s: pod %s/%s is owned by a %s; OTA upgrades DaemonSet pods and static pods (owner Node) only", kind, ns, name, kind))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "Start updating pod %s/%s", ns, name)
}

// manifestKey is what a static pod manifest's file may be called.
var manifestKey = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,252}$`)

func (h *Handler) upgradeStatic(ctx context.Context, c *rest.RESTClient, pod *corev1.Pod) error {
	ns, name := pod.Namespace, pod.Name
	suffix := "-" + h.opts.Node
	if !strings.HasSuffix(name, suffix) || len(name) == len(suffix) {
		return refuse(http.StatusForbidden, "static pod %s/%s: its name is not <name>-%s, so its YurtStaticSet cannot be found", ns, name, h.opts.Node)
	}
	staticName := strings.TrimSuffix(name, suffix)
	cmName := StaticSetConfigPrefix + staticName
	var cm corev1.ConfigMap
	err := c.Get().Namespace(ns).Resource("configmaps").Name(cmName).Do(ctx).Into(&cm)
	if apierrors.IsNotFound(err) {
		return refuse(http.StatusForbidden, "Configmap for static pod does not exist: %s/%s holds no manifest for %s/%s (is it a YurtStaticSet pod?)", ns, cmName, ns, name)
	}
	if err != nil {
		return refuse(http.StatusServiceUnavailable, "static pod pre-check failed: get %s/%s from the cloud: %v", ns, cmName, err)
	}
	if len(cm.Data) != 1 {
		return fmt.Errorf("apply update failed: ConfigMap %s/%s has %d keys, want exactly one (the manifest)", ns, cmName, len(cm.Data))
	}
	var key, data string
	for k, v := range cm.Data {
		key, data = k, v
	}
	if !manifestKey.MatchString(key) || strings.Contains(key, "..") {
		return fmt.Errorf("apply update failed: ConfigMap %s/%s key %q is not a plain file name", ns, cmName, key)
	}
	if strings.TrimSpace(data) == "" {
		return fmt.Errorf("apply update failed: empty manifest in ConfigMap %s/%s", ns, cmName)
	}
	file := key
	if !strings.HasSuffix(file, ".yaml") {
		file += ".yaml"
	}
	target := filepath.Join(h.opts.ManifestDir, file)
	if h.opts.BackupDir != "" {
		if old, err := os.ReadFile(target); err == nil {
			if err := os.MkdirAll(h.opts.BackupDir, 0o700); err != nil {
				return fmt.Errorf("apply update failed: %w", err)
			}
			if err := writeAtomic(filepath.Join(h.opts.BackupDir, file+".bak"), old); err != nil {
				return fmt.Errorf("apply update failed: back up %s: %w", target, err)
			}
		}
	}
	if err := writeAtomic(target, []byte(data)); err != nil {
		return fmt.Errorf("apply update failed: write %s: %w", target, err)
	}
	h.log.Info("OTA upgrade: static pod manifest replaced, kubelet restarts the pod from it",
		slog.String("pod", ns+"/"+name), slog.String("manifest", target), slog.String("configmap", ns+"/"+cmName))
	return nil
}

// writeAtomic writes data to path through a hidden temporary file in the same
// directory (kubelet skips dot files), fsync'd, renamed, the directory fsync'd.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after the rename: a no-op
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (h *Handler) imagePull(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("ns"), r.PathValue("pod")
	c, ctx, pod, cancel, ok := h.updatable(w, r, ns, name)
	if !ok {
		return
	}
	defer cancel()
	if kind := ownerKind(pod); kind != ownerDaemonSet {
		h.answer(w, refuse(http.StatusBadRequest, "pod %s/%s is owned by %q: images are pre-pulled for DaemonSet pods only", ns, name, kind))
		return
	}
	revision := strings.TrimPrefix(condition(pod, PodNeedUpgrade).Message, VersionPrefix)
	if cur := condition(pod, PodImageReady); cur != nil && strings.TrimPrefix(cur.Message, VersionPrefix) == revision {
		if cur.Status == corev1.ConditionTrue {
			w.WriteHeader(http.StatusOK)
			fmt.Fprintf(w, "Images of pod %s/%s are already pulled for revision %s", ns, name, revision)
			return
		}
		if cur.Reason == WaitPullImage {
			w.WriteHeader(http.StatusOK)
			fmt.Fprintf(w, "Image pull of pod %s/%s is already requested for revision %s", ns, name, revision)
			return
		}
	}
	cond := corev1.PodCondition{Type: PodImageReady, Status: corev1.ConditionFalse, Reason: WaitPullImage,
		Message: VersionPrefix + revision, LastTransitionTime: metav1.Now()}
	if cur := condition(pod, PodImageReady); cur != nil {
		*cur = cond
	} else {
		pod.Status.Conditions = append(pod.Status.Conditions, cond)
	}
	// An update of the status with the pod's resourceVersion: a concurrent change
	// is a 409 the caller may retry, never a lost update.
	if err := c.Put().Namespace(ns).Resource("pods").Name(name).SubResource("status").Body(pod).Do(ctx).Error(); err != nil {
		if apierrors.IsConflict(err) {
			h.answer(w, refuse(http.StatusConflict, "pod %s/%s changed while its image pull was being requested; retry: %v", ns, name, err))
			return
		}
		h.answer(w, fmt.Errorf("image pull request failed: update the status of pod %s/%s in the cloud: %w", ns, name, err))
		return
	}
	h.log.Info("OTA image pull requested", slog.String("pod", ns+"/"+name), slog.String("revision", revision))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "Start pulling images of pod %s/%s", ns, name)
}
