package testkube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// Standalone runs the harness outside `go test`: make demo and make bench start a
// cluster from an ordinary program. Every helper that takes a testing.TB (Start,
// GrantNodeReadAll, APIServer().Stop, ...) is called through Do, which hands it a TB that
// turns t.Fatalf into a returned error and collects t.Cleanup functions until Close.
//
//	s, c, err := testkube.StartStandalone(dir, testkube.Options{Nodes: []string{"edge-1"}}, os.Stderr)
//	defer s.Close()                                    // stops every process by PID
//	err = s.Do(func(t testing.TB) { c.GrantNodeReadAll(t, "edge-1") })
//	err = s.Do(func(t testing.TB) { c.APIServer().Stop(t) })
//
// The binaries come from $YURTHUB_KUBE_BIN_DIR (set it to the last line that
// testdata/kube/build.sh prints): a program built with -trimpath cannot find the
// repository to run build.sh itself.
type Standalone struct {
	dir  string
	logw io.Writer

	mu       sync.Mutex
	cleanups []func()
	tmp      int
	closed   bool
}

// StartStandalone starts a cluster like Start, with its files under dir (created if
// missing; not removed by Close, so logs survive). Log lines of the harness go to logw
// (nil: discarded). On error nothing is left running.
func StartStandalone(dir string, opts Options, logw io.Writer) (*Standalone, *Cluster, error) {
	if logw == nil {
		logw = io.Discard
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("testkube: %w", err)
	}
	if os.Getenv("YURTHUB_KUBE_BIN_DIR") == "" {
		return nil, nil, errors.New("testkube: YURTHUB_KUBE_BIN_DIR is unset: run testdata/kube/build.sh and set it to the directory it prints last")
	}
	s := &Standalone{dir: dir, logw: logw}
	var c *Cluster
	if err := s.Do(func(t testing.TB) { c = Start(t, opts) }); err != nil {
		s.Close()
		return nil, nil, err
	}
	return s, c, nil
}

// Do runs f with a testing.TB whose Fatal/FailNow/Skip end f (on f's own goroutine,
// as in a test) and make Do return the message as an error. Cleanups f registers run at
// Close, last registered first.
func (s *Standalone) Do(f func(t testing.TB)) error {
	t := &standaloneTB{s: s}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(t)
	}()
	<-done
	if t.failed.Load() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.msg == "" {
			t.msg = "failed"
		}
		return errors.New(t.msg)
	}
	return nil
}

// Close runs every registered cleanup (stopping the processes by PID). It is safe to
// call more than once.
func (s *Standalone) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	cl := s.cleanups
	s.cleanups = nil
	s.mu.Unlock()
	for i := len(cl) - 1; i >= 0; i-- {
		// On its own goroutine: a cleanup that calls t.Fatal ends only itself.
		done := make(chan struct{})
		go func() { defer close(done); cl[i]() }()
		<-done
	}
}

// standaloneTB implements testing.TB for Standalone.Do. The embedded interface is nil:
// it only supplies testing.TB's unexported method; every method the harness calls is
// defined below.
type standaloneTB struct {
	testing.TB
	s      *Standalone
	failed atomic.Bool
	mu     sync.Mutex
	msg    string
}

func (t *standaloneTB) fail(msg string) {
	t.mu.Lock()
	if t.msg == "" {
		t.msg = msg
	}
	t.mu.Unlock()
	t.failed.Store(true)
}

func (t *standaloneTB) ArtifactDir() string    { return t.TempDir() }
func (t *standaloneTB) Attr(key, value string) {}
func (t *standaloneTB) Cleanup(f func()) {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	t.s.cleanups = append(t.s.cleanups, f)
}
func (t *standaloneTB) Error(args ...any)                 { t.fail(fmt.Sprint(args...)) }
func (t *standaloneTB) Errorf(format string, args ...any) { t.fail(fmt.Sprintf(format, args...)) }
func (t *standaloneTB) Fail()                             { t.fail("") }
func (t *standaloneTB) FailNow()                          { t.fail(""); runtime.Goexit() }
func (t *standaloneTB) Failed() bool                      { return t.failed.Load() }
func (t *standaloneTB) Fatal(args ...any)                 { t.fail(fmt.Sprint(args...)); runtime.Goexit() }
func (t *standaloneTB) Fatalf(format string, args ...any) {
	t.fail(fmt.Sprintf(format, args...))
	runtime.Goexit()
}
func (t *standaloneTB) Helper()                          {}
func (t *standaloneTB) Log(args ...any)                  { fmt.Fprintln(t.s.logw, args...) }
func (t *standaloneTB) Logf(format string, args ...any)  { fmt.Fprintf(t.s.logw, format+"\n", args...) }
func (t *standaloneTB) Name() string                     { return "standalone" }
func (t *standaloneTB) Setenv(key, value string)         { _ = os.Setenv(key, value) }
func (t *standaloneTB) Chdir(dir string)                 { _ = os.Chdir(dir) }
func (t *standaloneTB) Skip(args ...any)                 { t.Fatal(args...) }
func (t *standaloneTB) SkipNow()                         { t.FailNow() }
func (t *standaloneTB) Skipf(format string, args ...any) { t.Fatalf(format, args...) }
func (t *standaloneTB) Skipped() bool                    { return false }
func (t *standaloneTB) Context() context.Context         { return context.Background() }
func (t *standaloneTB) Output() io.Writer                { return t.s.logw }
func (t *standaloneTB) TempDir() string {
	t.s.mu.Lock()
	t.s.tmp++
	n := t.s.tmp
	t.s.mu.Unlock()
	d := filepath.Join(t.s.dir, fmt.Sprintf("%03d", n))
	if err := os.MkdirAll(d, 0o700); err != nil {
		t.Fatalf("testkube: %v", err)
	}
	return d
}
