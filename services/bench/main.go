// Command bench measures the chat services next to same-run baselines and
// writes BENCHMARKS.md and a JSON report: `make bench`. See pkg/bench.
package main

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/kafkachat/kafkachat/pkg/app"
	"github.com/kafkachat/kafkachat/pkg/bench"
	"github.com/kafkachat/kafkachat/pkg/config"
)

func main() { app.Main(run) }

func run(ctx context.Context, args []string) error {
	if kind := os.Getenv(bench.ServeEnv); kind != "" {
		return bench.Serve(ctx, kind, os.Getenv("CHAT_LISTEN_ADDR"))
	}
	// The load generators and the 1,000 fan-out clients stand in for
	// machines of their own but share this one's 2 cores with the services
	// under test: collecting their garbage less often leaves the services
	// more of the CPU. The services and baselines in processes of their own
	// keep their own settings (ingest sets 400 itself, the others Go's
	// default); GOGC in the environment reaches them, not this process.
	debug.SetGCPercent(400)
	o := bench.Options{Progress: os.Stderr}
	var md, js, cpuprofile string
	set := config.New("bench")
	set.String(&o.Brokers, "brokers", "KAFKA_BROKERS", "", "a real Kafka to measure on as well as the embedded broker")
	set.Duration(&o.Duration, "duration", "BENCH_DURATION", 10*time.Second, "length of each timed measurement")
	set.String(&o.Scenarios, "scenarios", "BENCH_SCENARIOS", "", "scenarios to run, by number (e.g. 1,3); empty runs all")
	set.String(&md, "md", "BENCH_MD", "BENCHMARKS.md", "Markdown report to write (empty: none)")
	set.String(&js, "json", "BENCH_JSON", "BENCHMARKS.json", "JSON report to write (empty: none)")
	set.String(&o.Profiles, "profiles", "BENCH_PROFILES", "", "write pprof profiles of the service processes into this folder")
	set.String(&cpuprofile, "cpuprofile", "BENCH_CPUPROFILE", "", "write a CPU profile of the benchmark process (load generators, clients, in-process services and embedded broker) here")
	if err := set.Parse(args, os.LookupEnv); err != nil {
		return &app.UsageError{Err: err}
	}
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	o.Command = "make bench"
	if o.Duration != 10*time.Second || o.Scenarios != "" {
		o.Command = "go run ./services/bench " + strings.Join(args, " ")
	}
	if o.Brokers != "" {
		o.Command = "KAFKA_BROKERS=<a real Kafka> " + o.Command
	}
	rep, err := bench.Run(ctx, o)
	if err != nil {
		return err
	}
	for path, write := range map[string]func(*os.File) error{
		md: func(f *os.File) error { return rep.WriteMarkdown(f) },
		js: func(f *os.File) error { return rep.WriteJSON(f) },
	} {
		if path == "" {
			continue
		}
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := write(f); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "wrote %s\n", path)
	}
	return nil
}
