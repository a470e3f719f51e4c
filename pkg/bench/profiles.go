package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// saveProfiles writes the named profiles (heap, goroutine, ...) of the
// process serving pprof on pprofAddr into o.Profiles, if set, as
// <broker>-<name>.<kind>.pb.gz, for `go tool pprof`.
func (e *env) saveProfiles(ctx context.Context, o Options, pprofAddr, name string, kinds ...string) error {
	if o.Profiles == "" {
		return nil
	}
	for _, kind := range kinds {
		if err := e.saveProfile(ctx, o, "http://"+pprofAddr+"/debug/pprof/"+kind, name+"."+kind); err != nil {
			return err
		}
	}
	return nil
}

// profileCPU takes a CPU profile of the process serving pprof on
// pprofAddr for d, in the background, if o.Profiles is set; wait returns
// once it is written.
func (e *env) profileCPU(ctx context.Context, o Options, pprofAddr, name string, d time.Duration) (wait func() error) {
	if o.Profiles == "" {
		return func() error { return nil }
	}
	done := make(chan error, 1)
	go func() {
		secs := max(1, int(d.Seconds()))
		done <- e.saveProfile(ctx, o, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", pprofAddr, secs), name+".cpu")
	}()
	return func() error { return <-done }
}

func (e *env) saveProfile(ctx context.Context, o Options, url, name string) error {
	if err := os.MkdirAll(o.Profiles, 0o755); err != nil {
		return err
	}
	body, err := httpGet(ctx, url)
	if err != nil {
		return err
	}
	defer body.Close()
	broker := "kfake"
	if !e.embedded {
		broker = "kafka"
	}
	path := filepath.Join(o.Profiles, strings.ReplaceAll(broker+"-"+name, " ", "-")+".pb.gz")
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, body); err != nil {
		f.Close()
		return fmt.Errorf("profile %s: %w", url, err)
	}
	return f.Close()
}
