package main

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
)

// The chart: one group of horizontal bars per measurement, one bar per
// series (target other than the baseline), showing the ratio of the
// series' median time to the baseline's (kernel overlayfs) on a log scale.
// Bars start at the 1.0 line: to the right is slower than the baseline,
// to the left faster.

// ChartSeries is one target drawn in the chart.
type ChartSeries struct {
	Name  string
	Color color.RGBA
}

// ChartGroup is one measurement: a label and one ratio per series
// (NaN or <= 0 when missing).
type ChartGroup struct {
	Label  string
	Values []float64
}

// ChartData is everything the chart shows.
type ChartData struct {
	Title    string
	Subtitle string
	Series   []ChartSeries
	Groups   []ChartGroup
}

// Layout constants, in pixels.
const (
	chartScale    = 2   // text scale
	chartMargin   = 16  // outer margin
	chartPlotW    = 640 // width of the plot area
	chartBarH     = 18  // one bar
	chartBarGap   = 3   // between bars of a group
	chartGroupGap = 14  // between groups
	chartValueW   = 90  // room right of the plot for value labels
	chartLegendH  = 28
	chartAxisH    = 30 // tick labels under the plot
)

var (
	colBackground = color.RGBA{255, 255, 255, 255}
	colText       = color.RGBA{20, 20, 20, 255}
	colGrid       = color.RGBA{225, 225, 225, 255}
	colBaseline   = color.RGBA{40, 40, 40, 255}
	colMissing    = color.RGBA{150, 150, 150, 255}
)

// defaultSeriesColors are used for targets in order.
var defaultSeriesColors = map[string]color.RGBA{
	"plain":          {140, 140, 140, 255},
	"fuse-overlayfs": {230, 126, 34, 255},
	"strata":         {41, 128, 185, 255},
	"kernel":         {39, 174, 96, 255},
}

func seriesColor(name string, i int) color.RGBA {
	if c, ok := defaultSeriesColors[name]; ok {
		return c
	}
	palette := []color.RGBA{{142, 68, 173, 255}, {192, 57, 43, 255}, {22, 160, 133, 255}}
	return palette[i%len(palette)]
}

// chartLabelWidth is the width of the label column.
func chartLabelWidth(d ChartData) int {
	w := 0
	for _, g := range d.Groups {
		if tw := textWidth(g.Label, chartScale); tw > w {
			w = tw
		}
	}
	return w + 12
}

func chartHeaderHeight(d ChartData) int {
	h := textHeight(chartScale) + 10 // title
	if d.Subtitle != "" {
		h += textHeight(1) + 8
	}
	return h + chartLegendH
}

func chartGroupHeight(nSeries int) int {
	if nSeries < 1 {
		nSeries = 1
	}
	return nSeries*chartBarH + (nSeries-1)*chartBarGap
}

// ChartSize is the size in pixels of the image RenderChart makes for d.
func ChartSize(d ChartData) (w, h int) {
	plotH := len(d.Groups)*chartGroupHeight(len(d.Series)) + (len(d.Groups)+1)*chartGroupGap
	w = 2*chartMargin + chartLabelWidth(d) + chartPlotW + chartValueW
	minW := 2*chartMargin + textWidth(d.Title, chartScale)
	if minW > w {
		w = minW
	}
	h = 2*chartMargin + chartHeaderHeight(d) + plotH + chartAxisH
	return w, h
}

// chartRange is the log10 range of the x axis: whole decades, always
// containing 1.0 and every value.
func chartRange(d ChartData) (lo, hi float64) {
	lo, hi = 0, 0 // log10(1)
	for _, g := range d.Groups {
		for _, v := range g.Values {
			if !validRatio(v) {
				continue
			}
			l := math.Log10(v)
			lo = math.Min(lo, l)
			hi = math.Max(hi, l)
		}
	}
	lo = math.Floor(lo - 1e-9)
	hi = math.Ceil(hi + 1e-9)
	if lo > -1 {
		lo = -1
	}
	if hi < 1 {
		hi = 1
	}
	return lo, hi
}

