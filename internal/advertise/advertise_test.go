package advertise

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
)

// fakeHost is a host with these interfaces.
var fakeHost = Interfaces(func(name string) ([]net.Addr, error) {
	nets := map[string][]string{
		"eth0":   {"192.0.2.10/24", "fe80::1/64"},
		"eth1":   {"198.51.100.7/24", "198.51.100.8/24"},
		"v6only": {"2001:db8::5/64", "fe80::2/64"},
		"v6two":  {"2001:db8::5/64", "2001:db8::6/64"},
		"down":   {"fe80::3/64"},
	}
	cidrs, ok := nets[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrNoInterface, name)
	}
	var out []net.Addr
	for _, c := range cidrs {
		ip, n, err := net.ParseCIDR(c)
		if err != nil {
			panic(err)
		}
		n.IP = ip
		out = append(out, n)
	}
	return out, nil
})

func TestResolve(t *testing.T) {
	const listen = "0.0.0.0:2377"
	tests := []struct {
		value, listen string
		want          string
		err           string // a part of the error; "" for none
	}{
		{"192.0.2.1:4000", listen, "192.0.2.1:4000", ""},
		{"manager-1.example:4000", listen, "manager-1.example:4000", ""},
		{"[2001:db8::1]:4000", listen, "[2001:db8::1]:4000", ""},
		// An IP alone takes the listen address's port.
		{"192.0.2.1", listen, "192.0.2.1:2377", ""},
		{"192.0.2.1", "127.0.0.1:9999", "192.0.2.1:9999", ""},
		{"2001:db8::1", listen, "[2001:db8::1]:2377", ""},
		{"[2001:db8::1]", listen, "[2001:db8::1]:2377", ""},
		// An interface: its only IPv4 address, else its only global IPv6.
		{"eth0", listen, "192.0.2.10:2377", ""},
		{"eth0:4000", listen, "192.0.2.10:4000", ""},
		{"v6only", listen, "[2001:db8::5]:2377", ""},
		{"eth1", listen, "", "has 2 IPv4 addresses (198.51.100.7, 198.51.100.8)"},
		{"v6two", listen, "", "2 global IPv6 addresses"},
		{"down", listen, "", "no IPv4 or global IPv6 address"},
		// Refusals.
		{"", listen, "", "empty"},
		{"wlan9", listen, "", "neither an IP address nor a network interface"},
		{"nowhere", listen, "", "neither an IP address nor a network interface"},
		{"0.0.0.0", listen, "", "no address another node can reach"},
		{"0.0.0.0:4000", listen, "", "no address another node can reach"},
		{"192.0.2.1:0", listen, "", "port must be 1-65535"},
		{"192.0.2.1:http", listen, "", "port must be 1-65535"},
		{"192.0.2.1:70000", listen, "", "port must be 1-65535"},
		{":4000", listen, "", "has no host"},
		{"192.0.2.1", "nowhere", "", "has none to lend"},
		{"a:b:c", listen, "", "want HOST:PORT"},
		{"bad_name:4000", listen, "", "neither an IP address nor a network interface"},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			got, err := ResolveWith(tt.value, tt.listen, fakeHost)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ResolveWith(%q) = %q, %v; want an error with %q", tt.value, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ResolveWith(%q) = %q, %v; want %q", tt.value, got, err, tt.want)
			}
		})
	}
}

// TestResolveLoopback resolves this host's own loopback interface.
func TestResolveLoopback(t *testing.T) {
	ifis, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifi := range ifis {
		if ifi.Flags&net.FlagLoopback == 0 {
			continue
		}
		got, err := Resolve(ifi.Name, "0.0.0.0:2377")
		if err != nil {
			t.Fatal(err)
		}
		if got != "127.0.0.1:2377" {
			t.Errorf("Resolve(%q) = %q, want 127.0.0.1:2377", ifi.Name, got)
		}
		return
	}
	t.Skip("this host has no loopback interface")
}

func TestHostNoInterface(t *testing.T) {
	if _, err := Host("no-such-interface-0"); !errors.Is(err, ErrNoInterface) {
		t.Errorf("Host: %v, want ErrNoInterface", err)
	}
}

// FuzzResolve: whatever the value, Resolve either fails or returns a
// HOST:PORT with a port 1-65535 and a host that is not empty.
func FuzzResolve(f *testing.F) {
	for _, s := range []string{"192.0.2.1", "eth0", "eth0:1", "[::1]:2", "h.example:3", "::", "a:b:c", "[x]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		got, err := ResolveWith(value, "0.0.0.0:2377", fakeHost)
		if err != nil {
			return
		}
		host, port, err := net.SplitHostPort(got)
		if err != nil || host == "" || port == "" || port == "0" {
			t.Fatalf("ResolveWith(%q) = %q", value, got)
		}
	})
}
