package bench

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

// Options configure a run.
type Options struct {
	// Brokers names a real Kafka; the scenarios then run on the embedded
	// broker and again on it.
	Brokers string
	// Duration of each timed measurement.
	Duration time.Duration
	// Scenarios to run by number ("1,3"); empty runs all.
	Scenarios string
	// Progress receives the live display.
	Progress io.Writer
	// Command is how the run was started, for the report.
	Command string
	// Profiles, if set, is a folder for pprof profiles of the service
	// processes taken during the measurements (CPU while loaded, heap and
	// goroutines while idle streams are open).
	Profiles string
}

type scenario struct {
	id  string
	run func(context.Context, *env, Options) (Result, error)
}

var scenarios = []scenario{
	{"1", scenarioSend},
	{"2", scenarioLatency},
	{"3", scenarioFanout},
	{"4", scenarioMemory},
	{"5", scenarioCatchUp},
	{"6", scenarioProcesses},
}

// Run runs the selected scenarios on each broker.
func Run(ctx context.Context, o Options) (*Report, error) {
	rep := &Report{Started: time.Now(), Machine: machine(), Command: o.Command}
	brokers := []string{""}
	if o.Brokers != "" {
		brokers = append(brokers, o.Brokers)
	}
	for _, b := range brokers {
		for _, sc := range scenarios {
			if o.Scenarios != "" && !strings.Contains(","+o.Scenarios+",", ","+sc.id+",") {
				continue
			}
			e, err := newEnv(b)
			if err != nil {
				return rep, err
			}
			fmt.Fprintf(o.Progress, "scenario %s on %s\n", sc.id, e.name)
			start := time.Now()
			res, err := sc.run(ctx, e, o)
			e.close()
			if err != nil {
				return rep, fmt.Errorf("scenario %s on %s: %w", sc.id, e.name, err)
			}
			res.Took = time.Since(start).Round(100 * time.Millisecond).String()
			rep.Results = append(rep.Results, res)
		}
	}
	rep.Duration = time.Since(rep.Started).Round(time.Second).String()
	return rep, nil
}
