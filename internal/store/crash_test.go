package store

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The crash test runs for real: a child process (this test binary re-executed with
// crashChildEnv set) streams list replacements and event batches for several views
// concurrently into a cache file and is SIGKILLed at a random moment; the parent
// then opens the file (nothing may be moved aside), runs bbolt's consistency check,
// and compares every view with a model: each view must equal the state after some
// whole operation (a list completely written, or a whole ApplyEvents batch), never a
// part of one, and no operation whose call had returned (the child prints an ack
// line after each) may be missing. The next child continues on the same file.
//
//	go test ./internal/store -run TestCrashSIGKILL -crash.kills=1000
//	YURTHUB_CRASH_KILLS=1000 make test
var crashKills = flag.Int("crash.kills", 200, "SIGKILLs in TestCrashSIGKILL (env YURTHUB_CRASH_KILLS overrides)")

const (
	crashChildEnv = "YURTHUB_STORE_CRASH_CHILD" // path of the cache file
	crashPlanEnv  = "YURTHUB_STORE_CRASH_PLAN"  // per view "op:rv", comma-separated
	crashViews    = 4
	crashPool     = 400 // object names per view
)

func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(path, os.Getenv(crashPlanEnv))
		os.Exit(3) // crashChild never returns normally
	}
	if path := os.Getenv(compactChildEnv); path != "" {
		compactChild(path) // compact_test.go
		os.Exit(3)
	}
	os.Exit(m.Run())
}

func crashView(v int) ListKey {
	res := []Resource{pods, {Version: "v1", Resource: "configmaps"}, {Group: "apps", Version: "v1", Resource: "deployments"}, {Version: "v1", Resource: "secrets"}}
	return ListKey{Component: []string{"kubelet", "kube-proxy", "coredns", "kubelet"}[v%4], Resource: res[v%len(res)], Selector: fmt.Sprintf("view=%d", v)}
}

// crashOp is operation i of view v, starting at resourceVersion rv: a pure function
// of (v, i, rv), so parent and child agree without sharing state.
type crashOp struct {
	replace bool
	names   []int // replace: the list's members; events: the object touched
	types   []EventType
}

func makeCrashOp(v, i int) crashOp {
	r := rand.New(rand.NewPCG(uint64(v)+1, uint64(i)+1))
	var op crashOp
	if i == 0 || r.IntN(5) == 0 {
		op.replace = true
		n := 1 + r.IntN(300)
		if r.IntN(8) == 0 {
			n = crashPool // a big list: a long commit to land kills in
		}
		perm := r.Perm(crashPool)[:n]
		op.names = perm
		return op
	}
	k := 1 + r.IntN(40)
	for range k {
		op.names = append(op.names, r.IntN(crashPool))
		switch x := r.IntN(10); {
		case x < 5:
			op.types = append(op.types, Modified)
		case x < 7:
			op.types = append(op.types, Added)
		case x < 9:
			op.types = append(op.types, Deleted)
		default:
			op.types = append(op.types, Bookmark)
		}
	}
	return op
}

// size is how many resourceVersions op consumes.
func (op crashOp) size() uint64 { return uint64(len(op.names)) }

func crashName(n int) string { return fmt.Sprintf("o%04d", n) }

func crashData(v int, name string, rv uint64) []byte {
	pad := int((rv*2654435761)%2500) + 100
	return fmt.Appendf(nil, `{"apiVersion":"v1","kind":"X","metadata":{"namespace":"ns%d","name":%q,"resourceVersion":"%d"},"pad":%q}`,
		v, name, rv, strings.Repeat("x", pad))
}

// crashModel is the parent's view of what a view must hold.
type crashModel struct {
	op      int               // next operation
	rv      uint64            // list resourceVersion after the ops applied so far
	members map[string]uint64 // name -> object resourceVersion
}

