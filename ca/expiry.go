package ca

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

const (
	// DefaultCertExpiry is the default node certificate lifetime (90 days).
	DefaultCertExpiry = 90 * 24 * time.Hour
	// MinCertExpiry is the shortest node certificate lifetime allowed.
	MinCertExpiry = time.Hour
	// CertBackdate is how far a certificate's NotBefore is set in the past,
	// to absorb clock skew.
	CertBackdate = time.Hour
)

const durationHint = "use a duration such as 168h or 2160h0m0s"

// ParseCertExpiry parses a --cert-expiry value: a Go duration such as
// "2160h", "1h30m" or Docker's "168h0m0s", surrounding spaces ignored. It
// refuses empty, negative and unparseable values, and values below
// MinCertExpiry.
func ParseCertExpiry(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("ca: cert-expiry is empty: " + durationHint)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("ca: invalid cert-expiry %q (%s): %w", s, durationHint, err)
	}
	if d < 0 {
		return 0, fmt.Errorf("ca: cert-expiry %s is negative", d)
	}
	if d < MinCertExpiry {
		return 0, fmt.Errorf("ca: cert-expiry %s is below the minimum of %s", d, shortDuration(MinCertExpiry))
	}
	return d, nil
}

// shortDuration formats whole hours without zero units: "1h", not "1h0m0s".
func shortDuration(d time.Duration) string {
	return strings.TrimSuffix(d.String(), "0m0s")
}

// HumanDuration describes d as docker's go-units HumanDuration does, which
// docker info uses for "Expiry Duration": "3 months" for 2160h, "7 days"
// for 168h.
func HumanDuration(d time.Duration) string {
	seconds := int(d.Seconds())
	switch {
	case seconds < 1:
		return "Less than a second"
	case seconds == 1:
		return "1 second"
	case seconds < 60:
		return fmt.Sprintf("%d seconds", seconds)
	}
	minutes := int(d.Minutes())
	switch {
	case minutes == 1:
		return "About a minute"
	case minutes < 60:
		return fmt.Sprintf("%d minutes", minutes)
	}
	hours := int(d.Hours() + 0.5)
	switch {
	case hours == 1:
		return "About an hour"
	case hours < 48:
		return fmt.Sprintf("%d hours", hours)
	case hours < 24*7*2:
		return fmt.Sprintf("%d days", hours/24)
	case hours < 24*30*2:
		return fmt.Sprintf("%d weeks", hours/24/7)
	case hours < 24*365*2:
		return fmt.Sprintf("%d months", hours/24/30)
	}
	return fmt.Sprintf("%d years", int(d.Hours())/24/365)
}
