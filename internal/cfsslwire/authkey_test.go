package cfsslwire

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// secretHex is a distinctive auth key.
const secretHex = "5ec2e75ec2e75ec2e75ec2e75ec2e75e"

func TestAuthKeyToken(t *testing.T) {
	k, err := ParseAuthKey([]byte(secretHex))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := hex.DecodeString(secretHex)
	m := hmac.New(sha256.New, raw)
	m.Write([]byte(`{"profile":""}`))
	if got := k.Token([]byte(`{"profile":""}`)); !bytes.Equal(got, m.Sum(nil)) {
		t.Errorf("token %x, want HMAC-SHA-256 %x", got, m.Sum(nil))
	}
}

func TestAuthKeyVerify(t *testing.T) {
	k, err := ParseAuthKey([]byte(secretHex))
	if err != nil {
		t.Fatal(err)
	}
	req := []byte(`{"profile":""}`)
	good := k.Token(req)
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)-1] ^= 1
	tests := []struct {
		name    string
		request []byte
		token   []byte
		want    bool
	}{
		{"Good", req, good, true},
		{"OtherRequest", []byte(`{"profile":"CA"}`), good, false},
		{"FlippedBit", req, flipped, false},
		{"Truncated", req, good[:31], false},
		{"Empty", req, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := k.Verify(tt.request, tt.token); got != tt.want {
				t.Errorf("Verify = %v, want %v", got, tt.want)
			}
		})
	}
}
