package web

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Graphs are drawn on the server as inline SVG: no script, no external
// asset, nothing the CSP has to allow. Each is a set of paths in a fixed
// viewBox stretched to the card's width; strokes keep their width
// (vector-effect in app.css). Labels are HTML around the SVG, so they do
// not stretch.

const (
	graphW = 900 // one unit per second of history
	graphH = 100
)

// graphView is one graph for the template.
type graphView struct {
	ID, Title, Unit string
	MaxLabel        string // value of the top line
	Series          []seriesView
	Span            string // "15 min", or less while the history fills
	Empty           bool   // no point yet
	W, H            int
}

type seriesView struct {
	Name  string
	Class string // s0..s7: the colour
	Path  string // SVG path data
	Last  string // the newest value, with its unit
	// Points counts the points drawn (tests read it).
	Points int
}

// series is one line: a value per point, NaN where there is none.
type series struct {
	name   string
	values []float64
}

// buildGraph lays the series out over the last historySeconds before now:
// x is time, y from 0 to a rounded maximum.
func buildGraph(id, title, unit string, now time.Time, at []time.Time, ss []series) graphView {
	g := graphView{ID: id, Title: title, Unit: unit, W: graphW, H: graphH, Empty: len(at) == 0}
	span := time.Duration(historySeconds) * time.Second
	if len(at) > 0 {
		if d := now.Sub(at[0]); d < span {
			g.Span = humanAge(d.Round(time.Second))
		} else {
			g.Span = "15m"
		}
	}
	top := 0.0
	for _, s := range ss {
		for _, v := range s.values {
			if !math.IsNaN(v) && v > top {
				top = v
			}
		}
	}
	top = niceCeil(top)
	g.MaxLabel = formatValue(top, unit)
	start := now.Add(-span)
	for i, s := range ss {
		sv := seriesView{Name: s.name, Class: "s" + strconv.Itoa(i%maxGraphPeers)}
		var b strings.Builder
		pen := false
		for j, v := range s.values {
			if math.IsNaN(v) {
				pen = false
				continue
			}
			x := float64(graphW) * at[j].Sub(start).Seconds() / span.Seconds()
			if x < 0 {
				continue
			}
			y := float64(graphH) - float64(graphH)*v/top
			if pen {
				b.WriteString(" L")
			} else {
				if b.Len() > 0 {
					b.WriteByte(' ')
				}
				b.WriteString("M")
				pen = true
			}
			b.WriteString(strconv.FormatFloat(x, 'f', 1, 64))
			b.WriteByte(' ')
			b.WriteString(strconv.FormatFloat(y, 'f', 1, 64))
			sv.Points++
			sv.Last = formatValue(v, unit)
		}
		if sv.Last == "" {
			sv.Last = "—"
		}
		sv.Path = b.String()
		g.Series = append(g.Series, sv)
	}
	return g
}

// niceCeil rounds up to 1, 2 or 5 times a power of ten (at least 1).
func niceCeil(v float64) float64 {
	if v <= 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// formatValue renders a value with its unit, briefly: "1.2k/s", "35 ms".
func formatValue(v float64, unit string) string {
	var n string
	switch a := math.Abs(v); {
	case a >= 1e6:
		n = strconv.FormatFloat(v/1e6, 'f', 1, 64) + "M"
	case a >= 1e4:
		n = strconv.FormatFloat(v/1e3, 'f', 0, 64) + "k"
	case a >= 1e3:
		n = strconv.FormatFloat(v/1e3, 'f', 1, 64) + "k"
	case a >= 10 || v == math.Trunc(v):
		n = strconv.FormatFloat(v, 'f', 0, 64)
	default:
		n = strconv.FormatFloat(v, 'f', 1, 64)
	}
	switch unit {
	case "":
		return n
	case "/s":
		return n + "/s"
	default:
		return n + " " + unit
	}
}

// graphs builds the overview's graphs from the history.
func (s *Server) graphs(now time.Time) []graphView {
	pts := s.hist.snapshot()
	at := make([]time.Time, len(pts))
	col := func(f func(p point) float64) []float64 {
		out := make([]float64, len(pts))
		for i, p := range pts {
			out[i] = f(p)
		}
		return out
	}
	for i, p := range pts {
		at[i] = p.at
	}
	gs := []graphView{
		buildGraph("requests", "Requests", "/s", now, at, []series{{"requests", col(func(p point) float64 { return p.reqs })}}),
		buildGraph("errors", "Errors", "/s", now, at, []series{
			{"4xx", col(func(p point) float64 { return p.err4 })},
			{"5xx", col(func(p point) float64 { return p.err5 })},
		}),
		buildGraph("binds", "New bindings here", "/s", now, at, []series{{"new bindings", col(func(p point) float64 { return p.binds })}}),
	}
	var lag []series
	for _, peer := range lagPeers(pts) {
		lag = append(lag, series{peer, col(func(p point) float64 {
			if v, ok := p.lag[peer]; ok {
				return v
			}
			return math.NaN()
		})})
	}
	lg := buildGraph("lag", "Replication lag from each peer", "ms", now, at, lag)
	if len(lag) == 0 {
		lg.Empty = true
	}
	gs = append(gs, lg,
		buildGraph("held", "Bindings held", "", now, at, []series{{"bindings", col(func(p point) float64 { return float64(p.held) })}}))
	return gs
}

// rateLabel renders a per-second rate for the tables.
func rateLabel(v float64) string {
	if v == 0 {
		return "0"
	}
	if v < 0.1 {
		return "<0.1"
	}
	return formatValue(v, "")
}

// msLabel renders a latency: "—" without requests, "> 10000 ms" beyond the
// histogram's last bucket.
func msLabel(ms float64, over bool) string {
	switch {
	case ms < 0:
		return "—"
	case over:
		return "> " + formatValue(ms, "ms")
	case ms < 10:
		return fmt.Sprintf("%.1f ms", ms)
	}
	return formatValue(ms, "ms")
}
