package main

import (
	"fmt"
	"image/color"
	"io"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// renderPlot renders test accuracy against sparsity for relutrim and the baselines and
// returns a function writing it as a PNG; with --budget curves, the layers' error curves
// and the chosen split are a second panel on the right.
func renderPlot(r *pruneReport) (func(io.Writer) error, error) {
	p := plot.New()
	p.Title.Text = "Test accuracy after pruning (no fine-tuning)"
	p.X.Label.Text = "sparsity (% of weights zero)"
	p.Y.Label.Text = "test accuracy (%)"
	p.Add(plotter.NewGrid())
	colors := map[string]color.RGBA{"relutrim": {R: 200, A: 255}, "magnitude": {B: 200, A: 255}, "wanda": {G: 140, A: 255}, "sparsegpt": {R: 230, G: 140, A: 255}}
	for _, name := range []string{"relutrim", "sparsegpt", "wanda", "magnitude"} {
		pts := make(plotter.XYs, len(r.PlotLevels))
		for i, s := range r.PlotLevels {
			pts[i].X, pts[i].Y = 100*s, 100*r.PlotAccuracy[name][i]
		}
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return nil, err
		}
		line.Color, points.Color = colors[name], colors[name]
		p.Add(line, points)
		p.Legend.Add(name, line, points)
	}
	if d, ok := r.Accuracy["dense_test"]; ok {
		p.Title.Text += fmt.Sprintf(", dense %.2f%%", 100*d)
	}
	p.Legend.Left, p.Legend.Top = true, false
	if len(r.BudgetCurves) > 0 {
		cp, err := curvesPlot(r)
		if err != nil {
			return nil, err
		}
		return sideBySide(6*vg.Inch, 4*vg.Inch, p, cp)
	}
	wt, err := p.WriterTo(6*vg.Inch, 4*vg.Inch, "png")
	if err != nil {
		return nil, err
	}
	return func(w io.Writer) error {
		_, err := wt.WriteTo(w)
		return err
	}, nil
}
