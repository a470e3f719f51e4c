// Package config loads a service's settings from, in order of precedence,
// command-line flags, environment variables, an env file and defaults.
//
// Every setting is one flag with one environment variable; the env file
// (named by -config or CHAT_CONFIG_FILE) uses the environment variable names
// in KEY=VALUE lines, the same format docker compose's env_file reads.
package config

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"
)

// FileEnv is the environment variable naming the env file.
const FileEnv = "CHAT_CONFIG_FILE"

// Set is a group of settings bound to a flag set.
type Set struct {
	fs   *flag.FlagSet
	file *string
	vars []Var
}

// Var describes one setting, for help texts and the README table.
type Var struct {
	Flag, Env, Default, Usage string
	// Want says what a valid value looks like, for error messages.
	Want string
}

// New returns an empty set whose flags are registered on a new flag set
// called name.
func New(name string) *Set {
	s := &Set{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	s.file = s.fs.String("config", "", "env file with KEY=VALUE settings (env: "+FileEnv+")")
	s.fs.Usage = s.usage
	return s
}

// String registers a string setting.
func (s *Set) String(p *string, name, env, def, usage string) {
	s.fs.StringVar(p, name, def, usage)
	s.add(name, env, def, usage, "a string")
}

// Int registers an integer setting.
func (s *Set) Int(p *int, name, env string, def int, usage string) {
	s.fs.IntVar(p, name, def, usage)
	s.add(name, env, fmt.Sprint(def), usage, "a whole number")
}

// Duration registers a duration setting ("10s", "1m30s").
func (s *Set) Duration(p *time.Duration, name, env string, def time.Duration, usage string) {
	s.fs.DurationVar(p, name, def, usage)
	s.add(name, env, def.String(), usage, `a duration with a unit, such as "500ms", "10s" or "1m30s"`)
}

// Bool registers a boolean setting.
func (s *Set) Bool(p *bool, name, env string, def bool, usage string) {
	s.fs.BoolVar(p, name, def, usage)
	s.add(name, env, fmt.Sprint(def), usage, "true or false")
}

func (s *Set) add(name, env, def, usage, want string) {
	s.vars = append(s.vars, Var{Flag: name, Env: env, Default: def, Usage: usage, Want: want})
}

// Vars lists the registered settings in registration order.
func (s *Set) Vars() []Var { return append([]Var(nil), s.vars...) }

// FlagSet exposes the underlying flag set, e.g. to read positional args.
func (s *Set) FlagSet() *flag.FlagSet { return s.fs }

// Parse fills the settings from args, then lookupEnv for every setting not
// given as a flag, then the env file for what is still unset. lookupEnv is
// usually os.LookupEnv. Errors name the flag or variable at fault.
func (s *Set) Parse(args []string, lookupEnv func(string) (string, bool)) error {
	if err := s.fs.Parse(args); err != nil {
		return err
	}
	if s.fs.NArg() > 0 {
		// flag stops at the first non-flag: silently ignoring it would also
		// drop every flag after it.
		return fmt.Errorf("unexpected argument %q (settings are flags such as -listen; see -h)", s.fs.Arg(0))
	}
	given := map[string]bool{}
	s.fs.Visit(func(f *flag.Flag) { given[f.Name] = true })

	path := *s.file
	if path == "" {
		path, _ = lookupEnv(FileEnv)
	}
	file := map[string]string{}
	if path != "" {
		var err error
		if file, err = readEnvFile(path); err != nil {
			return err
		}
	}
	for _, v := range s.vars {
		if given[v.Flag] {
			continue
		}
		src := "environment variable " + v.Env
		val, ok := lookupEnv(v.Env)
		if !ok {
			val, ok = file[v.Env]
			src = fmt.Sprintf("%s in %s", v.Env, path)
		}
		if !ok {
			continue
		}
		if err := s.fs.Set(v.Flag, val); err != nil {
			return fmt.Errorf("%s=%q: want %s", src, val, v.Want)
		}
	}
	return nil
}

func (s *Set) usage() {
	out := s.fs.Output()
	fmt.Fprintf(out, "Usage of %s:\n", s.fs.Name())
	vars := s.Vars()
	sort.Slice(vars, func(i, j int) bool { return vars[i].Flag < vars[j].Flag })
	for _, v := range vars {
		fmt.Fprintf(out, "  -%s (env %s, default %q)\n    \t%s\n", v.Flag, v.Env, v.Default, v.Usage)
	}
	fmt.Fprintf(out, "  -config FILE (env %s)\n    \tenv file with KEY=VALUE settings\n", FileEnv)
}

// readEnvFile reads KEY=VALUE lines; blank lines and lines starting with #
// are ignored, and a value may be wrapped in single or double quotes.
func readEnvFile(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading env file: %w", err)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		key, val, ok := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" {
			return nil, fmt.Errorf("%s:%d: want KEY=VALUE, got %q", path, n, line)
		}
		val = strings.TrimSpace(val)
		if len(val) >= 2 && (val[0] == '"' || val[0] == '\'') && val[len(val)-1] == val[0] {
			val = val[1 : len(val)-1]
		}
		out[key] = val
	}
	return out, sc.Err()
}
