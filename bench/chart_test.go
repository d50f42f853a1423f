package main

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math"
	"testing"
)

func testChart() ChartData {
	return ChartData{
		Title:    "TIME RELATIVE TO KERNEL OVERLAYFS",
		Subtitle: "TEST",
		Series: []ChartSeries{
			{Name: "plain", Color: seriesColor("plain", 0)},
			{Name: "fuse-overlayfs", Color: seriesColor("fuse-overlayfs", 1)},
			{Name: "strata", Color: seriesColor("strata", 2)},
		},
		Groups: []ChartGroup{
			{Label: "walk cold", Values: []float64{0.5, 2, 3.5}},
			{Label: "read-small warm", Values: []float64{1, 12.5, math.NaN()}},
			{Label: "copy-up cold", Values: []float64{0.02, 0.7, 150}},
		},
	}
}

func TestChartPNG(t *testing.T) {
	d := testChart()
	b, err := EncodeChart(d)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not a valid PNG: %v", err)
	}
	w, h := ChartSize(d)
	if got := img.Bounds(); got != image.Rect(0, 0, w, h) {
		t.Fatalf("size %v, want %dx%d", got, w, h)
	}
	// Expected size from the layout: margins, label column, plot, values;
	// header, one group per measurement, axis.
	wantW := 2*chartMargin + textWidth("read-small warm", chartScale) + 12 + chartPlotW + chartValueW
	groupH := 3*chartBarH + 2*chartBarGap
	wantH := 2*chartMargin + (textHeight(chartScale) + 10) + (textHeight(1) + 8) + chartLegendH +
		3*groupH + 4*chartGroupGap + chartAxisH
	if w != wantW || h != wantH {
		t.Errorf("ChartSize = %dx%d, want %dx%d", w, h, wantW, wantH)
	}
	// Every series color appears (bars and legend), and so does text.
	counts := map[color.RGBA]int{}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			r, g, b, a := img.At(x, y).RGBA()
			counts[color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), uint8(a >> 8)}]++
		}
	}
	for _, s := range d.Series {
		if counts[s.Color] < 200 {
			t.Errorf("series %s: only %d pixels of its color", s.Name, counts[s.Color])
		}
	}
	if counts[colText] < 500 {
		t.Errorf("only %d text pixels", counts[colText])
	}
	if counts[colBackground] < w*h/2 {
		t.Errorf("background is not mostly white")
	}
}

func TestChartRange(t *testing.T) {
	lo, hi := chartRange(testChart())
	if lo != -2 || hi != 3 {
		t.Errorf("range = 10^%v..10^%v, want 10^-2..10^3", lo, hi)
	}
	lo, hi = chartRange(ChartData{Groups: []ChartGroup{{Values: []float64{1.5}}}})
	if lo != -1 || hi != 1 {
		t.Errorf("minimal range = 10^%v..10^%v, want 10^-1..10^1", lo, hi)
	}
}

func TestChartEmpty(t *testing.T) {
	if _, err := EncodeChart(ChartData{Title: "EMPTY"}); err != nil {
		t.Fatal(err)
	}
}

func TestFont(t *testing.T) {
	for r, g := range glyphs {
		for i, row := range g {
			if len(row) != glyphW {
				t.Errorf("glyph %q row %d has width %d", r, i, len(row))
			}
		}
	}
	for _, r := range "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqrstuvwxyz.-()/:%x " {
		if glyphFor(r) == unknownGlyph {
			t.Errorf("no glyph for %q", r)
		}
	}
	if got := textWidth("ab", 2); got != (2*6-1)*2 {
		t.Errorf("textWidth = %d", got)
	}
	img := image.NewRGBA(image.Rect(0, 0, 20, 10))
	drawText(img, 1, 1, "1", 1, colText)
	n := 0
	for y := 0; y < 10; y++ {
		for x := 0; x < 20; x++ {
			if img.RGBAAt(x, y) == colText {
				n++
			}
		}
	}
	if n != 10 { // pixels of the '1' glyph
		t.Errorf("'1' drew %d pixels, want 10", n)
	}
}
