package testkube

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A real kubelet for tests: kubemark's hollow node (`kubemark --morph=kubelet`), built by
// testdata/kube/build.sh from k8s.io/kubernetes/cmd/kubemark at the apiserver's version.
// It is the kubelet's own code (kubeletapp.RunKubelet: pod workers, the volume manager
// with the real secret, configMap, projected and emptyDir plugins, the status manager,
// node registration and status, the node Lease, the watch-based Secret/ConfigMap
// managers, CSINode initialisation) over kubemark's in-process fake CRI runtime and a
// fake mounter. So the requests a test sees are the ones a real kubelet sends, while
// "containers" start instantly and nothing is mounted on the host.
//
// What is not a real node's: the container runtime is fake and lives inside the
// process, so every start of the kubelet begins with an empty runtime (no sandboxes, no
// containers), which is exactly what a node reboot does. Each start also gets a new,
// empty kubelet root directory (kubemark makes a fresh temporary one under TMPDIR, which
// the harness points into the test's directory).
//
// The User-Agent: the hollow kubelet hard-codes "hollow-kubelet" as its User-Agent
// (cmd/kubemark/app), which a hub would take for another component. The harness puts a
// small forwarding listener in front of the kubelet's only API server
// (KubeletOptions.Server) that rewrites the header to the real kubelet's
// "kubelet/<version> (linux/amd64) kubernetes/<commit>" and passes everything else
// through as it comes (watch streams are flushed as they arrive). The forwarder also
// writes one line per request (method, URL, status, time to the answer) to kubelet-requests.log
// beside the kubelet's log, so a test can quote what the kubelet asked and what it got.

// KubeletOptions configure a hollow kubelet.
type KubeletOptions struct {
	// Node is the node name the kubelet registers (required).
	Node string
	// Server is the only API server the kubelet talks to, e.g. a hub's plain proxy port
	// "http://127.0.0.1:10261" (required). The kubelet's kubeconfig carries no
	// credentials: the hub's plain port forwards with the hub's own node identity.
	Server string
	// UserAgent replaces the hollow kubelet's "hollow-kubelet". Default:
	// KubeletUserAgent().
	UserAgent string
	// Verbosity is the kubelet's --v (default 4: pod ADD/UPDATE, volume set-up and
	// container starts are logged).
	Verbosity int
}

// Kubelet is one hollow kubelet (see the comment above). Stop, Kill and Start restart it;
// every start has an empty runtime and an empty root directory, like a rebooted node.
type Kubelet struct {
	c    *Cluster
	opts KubeletOptions
	dir  string
	port int

	fwd    *http.Server
	fwdURL string
	reqLog *os.File
	reqMu  sync.Mutex

	mu   sync.Mutex
	proc *process
	runs int
}

// KubeletUserAgent is the User-Agent a real kubelet of the harness's Kubernetes version
// sends (rest.DefaultKubernetesUserAgent for a binary named kubelet).
func (c *Cluster) KubeletUserAgent() string {
	return "kubelet/" + c.KubeVersion() + " (linux/amd64) kubernetes/" + c.kubeCommit()
}

var kubeVersion struct {
	once            sync.Once
	version, commit string
}

// KubeVersion is the version the harness's binaries were built at ("v1.36.3").
func (c *Cluster) KubeVersion() string {
	c.versionOnce()
	return kubeVersion.version
}

func (c *Cluster) kubeCommit() string {
	c.versionOnce()
	return kubeVersion.commit
}

var versionRE = regexp.MustCompile(`GitVersion:"([^"]*)", GitCommit:"([^"]*)"`)

func (c *Cluster) versionOnce() {
	kubeVersion.once.Do(func() {
		kubeVersion.version, kubeVersion.commit = "v0.0.0", "unknown"
		out, err := exec.Command(filepath.Join(c.bins, "kubemark"), "--version=raw").Output()
		if m := versionRE.FindSubmatch(out); err == nil && m != nil {
			kubeVersion.version = string(m[1])
			if commit := string(m[2]); commit != "" && !strings.HasPrefix(commit, "$Format") {
				if len(commit) > 7 {
					commit = commit[:7]
				}
				kubeVersion.commit = commit
			}
		}
	})
}

