package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nobody is the unprivileged user that plays another local user in tests
// run as root.
const nobody = 65534

// asNobody makes cmd run as the unprivileged user nobody.
func asNobody(cmd *exec.Cmd) *exec.Cmd {
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	return cmd
}

// TestJoinTokenNotInProc joins nodes through the real binary with each way
// of giving the token, and reads the running node's /proc/PID/cmdline and
// /proc/PID/environ: once joined, the node runs as 'chancery run' and
// neither holds the token. Run as root, a second, unprivileged user cannot
// read the token file nor the node's environment, and finds no token in
// its command line.
func TestJoinTokenNotInProc(t *testing.T) {
	dir, data, addr := runTestManager(t, nil)
	l := &lab{t: t}
	out, _ := l.cli(false, "join-token", "-q", "worker", "--data-dir", data)
	token := strings.TrimSpace(out)
	secret := token[len(token)-25:]
	tokenFile := filepath.Join(dir, "worker.token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := chanceryBinary(t)
	tests := []struct {
		name      string
		args      []string
		env       string
		wantWarn  bool
		nodeProbe bool // whether another user probes the node's /proc files
	}{
		{name: "file", args: []string{"--token-file", tokenFile}, nodeProbe: true},
		{name: "env", env: token},
		{name: "flag", args: []string{"--token", token}, wantWarn: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			node := filepath.Join(dir, tc.name)
			args := append([]string{"join", "--data-dir", node, "--hostname", "n-" + tc.name, "--log-level", "warn"}, tc.args...)
			cmd := exec.Command(bin, append(args, addr)...)
			cmd.SysProcAttr = childAttr()
			cmd.Env = os.Environ()
			if tc.env != "" {
				cmd.Env = append(cmd.Env, JoinTokenEnv+"="+tc.env)
			}
			var stderr syncBuffer
			cmd.Stdout, cmd.Stderr = &stderr, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			t.Cleanup(func() {
				cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-done:
				case <-time.After(10 * time.Second):
					cmd.Process.Kill()
					t.Errorf("the node did not stop on SIGTERM")
				}
			})
			proc := filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid))
			want := strings.Join([]string{"chancery", "run", "--data-dir", node, "--log-level", "warn"}, "\x00") + "\x00"
			eventually(t, "the node running as 'chancery run'", func() bool {
				select {
				case err := <-done:
					t.Fatalf("the node exited: %v\n%s", err, stderr.String())
				default:
				}
				b, _ := os.ReadFile(filepath.Join(proc, "cmdline"))
				return string(b) == want
			})
			eventually(t, "the node listed", func() bool {
				out, _ := l.cli(false, "node", "ls", "--data-dir", data)
				return strings.Contains(out, "n-"+tc.name)
			})
			for _, f := range []string{"cmdline", "environ"} {
				b, err := os.ReadFile(filepath.Join(proc, f))
				if err != nil {
					t.Fatal(err)
				}
				if bytes.Contains(b, []byte(secret)) {
					t.Errorf("/proc/PID/%s holds the join token's secret", f)
				}
			}
			if warned := strings.Contains(stderr.String(), "warning: --token"); warned != tc.wantWarn {
				t.Errorf("warned about --token: %v, want %v\n%s", warned, tc.wantWarn, stderr.String())
			}
			if strings.Contains(stderr.String(), secret) {
				t.Errorf("the node's output holds the token:\n%s", stderr.String())
			}
			if !tc.nodeProbe || os.Geteuid() != 0 {
				return
			}
			// Another local user: no token in the command line, no access
			// to the environment or to the token file.
			b, err := asNobody(exec.Command("cat", filepath.Join(proc, "cmdline"))).Output()
			if err != nil {
				t.Fatalf("nobody cannot read the node's command line: %v", err)
			}
			if bytes.Contains(b, []byte(secret)) || !bytes.Contains(b, []byte("run")) {
				t.Errorf("nobody read the command line %q", b)
			}
			for _, p := range []string{filepath.Join(proc, "environ"), tokenFile} {
				if b, err := asNobody(exec.Command("cat", p)).CombinedOutput(); err == nil || bytes.Contains(b, []byte(secret)) {
					t.Errorf("nobody read %s: %v", p, err)
				}
			}
		})
	}
}

// TestJoinTokenFileRefused: join refuses a token file others can read or
// that another user owns, names the fix, and writes nothing.
func TestJoinTokenFileRefused(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name  string
		mode  os.FileMode
		owner int
		want  string
	}{
		{name: "world-readable", mode: 0o644, owner: -1, want: "chmod 600"},
		{name: "group-readable", mode: 0o640, owner: -1, want: "chmod 600"},
		{name: "another-owner", mode: 0o600, owner: nobody, want: "chown"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.owner >= 0 && os.Geteuid() != 0 {
				t.Skip("giving a file to another user needs root")
			}
			f := filepath.Join(dir, tc.name)
			if err := os.WriteFile(f, []byte("SWMTKN-1-x\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			os.Chmod(f, tc.mode)
			if tc.owner >= 0 {
				if err := os.Chown(f, tc.owner, tc.owner); err != nil {
					t.Fatal(err)
				}
			}
			node := filepath.Join(dir, tc.name+"-node")
			_, errOut := (&lab{t: t}).cli(true, "join", "--no-run", "--token-file", f, "--data-dir", node, "127.0.0.1:1")
			if !strings.Contains(errOut, tc.want+" ") || !strings.Contains(errOut, f) {
				t.Errorf("stderr does not name %s and %q:\n%s", f, tc.want, errOut)
			}
			if _, err := os.Stat(node); err == nil {
				t.Errorf("the refused join created %s", node)
			}
		})
	}
	_, errOut := (&lab{t: t}).cli(true, "join", "--no-run", "--data-dir", filepath.Join(dir, "none"), "127.0.0.1:1")
	if !strings.Contains(errOut, "--token-file") {
		t.Errorf("join without a token does not point to --token-file:\n%s", errOut)
	}
}
