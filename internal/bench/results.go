package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Results is what one run of the benchmark measured; results.json holds it and
// testdata/bench/chart reads it.
type Results struct {
	Date     string `json:"date"`
	Machine  string `json:"machine"`
	Versions struct {
		Yurthub       string `json:"yurthub"`
		Go            string `json:"go"`
		KubeAPIServer string `json:"kubeAPIServer"`
	} `json:"versions"`
	Runs     int `json:"runs"`
	ListRuns int `json:"listRuns"`
	Gets     int `json:"getsPerRun"`
	PodBytes int `json:"podBytes"`
	// HubArgs is the hub's command line as run (argv: the binary, then every flag
	// given; a flag not in it is at its default).
	HubArgs     []string  `json:"hubArgs"`
	BinaryBytes int64     `json:"binaryBytes"`
	Seconds     float64   `json:"seconds"`
	Figures     []*Figure `json:"figures"`
}

// Figure is one measured quantity, through the hub and (where it applies) directly.
type Figure struct {
	Name   string  `json:"name"`
	Unit   string  `json:"unit"`
	Hub    *Series `json:"hub,omitempty"`
	Direct *Series `json:"direct,omitempty"`
	// Ratio is hub median / direct median (0 when either is missing).
	Ratio float64 `json:"ratio,omitempty"`
	Goal  string  `json:"goal,omitempty"`
	// Met is "yes", "no" or "" (no goal, or nothing measured).
	Met string `json:"met,omitempty"`
}

// Series is the runs of one figure on one target.
type Series struct {
	Values []float64 `json:"values"`
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	Err    string    `json:"error,omitempty"`
}

func newResults(f flags) *Results {
	return &Results{Date: time.Now().UTC().Format(time.RFC3339), Runs: f.runs, ListRuns: f.listRuns, Gets: f.gets}
}

func (r *Results) figure(name, unit string) *Figure {
	for _, f := range r.Figures {
		if f.Name == name {
			return f
		}
	}
	f := &Figure{Name: name, Unit: unit}
	r.Figures = append(r.Figures, f)
	return f
}

// add records one run's value, or the error that prevented it.
func (r *Results) add(name, unit, target string, v float64, err error) {
	f := r.figure(name, unit)
	s := &f.Hub
	if target == "direct" {
		s = &f.Direct
	}
	if *s == nil {
		*s = &Series{}
	}
	if err != nil {
		if (*s).Err == "" {
			(*s).Err = err.Error()
		}
		return
	}
	(*s).Values = append((*s).Values, v)
}

