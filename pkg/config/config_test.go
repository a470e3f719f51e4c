package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type settings struct {
	addr    string
	parts   int
	timeout time.Duration
	verbose bool
}

func newSet(c *settings) *Set {
	s := New("test")
	s.String(&c.addr, "listen", "T_LISTEN", ":1", "listen address")
	s.Int(&c.parts, "partitions", "T_PARTITIONS", 3, "partitions")
	s.Duration(&c.timeout, "timeout", "T_TIMEOUT", time.Second, "timeout")
	s.Bool(&c.verbose, "verbose", "T_VERBOSE", false, "verbose")
	return s
}

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "chat.env")
	content := "# comment\nT_LISTEN=file:1\nT_PARTITIONS='7'\nexport T_TIMEOUT=\"5s\"\n\nT_VERBOSE=true\n"
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	var c settings
	s := newSet(&c)
	err := s.Parse([]string{"-listen", "flag:1"}, env(map[string]string{
		FileEnv: file, "T_LISTEN": "env:1", "T_PARTITIONS": "5",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := settings{addr: "flag:1", parts: 5, timeout: 5 * time.Second, verbose: true}
	if c != want {
		t.Fatalf("got %+v, want %+v", c, want)
	}
}

func TestDefaults(t *testing.T) {
	var c settings
	if err := newSet(&c).Parse(nil, env(nil)); err != nil {
		t.Fatal(err)
	}
	if want := (settings{addr: ":1", parts: 3, timeout: time.Second}); c != want {
		t.Fatalf("got %+v, want %+v", c, want)
	}
}

func TestBadValueNamesTheVariable(t *testing.T) {
	var c settings
	err := newSet(&c).Parse(nil, env(map[string]string{"T_PARTITIONS": "three"}))
	if err == nil || !strings.Contains(err.Error(), "T_PARTITIONS") || !strings.Contains(err.Error(), "whole number") {
		t.Fatalf("err = %v, want one naming T_PARTITIONS and what it takes", err)
	}
	err = newSet(&c).Parse(nil, env(map[string]string{"T_TIMEOUT": "10"}))
	if err == nil || !strings.Contains(err.Error(), `"10s"`) {
		t.Fatalf("err = %v, want a hint about duration units", err)
	}
}

func TestPositionalArgumentRejected(t *testing.T) {
	var c settings
	err := newSet(&c).Parse([]string{"extra", "-listen", "x"}, env(nil))
	if err == nil || !strings.Contains(err.Error(), `"extra"`) {
		t.Fatalf("err = %v, want one naming the stray argument", err)
	}
}

func TestBadFileLine(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bad.env")
	if err := os.WriteFile(file, []byte("T_LISTEN\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var c settings
	err := newSet(&c).Parse([]string{"-config", file}, env(nil))
	if err == nil || !strings.Contains(err.Error(), "bad.env:1") {
		t.Fatalf("err = %v, want one naming bad.env:1", err)
	}
}

func TestMissingFile(t *testing.T) {
	var c settings
	if err := newSet(&c).Parse([]string{"-config", "/nonexistent/x.env"}, env(nil)); err == nil {
		t.Fatal("want an error for a missing env file")
	}
}
