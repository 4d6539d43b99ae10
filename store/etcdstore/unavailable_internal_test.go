package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/chancery-pki/chancery/store"
)

// TestIsUnavailable: which errors of etcd, gRPC and contexts count as
// etcd's unavailability. Most of them a test etcd cannot be made to send
// on demand (TestNoQuorumFailsUnavailable has the one it can); this
// checks the rule on the errors themselves.
func TestIsUnavailable(t *testing.T) {
	live := context.Background()
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		err  error
		want bool
	}{
		{"NoLeaderClient", live, rpctypes.ErrNoLeader, true},
		{"NoLeaderServer", live, rpctypes.ErrGRPCNoLeader, true},
		{"RequestTimedOut", live, rpctypes.ErrTimeout, true},
		{"TimeoutDueToLeaderFail", live, rpctypes.ErrTimeoutDueToLeaderFail, true},
		{"ConnectionLost", live, rpctypes.ErrTimeoutDueToConnectionLost, true},
		{"Wrapped", live, fmt.Errorf("etcdstore: read the cluster: %w", rpctypes.ErrNoLeader), true},
		{"GRPCUnavailable", live, status.Error(codes.Unavailable, "connection error: desc = \"transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused\""), true},
		{"GRPCWrapped", live, fmt.Errorf("etcdstore: x: %w", status.Error(codes.Unavailable, "transport is closing")), true},
		{"ClientCanceled", live, status.Error(codes.Canceled, "grpc: the client connection is closing"), true},
		{"ClientContextCanceled", live, context.Canceled, true},
		{"ClientDialDeadline", live, fmt.Errorf("etcdstore: %w", context.DeadlineExceeded), true},
		{"CallerCanceled", ended, context.Canceled, false},
		{"CallerCanceledGRPC", ended, status.Error(codes.Canceled, "context canceled"), false},
		{"Compacted", live, rpctypes.ErrCompacted, false},
		{"KeyNotFound", live, rpctypes.ErrGRPCKeyNotFound, false},
		{"PermissionDenied", live, rpctypes.ErrPermissionDenied, false},
		{"GRPCInvalidArgument", live, status.Error(codes.InvalidArgument, "bad"), false},
		{"NotFound", live, store.ErrNotFound, false},
		{"Other", live, errors.New("corrupt record"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := isUnavailable(tc.ctx, tc.err); got != tc.want {
				t.Errorf("isUnavailable(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
