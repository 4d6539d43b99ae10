// Package advertise resolves an --advertise-addr as docker takes it: an
// address and port (HOST:PORT), an IP address alone, or the name of one of
// this host's network interfaces (eth0), each of the last two with an
// optional :PORT. Without a port, the port is the listen address's, as
// docker's defaults do.
package advertise

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Interfaces lists an interface's addresses by name; net.InterfaceByName's
// addresses on the real host, a table in tests.
type Interfaces func(name string) ([]net.Addr, error)

// ErrNoInterface is matched by the error of Interfaces for a name that is
// no interface of the host.
var ErrNoInterface = errors.New("no such network interface")

// Host is Interfaces on this host.
func Host(name string) ([]net.Addr, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("%w %q", ErrNoInterface, name)
	}
	return ifi.Addrs()
}

// Resolve returns the HOST:PORT that value (an --advertise-addr) stands for
// on this host, with listen (HOST:PORT) giving the port when value has
// none.
func Resolve(value, listen string) (string, error) {
	return ResolveWith(value, listen, Host)
}

// ResolveWith is Resolve with the interfaces that ifaces lists.
func ResolveWith(value, listen string, ifaces Interfaces) (string, error) {
	if value == "" {
		return "", errors.New("advertise address: empty")
	}
	host, port := value, ""
	if ip := net.ParseIP(strings.Trim(value, "[]")); ip != nil {
		// An IP alone, IPv6 too (whose colons are not a port's).
		host = ip.String()
	} else if h, p, err := net.SplitHostPort(value); err == nil {
		host, port = h, p
	} else if strings.Contains(value, ":") {
		return "", fmt.Errorf("advertise address %q: want HOST:PORT, an IP address, or a network interface name (eth0)", value)
	}
	if port == "" {
		_, lport, err := net.SplitHostPort(listen)
		if err != nil {
			return "", fmt.Errorf("advertise address %q has no port, and the listen address %q has none to lend: give HOST:PORT", value, listen)
		}
		port = lport
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("advertise address %q: port must be 1-65535", value)
	}
	if host == "" {
		return "", fmt.Errorf("advertise address %q has no host: give an IP address, a host name or an interface", value)
	}
	if ip := net.ParseIP(host); ip != nil {
		if ip.IsUnspecified() {
			return "", fmt.Errorf("advertise address %q: %s is no address another node can reach; give this host's address or an interface", value, host)
		}
		return net.JoinHostPort(ip.String(), port), nil
	}
	addrs, err := ifaces(host)
	switch {
	case err == nil:
		ip, err := interfaceIP(host, addrs)
		if err != nil {
			return "", fmt.Errorf("advertise address %q: %w", value, err)
		}
		return net.JoinHostPort(ip.String(), port), nil
	case !errors.Is(err, ErrNoInterface):
		return "", fmt.Errorf("advertise address %q: %w", value, err)
	case port != "" && value != host && validHostName(host):
		// HOST:PORT with a host name that is no interface.
		return net.JoinHostPort(host, port), nil
	}
	return "", fmt.Errorf("advertise address %q is neither an IP address nor a network interface of this host; give an IP address, an interface (eth0), or HOST:PORT", value)
}

// interfaceIP picks an interface's address as docker does: its only IPv4
// address, else its only global IPv6 address; more than one is ambiguous.
func interfaceIP(name string, addrs []net.Addr) (net.IP, error) {
	var v4, v6 []net.IP
	for _, a := range addrs {
		var ip net.IP
		switch a := a.(type) {
		case *net.IPNet:
			ip = a.IP
		case *net.IPAddr:
			ip = a.IP
		}
		switch {
		case ip == nil:
		case ip.To4() != nil:
			v4 = append(v4, ip)
		case ip.IsGlobalUnicast():
			v6 = append(v6, ip)
		}
	}
	switch {
	case len(v4) == 1:
		return v4[0], nil
	case len(v4) > 1:
		return nil, fmt.Errorf("interface %s has %d IPv4 addresses (%s); give one of them", name, len(v4), join(v4))
	case len(v6) == 1:
		return v6[0], nil
	case len(v6) > 1:
		return nil, fmt.Errorf("interface %s has %d global IPv6 addresses (%s) and no IPv4 address; give one of them", name, len(v6), join(v6))
	}
	return nil, fmt.Errorf("interface %s has no IPv4 or global IPv6 address", name)
}

func join(ips []net.IP) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ", ")
}

// validHostName accepts DNS host names of letters, digits, dots and dashes.
func validHostName(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, r := range h {
		if !(r == '.' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}
