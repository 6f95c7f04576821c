package loadbalancer

import (
	"net/url"
	"testing"

	"github.com/yurthub/yurthub/internal/config"
)

func urls(t *testing.T, ss ...string) []*url.URL {
	var out []*url.URL
	for _, s := range ss {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, u)
	}
	return out
}

func TestRoundRobinSkipsUnhealthy(t *testing.T) {
	var changes []string
	lb, err := New(urls(t, "https://a:1", "https://b:1", "https://c:1"), Options{
		Mode: config.LBModeRoundRobin, InitiallyHealthy: true,
		OnChange: func(b *Backend, healthy bool, reason string) {
			changes = append(changes, b.URL.Host+":"+map[bool]string{true: "up", false: "down"}[healthy])
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for i := 0; i < 30; i++ {
		count[lb.Pick().URL.Host]++
	}
	if count["a:1"] != 10 || count["b:1"] != 10 || count["c:1"] != 10 {
		t.Fatalf("rr over 3 healthy backends, 30 picks: %v, want 10 each", count)
	}
	b := lb.Backends()[1]
	if !b.MarkUnhealthy("dial refused") || b.MarkUnhealthy("again") {
		t.Fatal("MarkUnhealthy should report a change once")
	}
	for i := 0; i < 20; i++ {
		if got := lb.Pick(); got == b {
			t.Fatalf("picked unhealthy backend %s", got)
		}
	}
	if got := lb.Pick(lb.Backends()[0], lb.Backends()[2]); got != nil {
		t.Fatalf("all healthy ones skipped, got %v, want nil", got)
	}
	b.MarkHealthy("probe ok")
	if len(changes) != 2 || changes[0] != "b:1:down" || changes[1] != "b:1:up" {
		t.Fatalf("OnChange calls = %v", changes)
	}
}

func TestPriorityTakesFirstHealthy(t *testing.T) {
	lb, err := New(urls(t, "https://a:1", "https://b:1"), Options{Mode: config.LBModePriority})
	if err != nil {
		t.Fatal(err)
	}
	if lb.Pick() != nil || lb.AnyHealthy() {
		t.Fatal("backends must start unhealthy unless InitiallyHealthy")
	}
	if lb.PickAny() == nil {
		t.Fatal("PickAny must always return a backend")
	}
	a, b := lb.Backends()[0], lb.Backends()[1]
	b.MarkHealthy("ok")
	a.MarkHealthy("ok")
	for i := 0; i < 5; i++ {
		if lb.Pick() != a {
			t.Fatal("priority must stick to the first healthy backend")
		}
	}
	a.MarkUnhealthy("down")
	if lb.Pick() != b {
		t.Fatal("priority must fall back to the second backend")
	}
	if lb.Pick(b) != nil {
		t.Fatal("skip list ignored")
	}
}

func TestBadMode(t *testing.T) {
	if _, err := New(urls(t, "https://a:1"), Options{Mode: "random"}); err == nil {
		t.Fatal("unknown mode accepted")
	}
	if _, err := New(nil, Options{Mode: config.LBModeRoundRobin}); err == nil {
		t.Fatal("no backends accepted")
	}
}
