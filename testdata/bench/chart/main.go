// Command chart renders docs/bench/<run>/chart.png from the results.json that make
// bench (internal/bench) writes: one bar per figure that has a hub/direct ratio, with
// the goal marked. It is its own module so that its plotting dependency
// (gonum.org/v1/plot) never enters the yurthub module or binary.
//
//	go run . ../../../docs/bench/latest/results.json
package main

import (
	"encoding/json"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

type results struct {
	Date    string `json:"date"`
	Machine string `json:"machine"`
	Figures []struct {
		Name  string  `json:"name"`
		Ratio float64 `json:"ratio"`
		Goal  string  `json:"goal"`
	} `json:"figures"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: chart path/to/results.json (writes chart.png beside it)")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "chart:", err)
		os.Exit(1)
	}
}

func run(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var r results
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	var vals plotter.Values
	var names []string
	for _, f := range r.Figures {
		if f.Ratio <= 0 {
			continue
		}
		vals = append(vals, f.Ratio)
		names = append(names, strings.TrimSuffix(strings.ReplaceAll(f.Name, " to 8 watchers under churn", " (8 watchers)"), " (JSON)")+label(f.Name))
	}
	if len(vals) == 0 {
		return fmt.Errorf("%s: no figure has a hub/direct ratio", path)
	}
	p := plot.New()
	p.Title.Text = "yurthub: through the hub / direct (lower is better; watch events/s: higher)"
	p.Y.Label.Text = "hub / direct (median)"
	p.X.Label.Text = r.Date + " — " + r.Machine
	p.X.Label.TextStyle.Font.Size = vg.Points(8)
	bars, err := plotter.NewBarChart(vals, vg.Points(22))
	if err != nil {
		return err
	}
	bars.Color = color.RGBA{R: 70, G: 120, B: 180, A: 255}
	bars.LineStyle.Width = 0
	p.Add(bars)
	one := plotter.NewFunction(func(float64) float64 { return 1 })
	one.Color = color.Gray{Y: 90}
	one.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(one)
	p.Legend.Add("1.0 = as fast as direct", one)
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.XOffs = vg.Points(40)
	p.NominalX(names...)
	p.X.Tick.Label.Rotation = 0.9
	p.X.Tick.Label.XAlign = draw.XRight
	p.X.Tick.Label.YAlign = draw.YCenter
	p.X.Tick.Label.Font.Size = vg.Points(8)
	p.Y.Min = 0
	out := filepath.Join(filepath.Dir(path), "chart.png")
	if err := p.Save(vg.Length(max(8, 0.7*float64(len(vals))))*vg.Inch, 6*vg.Inch, out); err != nil {
		return err
	}
	fmt.Println("chart: wrote", out)
	return nil
}

// label keeps "(JSON)" off the ticks (the default) but says protobuf.
func label(name string) string {
	if strings.HasSuffix(name, "(JSON)") {
		return " JSON"
	}
	return ""
}
