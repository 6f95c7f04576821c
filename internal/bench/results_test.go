package main

import (
	"errors"
	"os"
	"strings"
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
