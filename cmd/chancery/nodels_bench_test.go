package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/cluster"
	"github.com/chancery-pki/chancery/internal/seed"
	"github.com/chancery-pki/chancery/loadtest"
)

// BenchmarkNodeLs lists a cluster of 100,000 nodes ($CHANCERY_BENCH_NODES)
// seeded through the store, with `chancery node ls` and the manager each
// running as its own process, as an operator runs them. It reports the
// time of one listing (ls-ms), the CLI's and the manager's peak resident
// memory, and the manager's resident memory per node: the difference from
// the same manager over an empty cluster, both after a listing, divided by
// the nodes.
//
// With $CHANCERY_BENCH_JOIN=api the nodes join through the manager's API
// over TLS instead (a key pair and a certificate each, as `chancery join`
// does), in batches of 5,000 at concurrency 64, until there are
// $CHANCERY_BENCH_NODES or $CHANCERY_BENCH_JOIN_BUDGET (a duration, 5m by
// default) has gone by; the listing is then of the nodes that joined, and
// the join rate is printed.
//
//	go test -run '^$' -bench NodeLs -benchtime 5x ./cmd/chancery
//	CHANCERY_BENCH_JOIN=api go test -run '^$' -bench NodeLs -benchtime 5x -timeout 30m ./cmd/chancery
func BenchmarkNodeLs(b *testing.B) {
	nodes := 100_000
	if v := os.Getenv("CHANCERY_BENCH_NODES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("CHANCERY_BENCH_NODES=%q is not a number of nodes", v)
		}
		nodes = n
	}
	var join *joinBudget
	switch mode := os.Getenv("CHANCERY_BENCH_JOIN"); mode {
	case "", "seed":
	case "api":
		join = &joinBudget{budget: 5 * time.Minute}
		if v := os.Getenv("CHANCERY_BENCH_JOIN_BUDGET"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				b.Fatalf("CHANCERY_BENCH_JOIN_BUDGET=%q is not a duration", v)
			}
			join.budget = d
		}
	default:
		b.Fatalf("CHANCERY_BENCH_JOIN=%q: want seed or api", mode)
	}
	bin := buildChancery(b)
	empty := lsCluster(b, bin, 0, nil)
	emptyRSS := empty.rssAfterLs(b)
	empty.stop()

	full := lsCluster(b, bin, nodes, join)
	nodes = full.nodes
	defer full.stop()
	var cliPeak int64
	var cliCPU time.Duration
	mgrCPU0 := cpuTime(b, full.cmd.Process.Pid)
	b.ResetTimer()
	for b.Loop() {
		peak, lines, cpu := full.ls(b)
		if lines != nodes+2 {
			b.Fatalf("node ls printed %d lines, want %d", lines, nodes+2)
		}
		cliPeak = max(cliPeak, peak)
		cliCPU += cpu
	}
	b.StopTimer()
	perLs := b.Elapsed() / time.Duration(b.N)
	// The CPU time each side spends on one listing: on a machine shared
	// with other work the wall time grows, these do not.
	mgrCPU := (cpuTime(b, full.cmd.Process.Pid) - mgrCPU0) / time.Duration(b.N)
	cliCPU /= time.Duration(b.N)
	fullRSS := rss(b, full.cmd.Process.Pid, "VmRSS:")
	mgrPeak := rss(b, full.cmd.Process.Pid, "VmHWM:")
	perNode := float64(fullRSS-emptyRSS) / float64(nodes)
	how := "seeded through the store"
	if join != nil {
		how = "joined through the API"
	}
	fmt.Printf("node ls of %d nodes %s: %s (CPU: CLI %s, manager %s); CLI peak RSS %.1f MiB; manager peak RSS %.1f MiB, RSS %.1f MiB (%.1f MiB empty): %.0f bytes/node\n",
		nodes, how, perLs.Round(time.Millisecond), cliCPU.Round(time.Millisecond), mgrCPU.Round(time.Millisecond),
		mib(cliPeak), mib(mgrPeak), mib(fullRSS), mib(emptyRSS), perNode)
	b.ReportMetric(float64(perLs.Microseconds())/1000, "ls-ms")
	b.ReportMetric(float64(cliCPU.Microseconds())/1000, "cli-cpu-ms")
	b.ReportMetric(float64(mgrCPU.Microseconds())/1000, "manager-cpu-ms")
	b.ReportMetric(mib(cliPeak), "cli-peak-MiB")
	b.ReportMetric(mib(mgrPeak), "manager-peak-MiB")
	b.ReportMetric(perNode, "manager-bytes/node")
}

