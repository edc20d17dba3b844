// Command plot draws bench/scale's JSON as PNG charts (gonum.org/v1/plot):
// convergence p50/p99 and bytes per node against fleet size, and heap and
// recovery time against table size. It is its own module so that tether's
// go.mod does not carry the plotting libraries.
//
//	cd bench/scale/plot && go run . -in ../../scale.json -out ../..
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

type fleetRow struct {
	N         int     `json:"n"`
	Tuning    string  `json:"tuning"`
	Rate      int     `json:"rate"`
	Probes    int     `json:"probes"`
	Lost      int     `json:"probes_lost"`
	P50       float64 `json:"conv_p50_ms"`
	P99       float64 `json:"conv_p99_ms"`
	Wire      float64 `json:"wire_bytes_per_s_node"`
	Tether    float64 `json:"tether_bytes_per_s_node"`
	IdleWire  float64 `json:"idle_wire_bytes_per_s_node"`
	CPUPerNod float64 `json:"cpu_pct_core_per_node"`
}

type tableRow struct {
	Bindings  int     `json:"bindings"`
	HeapBytes uint64  `json:"heap_bytes"`
	PerBind   float64 `json:"heap_bytes_per_binding"`
	RSS       float64 `json:"rss_mib"`
	Snapshot  float64 `json:"snapshot_write_s"`
	Recover   float64 `json:"recover_s"`
}

type result struct {
	Machine string     `json:"machine"`
	Fleet   []fleetRow `json:"fleet"`
	Table   []tableRow `json:"table"`
}

func main() {
	in := flag.String("in", "../../scale.json", "harness output(s), comma separated")
	out := flag.String("out", "../..", "directory for the PNGs")
	flag.Parse()
	var r result
	for _, p := range strings.Split(*in, ",") {
		b, err := os.ReadFile(p)
		if err != nil {
			fail(err)
		}
		var one result
		if err := json.Unmarshal(b, &one); err != nil {
			fail(fmt.Errorf("%s: %w", p, err))
		}
		r.Machine = one.Machine
		r.Fleet = append(r.Fleet, one.Fleet...)
		r.Table = append(r.Table, one.Table...)
	}
	if len(r.Fleet) > 0 {
		// One line per push tuning. A size where probes were lost (the
		// fleet fell apart on this machine) has no convergence figure and
		// is left out of that chart; SCALE.md says which.
		var tunings []string
		byTuning := map[string][]fleetRow{}
		for _, f := range r.Fleet {
			key := fmt.Sprintf("%s, %d/s", f.Tuning, f.Rate)
			if _, ok := byTuning[key]; !ok {
				tunings = append(tunings, key)
			}
			byTuning[key] = append(byTuning[key], f)
		}
		conv := newPlot("Convergence, bind on one node -> on all others (sizes that held)", "nodes (N)", "ms")
		bw := newPlot("Bytes sent per node per second (memberlist + tether)", "nodes (N)", "KiB/s")
		cpu := newPlot("Process CPU / N, load generator taken out (in-process)", "nodes (N)", "% of one core")
		for i, t := range tunings {
			rows := byTuning[t]
			var held []fleetRow
			for _, f := range rows {
				// Held: at most 1 % of the probes lost (a probe still
				// running when the window ends gets a shorter timeout).
				if f.Probes > 0 && f.Lost*100 <= f.Probes {
					held = append(held, f)
				}
			}
			if len(held) > 0 {
				line(conv, t+" p50", i, false, pts(held, func(f fleetRow) (float64, float64) { return float64(f.N), f.P50 }))
				line(conv, t+" p99", i, true, pts(held, func(f fleetRow) (float64, float64) { return float64(f.N), f.P99 }))
			}
			line(bw, t+", under load", i, false, pts(rows, func(f fleetRow) (float64, float64) { return float64(f.N), f.Wire / 1024 }))
			line(bw, t+", idle", i, true, pts(rows, func(f fleetRow) (float64, float64) { return float64(f.N), f.IdleWire / 1024 }))
			line(cpu, t, i, false, pts(rows, func(f fleetRow) (float64, float64) { return float64(f.N), f.CPUPerNod }))
		}
		save(conv, *out, "scale-convergence.png")
		save(bw, *out, "scale-bytes.png")
		save(cpu, *out, "scale-cpu.png")
	}
	if len(r.Table) > 0 {
		mem := newPlot("One node's memory against table size", "bindings (millions)", "MiB")
		line(mem, "heap (after GC)", 0, false, pts(r.Table, func(t tableRow) (float64, float64) {
			return float64(t.Bindings) / 1e6, float64(t.HeapBytes) / (1 << 20)
		}))
		line(mem, "RSS", 1, false, pts(r.Table, func(t tableRow) (float64, float64) { return float64(t.Bindings) / 1e6, t.RSS }))
		save(mem, *out, "scale-heap.png")

		rec := newPlot("Snapshot and recovery against table size", "bindings (millions)", "s")
		line(rec, "snapshot write", 0, false, pts(r.Table, func(t tableRow) (float64, float64) { return float64(t.Bindings) / 1e6, t.Snapshot }))
		line(rec, "recovery (load snapshot + log)", 1, false, pts(r.Table, func(t tableRow) (float64, float64) { return float64(t.Bindings) / 1e6, t.Recover }))
		save(rec, *out, "scale-recovery.png")
	}
}

func pts[T any](rows []T, f func(T) (float64, float64)) plotter.XYs {
	xy := make(plotter.XYs, len(rows))
	for i, r := range rows {
		xy[i].X, xy[i].Y = f(r)
	}
	return xy
}

var palette = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 255},
	color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 255},
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 255},
	color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 255},
	color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 255},
	color.RGBA{R: 0x8c, G: 0x56, B: 0x4b, A: 255},
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Y.Min = 0
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	p.Legend.Left = true
	return p
}

// line adds a series in palette colour c, dashed when dashed (the p99 or
// idle series of the same run as the solid one).
func line(p *plot.Plot, name string, c int, dashed bool, xy plotter.XYs) {
	l, s, err := plotter.NewLinePoints(xy)
	if err != nil {
		fail(err)
	}
	l.Color = palette[c%len(palette)]
	if dashed {
		l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
	}
	l.Width = vg.Points(1.5)
	s.Color = l.Color
	p.Add(l, s)
	p.Legend.Add(name, l, s)
}

func save(p *plot.Plot, dir, name string) {
	path := filepath.Join(dir, name)
	if err := p.Save(6*vg.Inch, 3.6*vg.Inch, path); err != nil {
		fail(err)
	}
	fmt.Println("wrote", path)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "plot:", err)
	os.Exit(1)
}