func (s *Series) summarize() {
	if s == nil || len(s.Values) == 0 {
		return
	}
	v := slices.Clone(s.Values)
	slices.Sort(v)
	s.Min, s.Max = v[0], v[len(v)-1]
	if len(v)%2 == 1 {
		s.Median = v[len(v)/2]
	} else {
		s.Median = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
}

func (s *Series) ok() bool { return s != nil && len(s.Values) > 0 }

// goal says what a figure should reach; ratio goals compare hub with direct.
type goal struct {
	ratio      bool
	max, min   float64
	text       string
	byPrefixOf string
}

var goals = []goal{
	{ratio: true, max: 1.15, text: "hub/direct <= 1.15", byPrefixOf: "GET one pod p50"},
	{ratio: true, max: 1.25, text: "hub/direct <= 1.25", byPrefixOf: "LIST 10k pods"},
	{ratio: true, max: 1.25, text: "hub/direct <= 1.25", byPrefixOf: "LIST 10k EndpointSlices as kube-proxy"},
	{max: 16, text: "<= 16 MiB above idle", byPrefixOf: "↳ hub anonymous memory above idle at the peak of those lists"},
	{ratio: true, min: 0.90, text: "hub/direct >= 0.90", byPrefixOf: "watch events/s"},
	{max: 2000, text: "< 2 s", byPrefixOf: "cloud loss noticed"},
	{max: 2000, text: "< 2 s", byPrefixOf: "cloud recovery noticed"},
	{max: 300, text: "< 0.3 s", byPrefixOf: "start to /v1/readyz, offline"},
	{max: 40, text: "<= 40 MiB", byPrefixOf: "hub RSS"},
	// issue 18: a later entry overrides an earlier one whose prefix also matches.
	// On loopback the writers' rate bounds hub and direct alike (every watcher gets
	// every event either way): the multiplexer must cost nothing there. Its gain is
	// the cloud link's bytes, which the shaped-link row measures (link.go).
	{ratio: true, min: 0.95, text: "hub/direct >= 0.95 (the writers' rate bounds both; the 1.5 goal is the link row's)", byPrefixOf: "watch events/s to 8 watchers of EndpointSlices"},
	{ratio: true, min: 1.5, text: "hub/direct >= 1.5", byPrefixOf: "watch events/s to 8 watchers of EndpointSlices (multiplexed), over a"},
	{ratio: true, min: 0.95, text: "hub/direct >= 0.95", byPrefixOf: "watch events/s to 8 identical watchers"},
	{max: 1, text: "1 (direct: one per watcher)", byPrefixOf: "upstream watches of EndpointSlices"},
	{ratio: true, max: 1.2, text: "hub/direct <= 1.2", byPrefixOf: "event latency p99"},
	{max: 24, text: "<= 24 MiB", byPrefixOf: "hub RSS anonymous"},
	{text: "reported, with what holds it (the rows below it)", byPrefixOf: "hub RSS file-backed"},
	{max: 35, text: "<= 35 MiB", byPrefixOf: "binary size"},
	{ratio: true, text: "hub/direct reported: the floor under the GET goal", byPrefixOf: "GET one pod p50 (JSON), through a hub in cloud mode"},
}

func (r *Results) finish() {
	// Offline figures compare the cache with the apiserver answering online.
	direct := map[string]*Series{}
	for _, f := range r.Figures {
		if f.Direct != nil {
			direct[f.Name] = f.Direct
		}
	}
	bin := r.figure("binary size (stripped, -s -w)", "MiB")
	bin.Hub = &Series{Values: []float64{float64(r.BinaryBytes) / (1 << 20)}}
	for _, f := range r.Figures {
		f.Hub.summarize()
		if rest, ok := strings.CutPrefix(f.Name, "offline: "); ok && f.Direct == nil {
			f.Direct = direct[rest]
		}
		f.Direct.summarize()
		if f.Hub.ok() && f.Direct.ok() && f.Direct.Median > 0 {
			f.Ratio = f.Hub.Median / f.Direct.Median
		}
		for _, g := range goals {
			if !strings.HasPrefix(f.Name, g.byPrefixOf) {
				continue
			}
			f.Goal = g.text
			v, have := f.Hub.Median, f.Hub.ok()
			if g.ratio {
				v, have = f.Ratio, f.Ratio > 0
			}
			if have {
				f.Met = "yes"
				if (g.max > 0 && v > g.max) || (g.min > 0 && v < g.min) {
					f.Met = "no"
				}
			}
		}
	}
}

func (r *Results) write(dir string) error {
	r.finish()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "results.md"), []byte(r.markdown()), 0o644)
}

