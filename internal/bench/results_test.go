package main

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
)

// TestResults checks the arithmetic the committed tables rest on: medians, ratios,
// offline figures compared with the online direct ones, goals met or missed, and
// errors shown instead of numbers.
func TestResults(t *testing.T) {
	r := newResults(flags{runs: 3, gets: 10})
	for _, v := range []float64{1, 3, 2} {
		r.add("GET one pod p50 (JSON)", "ms", "direct", v, nil)
	}
	for _, v := range []float64{2.4, 2.6, 2.5} {
		r.add("GET one pod p50 (JSON)", "ms", "hub", v, nil)
	}
	r.add("LIST 10k pods (JSON)", "ms", "direct", 100, nil)
	r.add("LIST 10k pods (JSON)", "ms", "hub", 110, nil)
	r.add("offline: LIST 10k pods (JSON)", "ms", "hub", 50, nil)
	r.add("offline: GET one pod p50 (JSON)", "ms", "hub", 0, errors.New("GET /x: 503 Service Unavailable"))
	r.add("hub RSS idle (10k cached)", "MiB", "hub", 41, nil)
	r.BinaryBytes = 30 << 20
	r.finish()

	want := map[string]struct {
		ratio float64
		met   string
	}{
		"GET one pod p50 (JSON)":          {1.25, "no"}, // 2.5 / 2
		"LIST 10k pods (JSON)":            {1.10, "yes"},
		"offline: LIST 10k pods (JSON)":   {0.50, ""},
		"offline: GET one pod p50 (JSON)": {0, ""},
		"hub RSS idle (10k cached)":       {0, "no"},
		"binary size (stripped, -s -w)":   {0, "yes"},
	}
	for _, f := range r.Figures {
		w, ok := want[f.Name]
		if !ok {
			t.Errorf("unexpected figure %q", f.Name)
			continue
		}
		if d := f.Ratio - w.ratio; d > 0.001 || d < -0.001 {
			t.Errorf("%s: ratio %.3f, want %.3f", f.Name, f.Ratio, w.ratio)
		}
		if f.Met != w.met {
			t.Errorf("%s: met %q, want %q", f.Name, f.Met, w.met)
		}
	}
	md := r.markdown()
	for _, s := range []string{"| GET one pod p50 (JSON) | ms | 2.00 (1.00–3.00) | 2.50 (2.40–2.60) | 1.25 | hub/direct <= 1.15 | no |",
		"**not measured**: GET /x: 503 Service Unavailable"} {
		if !strings.Contains(md, s) {
			t.Errorf("markdown lacks %q:\n%s", s, md)
		}
	}
}

