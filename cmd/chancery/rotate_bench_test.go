package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chancery-pki/chancery/admin"
	"github.com/chancery-pki/chancery/api"
	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/client"
	"github.com/chancery-pki/chancery/loadtest"
)

// BenchmarkRotateFleet rotates the root of a cluster of simulated nodes
// (light agents driving the real API over mutual TLS: heartbeats every
// 5 s, renewals when asked, the new root taken when given) on the file
// backend, the manager running as its own process. It reports the time
// from ca --rotate to done, the renewal rate, and the manager's peak
// resident memory. $CHANCERY_BENCH_NODES sets the fleet's size (default
// 10,000). The figure is the run, not b.N: run it with -benchtime 1x.
//
//	go test -run '^$' -bench RotateFleet -benchtime 1x ./cmd/chancery
func BenchmarkRotateFleet(b *testing.B) {
	nodes := 10000
	const heartbeat = 5 * time.Second
	if v := os.Getenv("CHANCERY_BENCH_NODES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("CHANCERY_BENCH_NODES=%q is not a number of nodes", v)
		}
		nodes = n
	}
	root, err := os.MkdirTemp("", "rbn")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(root)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	data := root + "/m1"
	var out, errb strings.Builder
	if code := runWith([]string{"init", "--no-run", "--hostname", "m1", "--data-dir", data, "--listen-addr", addr, "--advertise-addr", addr}, &out, &errb); code != 0 {
		b.Fatalf("init: %s", errb.String())
	}
	bin := chanceryBinary(b)
	cmd := execManager(b, bin, data)
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := waitAdmin(b, data)
	tok, err := c.JoinToken(ctx, ca.RoleWorker, false)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	fleet, err := loadtest.JoinFleet(ctx, addr, tok.Token, nodes, 64)
	if err != nil {
		b.Fatal(err)
	}
	defer fleet.Close()
	fmt.Printf("joined %d simulated nodes in %s\n", nodes, time.Since(start).Round(time.Millisecond))
	// The rotation starts on a fleet in its steady state: every node has
	// reported once over its mutual-TLS connection (10,000 new connections
	// at once are a storm of TLS handshakes of their own), then one more
	// heartbeat period has passed.
	go fleet.Run(ctx, heartbeat)
	runAt := time.Now()
	for fleet.Reported.Load() < int64(nodes) {
		if time.Since(runAt) > 5*time.Minute {
			b.Fatalf("%d of %d nodes reported in 5 minutes", fleet.Reported.Load(), nodes)
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Printf("every node reported in %s (%d failed calls on the way)\n", time.Since(runAt).Round(time.Millisecond), fleet.Errors.Load())
	time.Sleep(heartbeat)
	errorsAt := fleet.Errors.Load()

	b.ResetTimer()
	rotateAt := time.Now()
	st, err := c.RotateCA(ctx, api.RotateRequest{})
	if err != nil {
		b.Fatal(err)
	}
	target := st.Rotation.TargetFingerprint
	var reissueEnd time.Time
	renewalsAt := fleet.Renewals.Load()
	var lastLine time.Time
	for {
		st, err = c.CA(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if st.Rotation == nil {
			break
		}
		if reissueEnd.IsZero() && st.Rotation.Phase == "switch-trust" {
			reissueEnd = time.Now()
		}
		if time.Since(lastLine) >= 2*time.Second {
			lastLine = time.Now()
			fmt.Printf("%5.1fs %-12s converged %5d trusting %5d of %5d; renewals %5d errors %d\n",
				time.Since(rotateAt).Seconds(), st.Rotation.Phase, st.Rotation.Converged, st.Rotation.TrustingNew,
				st.Rotation.Total, fleet.Renewals.Load()-renewalsAt, fleet.Errors.Load()-errorsAt)
		}
		if time.Since(rotateAt) > 10*time.Minute {
			b.Fatalf("not done after 10 minutes: %+v", st.Rotation)
		}
		time.Sleep(200 * time.Millisecond)
	}
	took := time.Since(rotateAt)
	b.StopTimer()
	if st.RootFingerprint != target {
		b.Fatalf("the rotation ended on %s, not %s", st.RootFingerprint, target)
	}
	renewals := fleet.Renewals.Load() - renewalsAt
	if reissueEnd.IsZero() {
		reissueEnd = time.Now()
	}
	rate := float64(renewals) / reissueEnd.Sub(rotateAt).Seconds()
	peak := peakRSS(b, cmd.Process.Pid)
	fmt.Printf("rotated %d nodes (+ the manager) in %s: %d renewals, %.0f renewals/s until the switch of trust; manager peak RSS %d MiB; failed calls during the rotation %d\n",
		nodes, took.Round(time.Millisecond), renewals, rate, peak>>20, fleet.Errors.Load()-errorsAt)
	if fleet.Errors.Load() > 0 {
		fmt.Printf("first failed call: %s\n", fleet.FirstError())
	}
	b.ReportMetric(took.Seconds(), "s-to-done")
	b.ReportMetric(rate, "renewals/s")
	b.ReportMetric(float64(peak>>20), "MiB-peak-RSS")
}

// peakRSS is a process's peak resident set size (VmHWM), in bytes.
func peakRSS(b *testing.B, pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Logf("peak memory: %v", err)
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// execManager starts `chancery run` for dataDir as a process.
func execManager(b *testing.B, bin, dataDir string) *exec.Cmd {
	cmd := exec.Command(bin, "run", "--data-dir", dataDir, "--log-level", "error")
	cmd.SysProcAttr = childAttr()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	return cmd
}

// waitAdmin waits until the manager of dataDir answers on its socket, and
// returns a client of it.
func waitAdmin(b *testing.B, dataDir string) *client.Client {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if socketUp(dataDir) {
			c, _, err := admin.Open(context.Background(), dataDir)
			if err == nil {
				if _, err := c.CA(context.Background()); err == nil {
					return c
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Fatal("the manager process did not start")
	return nil
}