func num(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func cell(s *Series) string {
	switch {
	case s == nil:
		return "–"
	case !s.ok():
		return "**not measured**: " + strings.ReplaceAll(s.Err, "|", "\\|")
	case len(s.Values) == 1:
		return num(s.Median)
	default:
		return fmt.Sprintf("%s (%s–%s)", num(s.Median), num(s.Min), num(s.Max))
	}
}

func (r *Results) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# yurthub benchmark: %s\n\n", r.Date)
	fmt.Fprintf(&b, "Written by `make bench` (internal/bench) in %.0f s. Median of %d runs (LIST figures: %d), (min–max) beside it; GET latencies are the p50/p99 of %d sequential requests per run. ", r.Seconds, r.Runs, r.ListRuns, r.Gets)
	b.WriteString("Hub and direct take turns within each run; the side that goes first alternates from one run to the next. ")
	fmt.Fprintf(&b, "Pods are %d bytes each as JSON. Offline figures compare the hub's cache with the apiserver answering online.\n\n", r.PodBytes)
	fmt.Fprintf(&b, "- machine: %s\n- versions: %s (`yurthub --version`), %s; kube-apiserver %s\n", r.Machine, r.Versions.Yurthub, r.Versions.Go, r.Versions.KubeAPIServer)
	fmt.Fprintf(&b, "- the hub's command line, exactly as run (a flag not in it is at its default):\n\n  ```\n  %s\n  ```\n\n", commandLine(r.HubArgs))
	b.WriteString("## Goals\n\n")
	b.WriteString(r.GoalsTable())
	b.WriteString("\n## Every figure\n\n![hub/direct ratios](chart.png)\n\n")
	b.WriteString("| figure | unit | direct | through the hub | hub/direct | goal | met |\n|---|---|---|---|---|---|---|\n")
	for _, f := range r.Figures {
		ratio := ""
		if f.Ratio > 0 {
			ratio = fmt.Sprintf("%.2f", f.Ratio)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", f.Name, f.Unit, cell(f.Direct), cell(f.Hub), ratio, f.Goal, f.Met)
	}
	return b.String()
}

// commandLine is argv as a shell would take it back: words with anything but
// [A-Za-z0-9_./:=@,+-] single-quoted.
func commandLine(argv []string) string {
	if len(argv) == 0 {
		return "(the hub did not start)"
	}
	words := make([]string, len(argv))
	for i, a := range argv {
		plain := a != ""
		for _, c := range a {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("_./:=@,+-", c)) {
				plain = false
				break
			}
		}
		if plain {
			words[i] = a
		} else {
			words[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(words, " ")
}

// GoalsTable is the figures that have a goal: goal, result, met (the README shows it).
func (r *Results) GoalsTable() string {
	var b strings.Builder
	b.WriteString("| figure | goal | result | met |\n|---|---|---|---|\n")
	for _, f := range r.Figures {
		if f.Goal == "" {
			continue
		}
		var res string
		switch {
		case strings.HasPrefix(f.Goal, "hub/direct") && f.Ratio > 0:
			res = fmt.Sprintf("%.2f (hub %s, direct %s %s)", f.Ratio, num(f.Hub.Median), num(f.Direct.Median), f.Unit)
		case strings.HasPrefix(f.Goal, "hub/direct"):
			res = "not measured: " + cell(f.Hub) + " / " + cell(f.Direct)
		case f.Hub.ok():
			res = num(f.Hub.Median) + " " + f.Unit
			if len(f.Hub.Values) > 1 {
				res += fmt.Sprintf(" (%s–%s)", num(f.Hub.Min), num(f.Hub.Max))
			}
		default:
			res = cell(f.Hub)
		}
		met := f.Met
		if met == "" {
			met = "not measured"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", f.Name, f.Goal, res, met)
	}
	return b.String()
}

// Markers in README.md between which UpdateReadme puts the goals table.
const (
	readmeBegin = "<!-- bench:begin (make bench rewrites this table) -->"
	readmeEnd   = "<!-- bench:end -->"
)

// UpdateReadme replaces the goals table between the markers in file.
func (r *Results) UpdateReadme(file, resultsLink string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	s := string(data)
	i, j := strings.Index(s, readmeBegin), strings.Index(s, readmeEnd)
	if i < 0 || j < i {
		return fmt.Errorf("%s: no %q ... %q markers to put the table between", file, readmeBegin, readmeEnd)
	}
	table := fmt.Sprintf("%s\nRun of %s on %s ([full table](%s)):\n\n%s%s", readmeBegin, r.Date, r.Machine, resultsLink, r.GoalsTable(), readmeEnd)
	return os.WriteFile(file, []byte(s[:i]+table+s[j+len(readmeEnd):]), 0o644)
}

func machine() string {
	model := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := ""
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(data), "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf(", %.0f GB RAM", float64(kb)/1024/1024)
		}
	}
	var u syscall.Utsname
	kernel := ""
	if syscall.Uname(&u) == nil {
		kernel = ", Linux " + utsString(u.Release[:])
	}
	return fmt.Sprintf("%s, %d CPUs%s%s, %s/%s", model, runtime.NumCPU(), mem, kernel, runtime.GOOS, runtime.GOARCH)
}

func utsString(b []int8) string {
	s := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}

func hubVersion(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}
