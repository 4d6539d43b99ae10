package server

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chancery-pki/chancery/ca"
	"github.com/chancery-pki/chancery/clock"
	"github.com/chancery-pki/chancery/rotation"
	"github.com/chancery-pki/chancery/store"
)

// metrics are the manager's Prometheus metrics.
type metrics struct {
	issued   *prometheus.CounterVec
	failures *prometheus.CounterVec
	signing  *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer, st store.Store, live *liveness, clk clock.Clock, progress rotationProgress) *metrics {
	m := &metrics{
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chancery_certificates_issued_total",
			Help: "Node certificates issued, by role and by kind (join or renew).",
		}, []string{"role", "kind"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chancery_failures_total",
			Help: "Refused or failed requests, by reason.",
		}, []string{"reason"}),
		signing: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "chancery_signing_seconds",
			Help:    "Time to issue a node certificate (policy, signing, checks, store write), by backend.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"backend"}),
	}
	reg.MustRegister(m.issued, m.failures, m.signing, &stateCollector{store: st, live: live, clock: clk, progress: progress})
	return m
}

var (
	descNodes = prometheus.NewDesc("chancery_nodes", "Nodes by state (ready, down, removed).", []string{"state"}, nil)
	descRoot  = prometheus.NewDesc("chancery_root_ca_expiry_seconds", "Seconds until the root CA certificate expires.", nil, nil)
	descNode  = prometheus.NewDesc("chancery_node_certificate_expiry_seconds", "Seconds until each node's current certificate expires.", []string{"node_id", "role"}, nil)

	descRotationPhase = prometheus.NewDesc("chancery_root_rotation_phase",
		"1 for the phase of the root rotation in progress (prepare, reissue, switch-trust), 0 for the others; all 0 when none is.", []string{"phase"}, nil)
	descRotationNodes = prometheus.NewDesc("chancery_root_rotation_nodes",
		"During a root rotation, the nodes it waits for (total), those holding a certificate from the new key (converged), trusting the new root (trusting_new), and silent past the grace (stragglers).", []string{"state"}, nil)
)

// rotationProgress returns the phase of the rotation in progress and its
// progress; ok is false when none is.
type rotationProgress func(ctx context.Context, c store.Cluster) (phase store.RotationPhase, p rotation.Progress, ok bool)

// stateCollector reads the store at each scrape.
type stateCollector struct {
	store    store.Store
	live     *liveness
	clock    clock.Clock
	progress rotationProgress
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descNodes
	ch <- descRoot
	ch <- descNode
	ch <- descRotationPhase
	ch <- descRotationNodes
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	now := c.clock.Now()
	if cl, err := c.store.Cluster(ctx); err == nil {
		if roots, err := ca.ParseCertificatesPEM(cl.RootCAPEM); err == nil {
			ch <- prometheus.MustNewConstMetric(descRoot, prometheus.GaugeValue, roots[0].NotAfter.Sub(now).Seconds())
		}
		phase, p, ok := store.RotationPhase(""), rotation.Progress{}, false
		if c.progress != nil {
			phase, p, ok = c.progress(ctx, cl)
		}
		for _, ph := range []store.RotationPhase{store.PhasePrepare, store.PhaseReissue, store.PhaseSwitchTrust} {
			v := 0.0
			if ok && ph == phase {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descRotationPhase, prometheus.GaugeValue, v, string(ph))
		}
		if ok {
			for state, v := range map[string]int{"total": p.Total, "converged": p.Converged, "trusting_new": p.TrustingNew, "stragglers": len(p.Stragglers)} {
				ch <- prometheus.MustNewConstMetric(descRotationNodes, prometheus.GaugeValue, float64(v), state)
			}
		}
	}
	nodes, err := c.store.Nodes(ctx)
	if err != nil {
		return
	}
	counts := map[string]float64{"ready": 0, "down": 0, "removed": 0}
	for _, n := range nodes {
		if n.State == store.StateRemoved {
			counts["removed"]++
			continue
		}
		if c.live.ready(n.ID, now) {
			counts["ready"]++
		} else {
			counts["down"]++
		}
		ch <- prometheus.MustNewConstMetric(descNode, prometheus.GaugeValue, n.CertNotAfter.Sub(now).Seconds(), n.ID, n.Role)
	}
	for state, v := range counts {
		ch <- prometheus.MustNewConstMetric(descNodes, prometheus.GaugeValue, v, state)
	}
}