// StartKubelet starts a hollow kubelet for opts.Node whose only API server is
// opts.Server, and returns once the process runs (not once the node is Ready: that
// depends on what serves opts.Server). It is stopped when the test ends.
func (c *Cluster) StartKubelet(t testing.TB, opts KubeletOptions) *Kubelet {
	t.Helper()
	if opts.Node == "" || opts.Server == "" {
		t.Fatalf("testkube: StartKubelet needs Node and Server")
	}
	if opts.UserAgent == "" {
		opts.UserAgent = c.KubeletUserAgent()
	}
	if opts.Verbosity == 0 {
		opts.Verbosity = 4
	}
	target, err := url.Parse(opts.Server)
	if err != nil {
		t.Fatalf("testkube: kubelet server %q: %v", opts.Server, err)
	}
	k := &Kubelet{c: c, opts: opts, dir: filepath.Join(c.dir, "kubelet-"+opts.Node)}
	if err := os.MkdirAll(k.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if k.reqLog, err = os.OpenFile(filepath.Join(k.dir, "kubelet-requests.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := k.startForwarder(target); err != nil {
		t.Fatalf("testkube: kubelet forwarder: %v", err)
	}
	ports, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	k.port = ports[0]
	kubeconfig := filepath.Join(k.dir, "kubeconfig")
	cfg := "apiVersion: v1\nkind: Config\nclusters:\n- name: hub\n  cluster:\n    server: " + k.fwdURL + "\n" +
		"users:\n- name: kubelet\n  user: {}\n" +
		"contexts:\n- name: hub\n  context:\n    cluster: hub\n    user: kubelet\n" +
		"current-context: hub\n"
	if err := os.WriteFile(kubeconfig, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	k.proc = &process{
		name:    "kubelet-" + opts.Node,
		path:    filepath.Join(c.bins, "kubemark"),
		logPath: filepath.Join(k.dir, "kubelet.log"),
		args: []string{
			"--morph=kubelet",
			"--name=" + opts.Node,
			"--kubeconfig=" + kubeconfig,
			fmt.Sprintf("--kubelet-port=%d", k.port),
			"--kubelet-read-only-port=0",
			"--use-host-image-service=false", // the fake runtime's image service, not containerd's socket
			"--kube-api-qps=50", "--kube-api-burst=100",
			fmt.Sprintf("--v=%d", opts.Verbosity),
		},
	}
	t.Cleanup(func() {
		_ = k.proc.stop()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = k.fwd.Shutdown(sctx)
		_ = k.fwd.Close()
		k.reqLog.Close()
		if dir := os.Getenv("YURTHUB_TEST_ARTIFACTS"); dir != "" {
			// Keep the kubelet's logs past the test's temporary directory.
			dst := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_"))
			if err := os.MkdirAll(dst, 0o755); err == nil {
				for _, f := range []string{k.proc.logPath, k.RequestLogPath()} {
					if b, err := os.ReadFile(f); err == nil {
						_ = os.WriteFile(filepath.Join(dst, filepath.Base(f)), b, 0o644)
					}
				}
				t.Logf("testkube: kubelet logs kept in %s", dst)
			}
		}
		if t.Failed() {
			t.Logf("testkube: last lines of %s:\n%s", k.proc.logPath, k.proc.logTail(60))
		}
	})
	k.Start(t)
	return k
}

// startForwarder listens on a free loopback port and forwards to target with the
// User-Agent rewritten.
func (k *Kubelet) startForwarder(target *url.URL) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	k.fwdURL = "http://" + l.Addr().String()
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = target.Host
			pr.Out.Header.Set("User-Agent", k.opts.UserAgent)
		},
		FlushInterval: -1, // watch streams: every write goes out at once
		// A watch cut by a hub restart is what the test does on purpose, not news.
		ErrorLog: log.New(io.Discard, "", 0),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			// What the kubelet would see with nothing listening: a failed connection.
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, herr := hj.Hijack(); herr == nil {
					conn.Close()
					return
				}
			}
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	k.fwd = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := &statusRecorder{ResponseWriter: w, start: time.Now()}
			rec.logged = func(code int, d time.Duration) { k.logRequest(r, code, d) }
			rp.ServeHTTP(rec, r)
			rec.log(0) // no answer at all (the upstream connection failed)
		}),
		ReadHeaderTimeout: 30 * time.Second,
	}
	go func() { _ = k.fwd.Serve(l) }()
	return nil
}