func TestUpdateReadme(t *testing.T) {
	r := newResults(flags{runs: 1})
	r.add("hub RSS idle, after the lists", "MiB", "hub", 30, nil)
	r.finish()
	file := t.TempDir() + "/README.md"
	before := "# x\n\n" + readmeBegin + "\nold\n" + readmeEnd + "\n\nafter\n"
	if err := os.WriteFile(file, []byte(before), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.UpdateReadme(file, "docs/bench/latest/results.md"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(file)
	for _, want := range []string{"# x\n\n" + readmeBegin, "| hub RSS idle, after the lists | <= 40 MiB | 30.0 MiB | yes |", readmeEnd + "\n\nafter\n", "(docs/bench/latest/results.md)"} {
		if !strings.Contains(string(got), want) {
			t.Errorf("README lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(string(got), "old") {
		t.Errorf("the old table is still there:\n%s", got)
	}
	if err := os.WriteFile(file, []byte("no markers"), 0o644); err == nil {
		if err := r.UpdateReadme(file, "x"); err == nil {
			t.Error("UpdateReadme without markers: no error")
		}
	}
}

// TestInTurn: with two targets each goes first in every other run.
func TestInTurn(t *testing.T) {
	ts := []string{"direct", "hub"}
	for run := 0; run < 6; run++ {
		got := inTurn(ts, run)
		want := []string{"direct", "hub"}
		if run%2 == 1 {
			want = []string{"hub", "direct"}
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("run %d: order %v, want %v", run, got, want)
		}
	}
	if strings.Join(ts, ",") != "direct,hub" {
		t.Errorf("inTurn changed its argument: %v", ts)
	}
}

// TestListFiguresSampling runs listFigures against two real HTTP servers standing in
// for the hub and the apiserver and checks what it sent: --list-runs timed LISTs per
// figure and side after one untimed warm-up each, the side that goes first
// alternating from one run to the next, and that many values in every LIST figure.
func TestListFiguresSampling(t *testing.T) {
	var mu sync.Mutex
	var order []string // target name per request, in arrival order
	server := func(name string) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			_, _ = w.Write([]byte(`{"kind":"PodList","items":[]}`))
		}))
		t.Cleanup(s.Close)
		return s
	}
	direct, hub := server("direct"), server("hub")
	f := flags{runs: 3, listRuns: minListRuns, small: 1000, large: 10000}
	b := &bench{f: f, res: newResults(f)}
	ts := []target{{"direct", direct.URL, direct.Client()}, {"hub", hub.URL, hub.Client()}}
	b.listFigures("", ts)

	const figures = 4 // 1k and 10k, JSON and protobuf
	perFigure := 2 + 2*f.listRuns
	if len(order) != figures*perFigure {
		t.Fatalf("%d requests, want %d (%d figures x (2 warm-ups + 2 x %d runs))", len(order), figures*perFigure, figures, f.listRuns)
	}
	for fig := 0; fig < figures; fig++ {
		timed := order[fig*perFigure+2 : (fig+1)*perFigure]
		firsts := map[string]int{}
		for run := 0; run < f.listRuns; run++ {
			pair := timed[2*run : 2*run+2]
			if pair[0] == pair[1] {
				t.Fatalf("figure %d run %d: %v, want one request to each side", fig, run, pair)
			}
			firsts[pair[0]]++
			if run > 0 && pair[0] == timed[2*run-2] {
				t.Errorf("figure %d: %s went first in runs %d and %d: the first side must alternate", fig, pair[0], run-1, run)
			}
		}
		if firsts["direct"] != f.listRuns/2 || firsts["hub"] != f.listRuns/2 {
			t.Errorf("figure %d: went first %v times, want %d each", fig, firsts, f.listRuns/2)
		}
	}
	n := 0
	for _, fig := range b.res.Figures {
		if !strings.HasPrefix(fig.Name, "LIST ") {
			continue
		}
		n++
		for _, s := range []*Series{fig.Hub, fig.Direct} {
			if s == nil || len(s.Values) != f.listRuns || s.Err != "" {
				t.Errorf("%s: series %+v, want %d values and no error", fig.Name, s, f.listRuns)
			}
		}
	}
	if n != figures {
		t.Errorf("%d LIST figures, want %d", n, figures)
	}
}

// TestListFiguresReducedSizes: a reduced run's two lists (--small 100 --large 300)
// are two figures, not one "0k" figure holding both.
func TestListFiguresReducedSizes(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("{}")) }))
	defer s.Close()
	f := flags{runs: 1, listRuns: 2, small: 100, large: 300}
	b := &bench{f: f, res: newResults(f)}
	b.listFigures("", []target{{"hub", s.URL, s.Client()}})
	var names []string
	for _, fig := range b.res.Figures {
		names = append(names, fig.Name)
		if len(fig.Hub.Values) != f.listRuns {
			t.Errorf("%s: %d values, want %d", fig.Name, len(fig.Hub.Values), f.listRuns)
		}
	}
	want := "LIST 100 pods (JSON),LIST 100 pods (protobuf),LIST 300 pods (JSON),LIST 300 pods (protobuf)"
	if strings.Join(names, ",") != want {
		t.Errorf("figures %v, want %s", names, want)
	}
	if countLabel(10000) != "10k" || countLabel(1000) != "1k" {
		t.Errorf("countLabel(10000), countLabel(1000) = %q, %q; want 10k, 1k", countLabel(10000), countLabel(1000))
	}
}

// TestMarkdownCommandLine: results.md prints the hub's argv as run, quoted where a
// shell would need it, and says how many samples the LIST figures took.
func TestMarkdownCommandLine(t *testing.T) {
	r := newResults(flags{runs: 5, listRuns: 20, gets: 300})
	r.HubArgs = []string{"/tmp/bin/yurthub", "--server-addr=https://127.0.0.1:6443", "--max-requests-in-flight=0", "--root-dir=/tmp/a b"}
	md := r.markdown()
	for _, want := range []string{
		"/tmp/bin/yurthub --server-addr=https://127.0.0.1:6443 --max-requests-in-flight=0 '--root-dir=/tmp/a b'",
		"Median of 5 runs (LIST figures: 20)",
		"the side that goes first alternates",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("results.md lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "other flags at their defaults") {
		t.Errorf("results.md still claims the other flags are at their defaults:\n%s", md)
	}
}