// buildChancery builds the chancery command as an operator runs it (the
// test binary, which carries every test's dependencies, weighs more).
func buildChancery(b *testing.B) string {
	bin := filepath.Join(b.TempDir(), "chancery")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// lsBench is a manager process over a data directory of nodes nodes.
type lsBench struct {
	bin, data string
	cmd       *exec.Cmd
	nodes     int
}

// joinBudget bounds the joins through the API: they stop at budget.
type joinBudget struct {
	budget time.Duration
}

// lsCluster inits a cluster, and starts its manager as a process. With
// join nil it first seeds n nodes through the store; otherwise n nodes
// join through the manager's API, or as many as join within the budget.
func lsCluster(b *testing.B, bin string, n int, join *joinBudget) *lsBench {
	root, err := os.MkdirTemp("", "lsb")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(root) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	data := filepath.Join(root, "m1")
	var out, errb strings.Builder
	if code := runWith([]string{"init", "--no-run", "--hostname", "m1", "--data-dir", data, "--listen-addr", addr, "--advertise-addr", addr}, &out, &errb); code != 0 {
		b.Fatalf("init: %s", errb.String())
	}
	if n > 0 && join == nil {
		st, err := cluster.OpenStore(data)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		_, err = seed.Nodes(context.Background(), st, n, seed.Options{ManagerEvery: 1000})
		st.Close()
		if err != nil {
			b.Fatal(err)
		}
		fmt.Printf("seeded %d nodes through the store in %s\n", n, time.Since(start).Round(time.Millisecond))
	}
	l := &lsBench{bin: bin, data: data, cmd: execManager(b, bin, data), nodes: n}
	waitAdmin(b, data)
	if n > 0 && join != nil {
		l.nodes = joinAPI(b, data, addr, n, join.budget)
	}
	return l
}

// joinAPI joins up to n nodes through the API of the manager at addr, in
// batches, until n have joined or budget has gone by, and returns how
// many joined.
func joinAPI(b *testing.B, data, addr string, n int, budget time.Duration) int {
	var out, errb strings.Builder
	if code := runWith([]string{"join-token", "-q", "worker", "--data-dir", data}, &out, &errb); code != 0 {
		b.Fatalf("join-token: %s", errb.String())
	}
	token := strings.TrimSpace(out.String())
	const batch = 5000
	start := time.Now()
	joined := 0
	for joined < n && time.Since(start) < budget {
		res, err := loadtest.Run(context.Background(), loadtest.Config{
			Addr: addr, Token: token, Nodes: min(batch, n-joined), Concurrency: 64,
		})
		if err != nil {
			b.Fatal(err)
		}
		if res.Joins.Errors > 0 {
			b.Fatalf("%d join errors; first: %s", res.Joins.Errors, res.Joins.FirstError)
		}
		joined += res.Joins.Count
	}
	took := time.Since(start)
	fmt.Printf("joined %d nodes through the API in %s: %.0f joins/s\n",
		joined, took.Round(time.Millisecond), float64(joined)/took.Seconds())
	return joined
}

// ls runs `chancery node ls` as a process, and returns its peak resident
// memory, the lines it printed and the CPU time it used.
func (l *lsBench) ls(b *testing.B) (peak int64, lines int, cpu time.Duration) {
	var out, errb bytes.Buffer
	cmd := exec.Command(l.bin, "node", "ls", "--data-dir", l.data)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	// The child's own peak, read while it runs: the peak that wait4
	// reports for a child also counts the parent's memory, which the
	// child shared until it started chancery.
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
poll:
	for {
		if v, ok := procStatus(cmd.Process.Pid, "VmHWM:"); ok {
			peak = max(peak, v)
		}
		select {
		case err = <-done:
			break poll
		case <-time.After(2 * time.Millisecond):
		}
	}
	if err != nil {
		b.Fatalf("node ls: %v: %s", err, errb.String())
	}
	cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return peak, bytes.Count(out.Bytes(), []byte("\n")), cpu
}

// cpuTime is the CPU time a process has used (user and system), from
// /proc/PID/stat, in clock ticks of 10 ms.
func cpuTime(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// rssAfterLs lists once, then returns the manager's resident memory.
func (l *lsBench) rssAfterLs(b *testing.B) int64 {
	l.ls(b)
	return rss(b, l.cmd.Process.Pid, "VmRSS:")
}

func (l *lsBench) stop() {
	l.cmd.Process.Kill()
	l.cmd.Wait()
}

// rss reads a memory figure (VmRSS:, VmHWM:) of a process, in bytes.
func rss(b *testing.B, pid int, field string) int64 {
	v, ok := procStatus(pid, field)
	if !ok {
		b.Fatalf("no %s in /proc/%d/status", field, pid)
	}
	return v
}

// procStatus reads a memory figure of a process, in bytes; ok is false if
// the process is gone.
func procStatus(pid int, field string) (int64, bool) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, true
		}
	}
	return 0, false
}