func (m *crashModel) apply(v int) {
	op := makeCrashOp(v, m.op)
	base := m.rv
	if op.replace {
		m.members = map[string]uint64{}
		for j, n := range op.names {
			m.members[crashName(n)] = base + 1 + uint64(j)
		}
	} else {
		for j, n := range op.names {
			rv := base + 1 + uint64(j)
			switch op.types[j] {
			case Added, Modified:
				m.members[crashName(n)] = rv
			case Deleted:
				delete(m.members, crashName(n))
			}
		}
	}
	m.rv = base + op.size()
	m.op++
}

func crashChild(path, plan string) {
	// Small chunks: most lists are committed through a staging generation
	// (staging.go), so kills land between its chunks and in its switch.
	s, err := Open(path, Options{ListChunkBytes: 16 << 10})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	parts := strings.Split(plan, ",")
	errc := make(chan error, crashViews)
	ack := make(chan string, 64)
	go func() {
		for line := range ack {
			os.Stdout.WriteString(line) // unbuffered: a line is out before the next op starts
		}
	}()
	for v := range crashViews {
		var op int
		var rv uint64
		if v < len(parts) {
			fmt.Sscanf(parts[v], "%d:%d", &op, &rv)
		}
		go func() {
			k := crashView(v)
			for ; ; op++ {
				o := makeCrashOp(v, op)
				if o.replace {
					w, err := s.BeginList(context.Background(), k)
					if err != nil {
						errc <- err
						return
					}
					for j, n := range o.names {
						name := crashName(n)
						orv := rv + 1 + uint64(j)
						if err := w.Add(Object{Namespace: fmt.Sprintf("ns%d", v), Name: name, ResourceVersion: orv, Data: crashData(v, name, orv)}); err != nil {
							errc <- err
							return
						}
					}
					if err := w.Commit(rv + o.size()); err != nil {
						errc <- err
						return
					}
				} else {
					evs := make([]Event, len(o.names))
					for j, n := range o.names {
						name := crashName(n)
						erv := rv + 1 + uint64(j)
						evs[j] = Event{Type: o.types[j], Object: Object{Namespace: fmt.Sprintf("ns%d", v), Name: name, ResourceVersion: erv, Data: crashData(v, name, erv)}}
					}
					if err := s.ApplyEvents(context.Background(), k, evs); err != nil {
						errc <- fmt.Errorf("view %d op %d: %w", v, op, err)
						return
					}
				}
				rv += o.size()
				// Acknowledge: this op's call returned, so it must survive the kill.
				ack <- fmt.Sprintf("ack %d %d\n", v, rv)
			}
		}()
	}
	err = <-errc
	fmt.Fprintln(os.Stderr, "child write failed:", err)
	os.Exit(2)
}

