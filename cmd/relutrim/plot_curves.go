package main

import (
	"bytes"
	"fmt"
	"image/color"
	"io"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"relutrim/prune"
)

// curvesPlot plots each layer's error curve (output error with that layer alone pruned,
// against the layer's sparsity, log scale; the dense end, at zero error, is left out) and
// marks the split --budget curves chose for the target.
func curvesPlot(r *pruneReport) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Layer error curves (--budget curves)"
	p.X.Label.Text = "layer sparsity (%)"
	p.Y.Label.Text = "output squared rel. error, layer alone pruned"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Add(plotter.NewGrid())
	palette := []color.RGBA{{R: 200, A: 255}, {B: 200, A: 255}, {G: 140, A: 255}, {R: 160, B: 160, A: 255}, {R: 200, G: 120, A: 255}, {G: 140, B: 140, A: 255}}
	for l, c := range r.BudgetCurves {
		var pts plotter.XYs
		for _, pt := range c.Points {
			if pt.OutErr > 0 {
				pts = append(pts, plotter.XY{X: 100 * pt.Sparsity, Y: pt.OutErr})
			}
		}
		if len(pts) == 0 {
			continue
		}
		col := palette[l%len(palette)]
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return nil, err
		}
		line.Color, points.Color = col, col
		p.Add(line, points)
		p.Legend.Add("layer "+c.Key, line, points)
		if l < len(r.BudgetKeep) && c.Weights > 0 {
			k := r.BudgetKeep[l]
			if y := curveAt(c, k); y > 0 {
				s, err := plotter.NewScatter(plotter.XYs{{X: 100 * (1 - float64(k)/float64(c.Weights)), Y: y}})
				if err != nil {
					return nil, err
				}
				s.Shape = draw.CrossGlyph{}
				s.Radius = vg.Points(6)
				s.Color = col
				p.Add(s)
			}
		}
	}
	p.Legend.Add(fmt.Sprintf("x: split at %.0f%%", 100*r.TargetSparsity))
	p.Legend.Left, p.Legend.Top = true, true
	return p, nil
}

// curveAt interpolates a curve's OutErr linearly at k weights (as the allocation does).
func curveAt(c prune.Curve, k int) float64 {
	knots := make([]prune.Knot, len(c.Points))
	for i, pt := range c.Points {
		knots[i] = prune.Knot{K: pt.NonZeros, Loss: pt.OutErr}
	}
	return prune.Interp(knots, k)
}

// sideBySide renders plots next to each other, each w x h, as one PNG.
func sideBySide(w, h vg.Length, ps ...*plot.Plot) (func(io.Writer) error, error) {
	img := vgimg.New(vg.Length(len(ps))*w, h)
	dc := draw.New(img)
	for i, p := range ps {
		left := vg.Length(i) * w
		p.Draw(draw.Crop(dc, left, left+w-vg.Length(len(ps))*w, 0, 0))
	}
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return nil, err
	}
	return func(w io.Writer) error {
		_, err := w.Write(buf.Bytes())
		return err
	}, nil
}
