// Package bench measures the chat services against baselines taken in the
// same run on the same machine: a no-op gRPC handler for Send, raw franz-go
// for end-to-end latency, a bare gRPC stream for fan-out. Machines are
// noisy; the ratios are what carries over, not the absolute figures.
package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Figure is one measured quantity next to its baseline.
type Figure struct {
	Name     string  `json:"name"`
	Unit     string  `json:"unit"`
	Value    float64 `json:"value"`
	Baseline float64 `json:"baseline,omitempty"`
	// Ratio is Value/Baseline when a baseline exists.
	Ratio float64 `json:"ratio,omitempty"`
	// Target says what the figure must reach, and Met whether it did.
	Target string `json:"target,omitempty"`
	Met    *bool  `json:"met,omitempty"`
}

// Result is one scenario's outcome.
type Result struct {
	Scenario string         `json:"scenario"`
	Broker   string         `json:"broker"`
	Setup    string         `json:"setup"`
	Baseline string         `json:"baseline,omitempty"`
	Figures  []Figure       `json:"figures"`
	Details  map[string]any `json:"details,omitempty"`
	Took     string         `json:"took"`
}

// Report is a whole run.
type Report struct {
	Started  time.Time `json:"started"`
	Machine  string    `json:"machine"`
	Command  string    `json:"command"`
	Results  []Result  `json:"results"`
	Duration string    `json:"duration"`
}

func machine() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s, %d CPUs, %s/%s, %s", host, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
}

// WriteJSON writes the report as JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteMarkdown writes the report as the BENCHMARKS.md page.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Benchmarks\n\n")
	fmt.Fprintf(&b, "Measured %s on %s; the run took %s.\n\n", r.Started.UTC().Format("2006-01-02 15:04 MST"), r.Machine, r.Duration)
	fmt.Fprintf(&b, "Reproduce with `%s`. Every figure stands next to its baseline, measured in the same run on the same machine; these machines vary by 20-25%% from run to run, so compare ratios, not absolute figures.\n\n", r.Command)
	for _, res := range r.Results {
		fmt.Fprintf(&b, "## %s (%s)\n\n", res.Scenario, res.Broker)
		fmt.Fprintf(&b, "%s\n\n", res.Setup)
		if res.Baseline != "" {
			fmt.Fprintf(&b, "Baseline: %s\n\n", res.Baseline)
		}
		fmt.Fprintf(&b, "| figure | value | baseline | ratio | target | met |\n|---|---|---|---|---|---|\n")
		for _, f := range res.Figures {
			base, ratio, met := "", "", ""
			if f.Baseline != 0 {
				base = quantity(f.Baseline, f.Unit)
				ratio = fmt.Sprintf("%.2fx", f.Ratio)
			}
			if f.Met != nil {
				met = map[bool]string{true: "yes", false: "**no**"}[*f.Met]
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", f.Name, quantity(f.Value, f.Unit), base, ratio, f.Target, met)
		}
		fmt.Fprintf(&b, "\n(took %s)\n\n", res.Took)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// quantity is v to four significant digits, with its unit: large counts
// and rates in digits grouped by thousands (1,234,000 msg/s) rather than
// in exponent form.
func quantity(v float64, unit string) string {
	text := strconv.FormatFloat(v, 'g', 4, 64)
	if math.Abs(v) >= 1e4 && math.Abs(v) < 1e15 {
		rounded, _ := strconv.ParseFloat(text, 64)
		digits := strconv.FormatInt(int64(math.Abs(rounded)), 10)
		var g strings.Builder
		if rounded < 0 {
			g.WriteByte('-')
		}
		for i, c := range digits {
			if i > 0 && (len(digits)-i)%3 == 0 {
				g.WriteByte(',')
			}
			g.WriteRune(c)
		}
		text = g.String()
	}
	if unit == "" {
		return text
	}
	return text + " " + unit
}

// fig builds a figure with its ratio.
func fig(name, unit string, value, baseline float64) Figure {
	f := Figure{Name: name, Unit: unit, Value: value, Baseline: baseline}
	if baseline != 0 {
		f.Ratio = value / baseline
	}
	return f
}

// target marks whether f meets its target.
func (f Figure) target(desc string, met bool) Figure {
	f.Target, f.Met = desc, &met
	return f
}