func TestCrashSIGKILL(t *testing.T) {
	kills := *crashKills
	if env := os.Getenv("YURTHUB_CRASH_KILLS"); env != "" {
		n, err := strconv.Atoi(env)
		if err != nil || n < 1 {
			t.Fatalf("YURTHUB_CRASH_KILLS=%q: want a positive number", env)
		}
		kills = n
	}
	if testing.Short() && kills > 20 {
		kills = 20
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "cache.db")
	models := make([]*crashModel, crashViews)
	for v := range models {
		models[v] = &crashModel{members: map[string]uint64{}}
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	start := time.Now()
	var totalOps, childFailures, inFlightSurvived, stagingRemoved int
	for kill := 0; kill < kills; kill++ {
		plan := make([]string, crashViews)
		for v, m := range models {
			plan[v] = fmt.Sprintf("%d:%d", m.op, m.rv)
		}
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+path, crashPlanEnv+"="+strings.Join(plan, ","))
		var stderr, stdout strings.Builder
		cmd.Stderr = &stderr
		cmd.Stdout = &stdout
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(5+rng.IntN(200)) * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			childFailures++
			t.Fatalf("kill %d: the child was not killed but exited (%v): %s", kill, err, stderr.String())
		}
		acked := make([]uint64, crashViews) // highest RV whose call returned, per view
		for _, line := range strings.Split(stdout.String(), "\n") {
			var v int
			var rv uint64
			if n, _ := fmt.Sscanf(line, "ack %d %d", &v, &rv); n == 2 && v >= 0 && v < crashViews && rv > acked[v] {
				acked[v] = rv
			}
		}
		checkFile(t, path)
		if t.Failed() {
			t.Fatalf("kill %d: consistency check failed", kill)
		}
		var logs strings.Builder
		s, err := Open(path, Options{Log: newTextLogger(&logs)})
		if err != nil {
			t.Fatalf("kill %d: open after SIGKILL: %v", kill, err)
		}
		if strings.Contains(logs.String(), "moved aside") {
			t.Fatalf("kill %d: the file was moved aside after a SIGKILL: %s", kill, logs.String())
		}
		if strings.Contains(logs.String(), "removed the staging generations") {
			stagingRemoved++
		}
		// Open removed what an interrupted commit in chunks left: no staging
		// generation, and no object that no view covers (nothing here stores an
		// object outside a list or a watch event).
		if err := s.WalkCoverage(context.Background(), Filter{}, func(k ObjectKey, _ Object, covered bool) error {
			if !covered {
				return fmt.Errorf("object %s is covered by no view: an orphan of an interrupted list commit", k)
			}
			return nil
		}); err != nil {
			s.Close()
			t.Fatalf("kill %d: %v", kill, err)
		}
		if n, err := s.removeStaging(); err != nil || n != 0 {
			s.Close()
			t.Fatalf("kill %d: %d staging generations left after Open (%v)", kill, n, err)
		}
		for v, m := range models {
			got := map[string]uint64{}
			info, err := s.List(context.Background(), crashView(v), func(o Object) error {
				if want := crashData(v, o.Name, o.ResourceVersion); string(o.Data) != string(want) {
					return fmt.Errorf("object %s@%d has bytes of another write", o.Name, o.ResourceVersion)
				}
				got[o.Name] = o.ResourceVersion
				return nil
			})
			if err != nil && !(m.op == 0 && strings.Contains(err.Error(), ErrNotSynced.Error())) {
				s.Close()
				t.Fatalf("kill %d view %d: %v", kill, v, err)
			}
			if info.ResourceVersion < acked[v] {
				s.Close()
				t.Fatalf("kill %d view %d: stored RV %d, but the call that wrote RV %d had returned: an acknowledged write was lost", kill, v, info.ResourceVersion, acked[v])
			}
			if info.ResourceVersion > acked[v] {
				inFlightSurvived++ // committed, the child was killed before it could say so
			}
			for m.rv < info.ResourceVersion {
				m.apply(v)
				totalOps++
			}
			if m.rv != info.ResourceVersion {
				s.Close()
				t.Fatalf("kill %d view %d: stored list RV %d is inside operation %d (model went to %d): a torn write", kill, v, info.ResourceVersion, m.op-1, m.rv)
			}
			if len(got) != len(m.members) || info.Count != len(m.members) {
				s.Close()
				t.Fatalf("kill %d view %d at RV %d: %d objects (info.Count %d), the completely written state has %d", kill, v, m.rv, len(got), info.Count, len(m.members))
			}
			for name, rv := range m.members {
				if got[name] != rv {
					s.Close()
					t.Fatalf("kill %d view %d at RV %d: %s has RV %d, want %d", kill, v, m.rv, name, got[name], rv)
				}
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	fi, _ := os.Stat(path)
	t.Logf("%d SIGKILLs in %s: every reopen passed tx.Check, every view equalled a completely written state, no acknowledged write was lost, no orphan was left; %d operations verified (%d views held a commit the child had not yet acknowledged; %d opens removed an interrupted commit's staging generation), final file %d bytes",
		kills, time.Since(start).Round(time.Millisecond), totalOps, inFlightSurvived, stagingRemoved, fi.Size())
}
