package ca

import (
	"strings"
	"testing"
	"time"
)

func TestCertExpiryConstants(t *testing.T) {
	if DefaultCertExpiry != 2160*time.Hour || MinCertExpiry != time.Hour || CertBackdate != time.Hour {
		t.Errorf("constants = %v, %v, %v, want 2160h, 1h, 1h", DefaultCertExpiry, MinCertExpiry, CertBackdate)
	}
}

func TestParseCertExpiry(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  string // substring of the error; "" for success
	}{
		{"2160h", 2160 * time.Hour, ""},
		{"168h", 168 * time.Hour, ""},
		{"168h00m00s", 168 * time.Hour, ""},
		{"2160h0m0s", 2160 * time.Hour, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"1h", time.Hour, ""},
		{"60m", time.Hour, ""},
		{"3600s", time.Hour, ""},
		{" 24h\n", 24 * time.Hour, ""},
		{"", 0, "ca: cert-expiry is empty: use a duration such as 168h or 2160h0m0s"},
		{"   ", 0, "ca: cert-expiry is empty"},
		{"90d", 0, `ca: invalid cert-expiry "90d" (use a duration such as 168h or 2160h0m0s)`},
		{"2160", 0, `ca: invalid cert-expiry "2160"`},
		{"abc", 0, `ca: invalid cert-expiry "abc"`},
		{"-1h", 0, "ca: cert-expiry -1h0m0s is negative"},
		{"30m", 0, "ca: cert-expiry 30m0s is below the minimum of 1h"},
		{"59m59s", 0, "below the minimum of 1h"},
		{"0", 0, "ca: cert-expiry 0s is below the minimum of 1h"},
		{"0s", 0, "below the minimum"},
		{"9999999999h", 0, "ca: invalid cert-expiry"},
	}
	for _, tt := range tests {
		got, err := ParseCertExpiry(tt.in)
		if tt.err == "" {
			if err != nil || got != tt.want {
				t.Errorf("ParseCertExpiry(%q) = %v, %v, want %v", tt.in, got, err, tt.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.HasPrefix(err.Error(), "ca: ") {
			t.Errorf("ParseCertExpiry(%q) = %v, %v, want error containing %q", tt.in, got, err, tt.err)
		}
	}
}

func TestHumanDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "Less than a second"},
		{-time.Hour, "Less than a second"},
		{999 * time.Millisecond, "Less than a second"},
		{time.Second, "1 second"},
		{2 * time.Second, "2 seconds"},
		{59 * time.Second, "59 seconds"},
		{60 * time.Second, "About a minute"},
		{119 * time.Second, "About a minute"},
		{2 * time.Minute, "2 minutes"},
		{59 * time.Minute, "59 minutes"},
		{time.Hour, "About an hour"},
		{89 * time.Minute, "About an hour"},
		{90 * time.Minute, "2 hours"},
		{47 * time.Hour, "47 hours"},
		{48 * time.Hour, "2 days"},
		{168 * time.Hour, "7 days"},
		{13 * 24 * time.Hour, "13 days"},
		{14 * 24 * time.Hour, "2 weeks"},
		{59 * 24 * time.Hour, "8 weeks"},
		{60 * 24 * time.Hour, "2 months"},
		{DefaultCertExpiry, "3 months"},
		{729 * 24 * time.Hour, "24 months"},
		{730 * 24 * time.Hour, "2 years"},
		{20 * 365 * 24 * time.Hour, "20 years"},
	}
	for _, tt := range tests {
		if got := HumanDuration(tt.d); got != tt.want {
			t.Errorf("HumanDuration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func FuzzParseCertExpiry(f *testing.F) {
	for _, s := range []string{"2160h", "168h00m00s", "1h30m", " 24h ", "", "30m", "-1h", "90d", "1.5h", "9999999999h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseCertExpiry(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "ca: ") {
				t.Fatalf("error %q does not start with \"ca: \"", err)
			}
			return
		}
		if d < MinCertExpiry {
			t.Fatalf("ParseCertExpiry(%q) = %v, below the minimum", s, d)
		}
		if d2, err := ParseCertExpiry(d.String()); err != nil || d2 != d {
			t.Fatalf("ParseCertExpiry(%q) = %v, %v, want %v", d.String(), d2, err, d)
		}
	})
}
