package cfsslwire

import (
	"encoding/json"
	"testing"
)

// TestJSONNames checks the JSON names of the wire types: CFSSL's, as its
// server reads them and its clients send them.
func TestJSONNames(t *testing.T) {
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"SignRequest", SignRequest{
			Hosts:      []string{"swarm-worker", "node"},
			Request:    "CSR",
			Subject:    &Subject{CN: "node", Names: []SubjectName{{O: "cluster", OU: "swarm-worker"}}},
			Profile:    ProfileCA,
			Extensions: []Extension{{ID: "2.5.29.19", Critical: true, Value: "3000"}},
		}, `{"hosts":["swarm-worker","node"],"certificate_request":"CSR","subject":{"CN":"node","names":[{"O":"cluster","OU":"swarm-worker"}]},"profile":"CA","extensions":[{"id":"2.5.29.19","critical":true,"value":"3000"}]}`},
		{"SignRequestNode", SignRequest{Hosts: []string{}, Request: "CSR", Profile: ProfileNode},
			`{"hosts":[],"certificate_request":"CSR","profile":""}`},
		{"AuthRequest", AuthRequest{Timestamp: 1, Token: []byte{1}, Request: []byte("{}")},
			`{"timestamp":1,"token":"AQ==","request":"e30="}`},
		{"InfoRequest", InfoRequest{}, `{"label":"","profile":""}`},
		{"Response", Response{Success: false, Errors: []Message{{Code: 9002, Message: "no"}}, Messages: []Message{}},
			`{"success":false,"result":null,"errors":[{"code":9002,"message":"no"}],"messages":[]}`},
		{"SignResult", SignResult{Certificate: "PEM"}, `{"certificate":"PEM"}`},
		{"InfoResult", InfoResult{Certificate: "PEM", Usages: []string{"cert sign"}, Expiry: "1h"},
			`{"certificate":"PEM","usages":["cert sign"],"expiry":"1h"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := json.Marshal(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("JSON\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}
