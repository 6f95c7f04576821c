package testkube

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stopGrace is how long a process gets between SIGTERM and SIGKILL.
const stopGrace = 10 * time.Second

// process is one child (etcd, kube-apiserver, kube-controller-manager). Its stdout and
// stderr go to logPath; every start appends a header line, so a restarted apiserver's
// log shows both runs.
type process struct {
	name    string
	path    string
	args    []string
	env     []string // added to the test's environment (nil: inherit it as is)
	logPath string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has been waited for
	waitErr error
	logFrom int64 // size of the log when the current run started
}

// start launches the process. It does not wait for readiness.
func (p *process) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !isClosed(p.done) {
		return fmt.Errorf("%s is already running (pid %d)", p.name, p.cmd.Process.Pid)
	}
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open %s log: %w", p.name, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	p.logFrom = st.Size()
	fmt.Fprintf(f, "==== testkube: %s starting %s %s\n", time.Now().Format(time.RFC3339Nano), p.path, strings.Join(p.args, " "))
	cmd := exec.Command(p.path, p.args...)
	if p.env != nil {
		cmd.Env = append(os.Environ(), p.env...)
	}
	cmd.Stdout, cmd.Stderr = f, f
	// If the test binary dies (panic on -timeout, SIGKILL), take the child with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := startOnLockedThread(cmd); err != nil {
		f.Close()
		return fmt.Errorf("start %s (%s): %w", p.name, p.path, err)
	}
	p.cmd, p.done, p.waitErr = cmd, make(chan struct{}), nil
	done := p.done
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(f, "==== testkube: %s pid %d exited: %v\n", p.name, cmd.Process.Pid, err)
		f.Close()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// running reports whether the process has been started and has not exited.
func (p *process) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil && !isClosed(p.done)
}

// exitErr returns why the current run ended, or nil while it runs.
func (p *process) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || !isClosed(p.done) {
		return nil
	}
	if p.waitErr == nil {
		return fmt.Errorf("%s exited with status 0", p.name)
	}
	return fmt.Errorf("%s exited: %w", p.name, p.waitErr)
}

// signal sends sig to the running process.
func (p *process) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || isClosed(p.done) {
		return fmt.Errorf("%s is not running", p.name)
	}
	return p.cmd.Process.Signal(sig)
}

// waitStopped waits until every thread of the process is in the stopped state ('T'
// in /proc/<pid>/task/<tid>/stat), as it is once a SIGSTOP has taken effect.
func (p *process) waitStopped(timeout time.Duration) error {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd == nil {
		return fmt.Errorf("%s is not running", p.name)
	}
	deadline := time.Now().Add(timeout)
	for {
		running, err := runningThreads(cmd.Process.Pid)
		if err != nil {
			return fmt.Errorf("%s pid %d: %w", p.name, cmd.Process.Pid, err)
		}
		if running == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s pid %d: %d threads still not stopped after %v", p.name, cmd.Process.Pid, running, timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// runningThreads counts the threads of pid that are not stopped.
func runningThreads(pid int) (int, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, task := range tasks {
		b, err := os.ReadFile(dir + "/" + task.Name() + "/stat")
		if err != nil {
			continue // the thread exited
		}
		// pid (comm) state ...: comm may hold spaces and parentheses, so read
		// the state after the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) {
			return 0, fmt.Errorf("unexpected %s/%s/stat: %q", dir, task.Name(), b)
		}
		if st := b[i+2]; st != 'T' && st != 't' {
			n++
		}
	}
	return n, nil
}

// stop sends SIGTERM, waits up to stopGrace, then SIGKILLs, and waits for the exit.
// Stopping a process that is not running is not an error.
func (p *process) stop() error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil || isClosed(done) {
		return nil
	}
	// A paused (SIGSTOPped) process would not act on SIGTERM until continued.
	_ = cmd.Process.Signal(syscall.SIGCONT)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("SIGTERM %s pid %d: %w", p.name, cmd.Process.Pid, err)
	}
	select {
	case <-done:
		return nil
	case <-time.After(stopGrace):
	}
	if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("SIGKILL %s pid %d: %w", p.name, cmd.Process.Pid, err)
	}
	select {
	case <-done:
		return nil
	case <-time.After(stopGrace):
		return fmt.Errorf("%s pid %d did not exit after SIGKILL", p.name, cmd.Process.Pid)
	}
}

// currentLog returns what the current (or last) run has written.
func (p *process) currentLog() string {
	p.mu.Lock()
	from := p.logFrom
	p.mu.Unlock()
	f, err := os.Open(p.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// addrInUse reports whether the last run died because a port was taken.
func (p *process) addrInUse() bool {
	return strings.Contains(p.currentLog(), "address already in use")
}

// logTail returns the last n lines of the whole log file.
func (p *process) logTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	b = bytes.TrimRight(b, "\n")
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// waitReady polls check every 200ms until it succeeds, the process exits, or ctx ends.
func (p *process) waitReady(ctx context.Context, check func(context.Context) error) error {
	var last error
	for {
		if err := p.exitErr(); err != nil {
			return err
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		last = check(cctx)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w (last check: %v)", p.name, ctx.Err(), last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

var (
	portsMu   sync.Mutex
	portsUsed = map[int]bool{}
)

// freePorts returns n distinct loopback TCP ports that were free a moment ago. It binds
// them all at once (so they differ), closes them, and never hands out the same port twice
// in one test process. Another process can still take one before our child binds it;
// callers retry when the child reports "address already in use".
func freePorts(n int) ([]int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		if tries > 100 {
			return nil, errors.New("cannot find free loopback ports")
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a free loopback port: %w", err)
		}
		ls = append(ls, l)
		port := l.Addr().(*net.TCPAddr).Port
		if portsUsed[port] {
			continue
		}
		portsUsed[port] = true
		ports = append(ports, port)
	}
	return ports, nil
}

// Pdeathsig is delivered when the OS thread that forked the child exits, not the
// process. Go may retire threads, so every child is forked from one goroutine locked
// to a thread that lives as long as the test binary.
var starter struct {
	once sync.Once
	reqs chan startReq
}

type startReq struct {
	cmd *exec.Cmd
	err chan error
}

func startOnLockedThread(cmd *exec.Cmd) error {
	starter.once.Do(func() {
		starter.reqs = make(chan startReq)
		go func() {
			runtime.LockOSThread()
			for r := range starter.reqs {
				r.err <- r.cmd.Start()
			}
		}()
	})
	errc := make(chan error, 1)
	starter.reqs <- startReq{cmd, errc}
	return <-errc
}