func validRatio(v float64) bool { return v > 0 && !math.IsNaN(v) && !math.IsInf(v, 0) }

// RenderChart draws the chart.
func RenderChart(d ChartData) *image.RGBA {
	w, h := ChartSize(d)
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	fillRect(img, 0, 0, w, h, colBackground)

	y := chartMargin
	drawText(img, chartMargin, y, d.Title, chartScale, colText)
	y += textHeight(chartScale) + 10
	if d.Subtitle != "" {
		drawText(img, chartMargin, y, d.Subtitle, 1, colText)
		y += textHeight(1) + 8
	}
	// Legend.
	lx := chartMargin
	for _, s := range d.Series {
		fillRect(img, lx, y+2, 14, 14, s.Color)
		lx += 20
		drawText(img, lx, y+2, s.Name, chartScale, colText)
		lx += textWidth(s.Name, chartScale) + 24
	}
	y += chartLegendH

	labelW := chartLabelWidth(d)
	plotX := chartMargin + labelW
	plotY := y
	plotH := len(d.Groups)*chartGroupHeight(len(d.Series)) + (len(d.Groups)+1)*chartGroupGap
	lo, hi := chartRange(d)
	xOf := func(ratio float64) int {
		f := (math.Log10(ratio) - lo) / (hi - lo)
		return plotX + int(math.Round(f*float64(chartPlotW)))
	}

	// Grid lines and tick labels at 1, 2, 5 times each decade.
	for e := int(lo); e <= int(hi); e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, float64(e))
			if math.Log10(v) > hi+1e-9 {
				continue
			}
			x := xOf(v)
			fillRect(img, x, plotY, 1, plotH, colGrid)
			lbl := formatTick(v)
			tw := textWidth(lbl, 1)
			drawText(img, x-tw/2, plotY+plotH+6, lbl, 1, colText)
		}
	}
	drawText(img, plotX, plotY+plotH+18, "RATIO TO KERNEL OVERLAYFS (MEDIAN TIME), LOG SCALE", 1, colText)

	x1 := xOf(1)
	gy := plotY + chartGroupGap
	for _, g := range d.Groups {
		gh := chartGroupHeight(len(d.Series))
		drawText(img, chartMargin, gy+(gh-textHeight(chartScale))/2, g.Label, chartScale, colText)
		for i, s := range d.Series {
			by := gy + i*(chartBarH+chartBarGap)
			var v float64 = math.NaN()
			if i < len(g.Values) {
				v = g.Values[i]
			}
			if !validRatio(v) {
				drawText(img, x1+4, by+(chartBarH-textHeight(1))/2, "N/A", 1, colMissing)
				continue
			}
			xv := xOf(v)
			a, b := x1, xv
			if b < a {
				a, b = b, a
			}
			if b-a < 2 {
				b = a + 2
			}
			fillRect(img, a, by, b-a, chartBarH, s.Color)
			lbl := formatRatio(v)
			ty := by + (chartBarH-textHeight(1))/2
			if xv >= x1 {
				drawText(img, b+4, ty, lbl, 1, colText)
			} else {
				drawText(img, x1+4, ty, lbl, 1, colText)
			}
		}
		gy += gh + chartGroupGap
	}
	// Baseline at 1.0 on top of the bars.
	fillRect(img, x1, plotY, 2, plotH, colBaseline)
	return img
}

func formatTick(v float64) string {
	switch {
	case v >= 1:
		return fmt.Sprintf("%gx", v)
	default:
		return fmt.Sprintf("%.2gx", v)
	}
}

// EncodeChart renders d as PNG bytes.
func EncodeChart(d ChartData) ([]byte, error) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, RenderChart(d)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteChart writes the chart as a PNG file.
func WriteChart(path string, d ChartData) error {
	b, err := EncodeChart(d)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
