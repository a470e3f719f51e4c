package bench

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTicks is Linux's USER_HZ, the unit of /proc CPU times; it is 100 on
// every architecture Go runs Linux on.
const clockTicks = 100

// cpuSample is the machine's busy and total CPU time and one process's
// CPU time, in seconds, at one moment.
type cpuSample struct {
	busy, total float64 // the machine, summed over its cores
	proc        float64 // user + system time of the process
}

// sampleCPU reads /proc/stat and, unless pid is 0, /proc/<pid>/stat.
func sampleCPU(pid int) (cpuSample, error) {
	var s cpuSample
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s, err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	fields := strings.Fields(line)
	if len(fields) < 6 || fields[0] != "cpu" {
		return s, errors.New("unexpected /proc/stat")
	}
	// user nice system idle iowait irq softirq steal, then guest and
	// guest_nice, which user and nice already include.
	for i, f := range fields[1:min(len(fields), 9)] {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return s, fmt.Errorf("/proc/stat: %w", err)
		}
		s.total += v / clockTicks
		if i != 3 && i != 4 { // idle, iowait
			s.busy += v / clockTicks
		}
	}
	if pid == 0 {
		return s, nil
	}
	data, err = os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// The command name, in parentheses, may hold spaces: count fields
	// after its closing parenthesis (utime and stime are the 14th and 15th
	// fields of the line, the 12th and 13th after it).
	i := strings.LastIndexByte(string(data), ')')
	rest := strings.Fields(string(data[i+1:]))
	if i < 0 || len(rest) < 13 {
		return s, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	for _, f := range rest[11:13] {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return s, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		s.proc += v / clockTicks
	}
	return s, nil
}

// cpuUse is what happened between two samples: the machine's busy share
// (0-1) and the process's CPU seconds.
func cpuUse(a, b cpuSample) (machineBusy, procSeconds float64) {
	if b.total > a.total {
		machineBusy = (b.busy - a.busy) / (b.total - a.total)
	}
	return machineBusy, b.proc - a.proc
}

// listenerPid is the process listening on addr's TCP port, when addr is a
// loopback address of this machine (the broker beside the benchmark), or 0
// when none is found: the benchmark then leaves the broker's CPU out.
func listenerPid(addr string) int {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return 0
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return 0
	}
	inodes := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		// sl local_address rem_address st ... inode (10th field)
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" { // 0A: LISTEN
				continue
			}
			_, hexPort, _ := strings.Cut(f[1], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 16); err == nil && p == port {
				inodes["socket:["+f[9]+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return 0
	}
	procDirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range procDirs {
		fds, _ := filepath.Glob(dir + "/fd/*")
		for _, fd := range fds {
			if target, err := os.Readlink(fd); err == nil && inodes[target] {
				pid, _ := strconv.Atoi(filepath.Base(dir))
				return pid
			}
		}
	}
	return 0
}
