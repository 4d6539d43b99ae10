package rotation

import (
	"slices"
	"testing"

	"github.com/chancery-pki/chancery/store"
)

func TestStep(t *testing.T) {
	rot := func(ph store.RotationPhase, excluded ...string) *store.Rotation {
		return &store.Rotation{Phase: ph, ExcludedNodes: excluded}
	}
	n := func(id string, converged, trusts, straggler bool) NodeFacts {
		return NodeFacts{ID: id, Converged: converged, TrustsNew: trusts, Straggler: straggler}
	}
	for _, tc := range []struct {
		name  string
		r     *store.Rotation
		nodes []NodeFacts
		want  Action
		prog  Progress
	}{
		{"NoRotation", nil, []NodeFacts{n("a", false, false, false)}, Wait, Progress{Total: 1}},
		{"PrepareMakesTheAppendix", rot(store.PhasePrepare), []NodeFacts{n("a", false, false, false)}, MakeAppendix, Progress{Total: 1}},
		{"ReissueWaitsForEveryNode", rot(store.PhaseReissue), []NodeFacts{n("a", true, false, false), n("b", false, false, false)}, Wait, Progress{Total: 2, Converged: 1}},
		{"ReissueWaitsForAStraggler", rot(store.PhaseReissue), []NodeFacts{n("a", true, false, false), n("b", false, false, true)}, Wait,
			Progress{Total: 2, Converged: 1, Stragglers: []string{"b"}}},
		{"AnExcludedStragglerDoesNotBlock", rot(store.PhaseReissue, "b"), []NodeFacts{n("a", true, false, false), n("b", false, false, true)}, SwitchTrust,
			Progress{Total: 1, Converged: 1}},
		{"ReissueDone", rot(store.PhaseReissue), []NodeFacts{n("a", true, false, false), n("b", true, false, false)}, SwitchTrust, Progress{Total: 2, Converged: 2}},
		{"SwitchWaitsForTrust", rot(store.PhaseSwitchTrust), []NodeFacts{n("a", true, true, false), n("b", true, false, false)}, Wait,
			Progress{Total: 2, Converged: 2, TrustingNew: 1}},
		{"SwitchDone", rot(store.PhaseSwitchTrust), []NodeFacts{n("a", true, true, false), n("b", true, true, false)}, Finish,
			Progress{Total: 2, Converged: 2, TrustingNew: 2}},
		{"NoNodes", rot(store.PhaseReissue), nil, SwitchTrust, Progress{}},
		{"UnknownPhase", rot("sideways"), nil, Wait, Progress{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, prog := Step(tc.r, Facts{Nodes: tc.nodes})
			if got != tc.want {
				t.Errorf("Step = %s, want %s", got, tc.want)
			}
			if prog.Total != tc.prog.Total || prog.Converged != tc.prog.Converged || prog.TrustingNew != tc.prog.TrustingNew ||
				!slices.Equal(prog.Stragglers, tc.prog.Stragglers) {
				t.Errorf("progress %+v, want %+v", prog, tc.prog)
			}
		})
	}
}

func TestCanAbort(t *testing.T) {
	for ph, want := range map[store.RotationPhase]bool{
		store.PhasePrepare: true, store.PhaseReissue: true, store.PhaseSwitchTrust: false,
	} {
		if got := CanAbort(ph); got != want {
			t.Errorf("CanAbort(%s) = %v, want %v", ph, got, want)
		}
	}
}