// statusRecorder logs a request once, when its answer starts (so a watch is logged
// when it is answered, not when it ends), with the time to that answer.
type statusRecorder struct {
	http.ResponseWriter
	start  time.Time
	logged func(code int, d time.Duration)
	done   bool
}

func (s *statusRecorder) log(code int) {
	if !s.done {
		s.done = true
		s.logged(code, time.Since(s.start))
	}
}

func (s *statusRecorder) WriteHeader(code int) {
	s.log(code)
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.log(http.StatusOK)
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (k *Kubelet) logRequest(r *http.Request, code int, d time.Duration) {
	k.reqMu.Lock()
	defer k.reqMu.Unlock()
	fmt.Fprintf(k.reqLog, "%s %s %s %d %s\n", time.Now().UTC().Format("15:04:05.000"), r.Method, r.URL.RequestURI(), code, d.Round(time.Millisecond))
}

// Start starts the kubelet (again): a new empty runtime and root directory.
func (k *Kubelet) Start(t testing.TB) {
	t.Helper()
	k.mu.Lock()
	k.runs++
	tmp := filepath.Join(k.dir, fmt.Sprintf("run-%d", k.runs))
	k.mu.Unlock()
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	k.proc.env = []string{"TMPDIR=" + tmp}
	if err := k.proc.start(); err != nil {
		t.Fatalf("testkube: %v", err)
	}
}

// Stop stops the kubelet (SIGTERM, then SIGKILL after 10 s) and waits for it.
func (k *Kubelet) Stop(t testing.TB) {
	t.Helper()
	if err := k.proc.stop(); err != nil {
		t.Fatalf("testkube: %v", err)
	}
}

// Kill kills the kubelet with SIGKILL (a power cut) and waits for it.
func (k *Kubelet) Kill(t testing.TB) {
	t.Helper()
	if err := k.proc.signal(syscall.SIGKILL); err != nil {
		t.Fatalf("testkube: kill kubelet: %v", err)
	}
	_ = k.proc.stop()
}

// Running reports whether the kubelet process runs.
func (k *Kubelet) Running() bool { return k.proc.running() }

// ExitErr says why the current run ended (nil while it runs).
func (k *Kubelet) ExitErr() error { return k.proc.exitErr() }

// Log is what the current run of the kubelet has logged so far.
func (k *Kubelet) Log() string { return k.proc.currentLog() }

// LogPath is the kubelet's log file (all runs, each after a "==== testkube" line).
func (k *Kubelet) LogPath() string { return k.proc.logPath }

// RequestLogPath is the forwarder's log of the kubelet's API requests.
func (k *Kubelet) RequestLogPath() string { return filepath.Join(k.dir, "kubelet-requests.log") }

// Port is the kubelet server's port.
func (k *Kubelet) Port() int { return k.port }

// LogLines returns the lines of the current run's log that contain every one of subs.
func (k *Kubelet) LogLines(subs ...string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(k.Log()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		all := true
		for _, s := range subs {
			if !strings.Contains(line, s) {
				all = false
				break
			}
		}
		if all {
			out = append(out, line)
		}
	}
	return out
}

// ErrKubeletExited is returned by WaitLog when the kubelet process ends while waiting.
var ErrKubeletExited = errors.New("kubelet exited")

// WaitLog waits until a line of the current run's log contains every one of subs and
// returns the first such line.
func (k *Kubelet) WaitLog(ctx context.Context, subs ...string) (string, error) {
	for {
		if l := k.LogLines(subs...); len(l) > 0 {
			return l[0], nil
		}
		if err := k.proc.exitErr(); err != nil {
			return "", fmt.Errorf("%w: %v", ErrKubeletExited, err)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no kubelet log line with %q: %w", subs, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

var rootDirRE = regexp.MustCompile(`Using (\S+) as root dir for hollow-kubelet`)

// RootDir is the current run's kubelet root directory (pods/<uid>/volumes/... hold what
// the volume plugins wrote), or "" before the kubelet has logged it.
func (k *Kubelet) RootDir() string {
	if m := rootDirRE.FindStringSubmatch(k.Log()); m != nil {
		return m[1]
	}
	return ""
}
