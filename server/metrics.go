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

func newMetrics(reg prometheus.Registerer, st store.Store, clk clock.Clock, progress rotationProgress, stats *nodeStatsCache) *metrics {
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
	reg.MustRegister(m.issued, m.failures, m.signing, &stateCollector{store: st, clock: clk, progress: progress, stats: stats})
	return m
}

var (
	descNodes = prometheus.NewDesc("chancery_nodes", "Nodes by state (ready, down, removed), as of chancery_node_stats_age_seconds ago.", []string{"state"}, nil)
	descRoot  = prometheus.NewDesc("chancery_root_ca_expiry_seconds", "Seconds until the root CA certificate expires.", nil, nil)
	descNode  = prometheus.NewDesc("chancery_node_certificate_expiry_seconds",
		"Seconds until the current certificates of the nodes that are not removed expire, by role: a histogram whose first bucket (le=0) counts expired ones. The nodes are as read chancery_node_stats_age_seconds ago; the time to expiry is now's.", []string{"role"}, nil)
	descSoonest = prometheus.NewDesc("chancery_node_certificate_soonest_expiry_seconds",
		"Seconds until the first current node certificate of each role expires (negative once expired); absent for a role with no node. chancery node ls and node inspect show each node's.", []string{"role"}, nil)
	descStatsAge = prometheus.NewDesc("chancery_node_stats_age_seconds",
		"Seconds since the nodes behind chancery_nodes and the certificate expiry metrics were read from the store; they are read again in the background once older than the refresh interval.", nil, nil)

	descRotationPhase = prometheus.NewDesc("chancery_root_rotation_phase",
		"1 for the phase of the root rotation in progress (prepare, reissue, switch-trust), 0 for the others; all 0 when none is.", []string{"phase"}, nil)
	descRotationNodes = prometheus.NewDesc("chancery_root_rotation_nodes",
		"During a root rotation, the nodes it waits for (total), those holding a certificate from the new key (converged), trusting the new root (trusting_new), and silent past the grace (stragglers).", []string{"state"}, nil)
)

// rotationProgress returns the phase of the rotation in progress and its
// progress; ok is false when none is.
type rotationProgress func(ctx context.Context, c store.Cluster) (phase store.RotationPhase, p rotation.Progress, ok bool)

// stateCollector reads the cluster record at each scrape, and the nodes
// from stats, a copy refreshed in the background: a scrape's cost does not
// grow with the number of nodes, nor its number of series.
type stateCollector struct {
	store    store.Store
	clock    clock.Clock
	progress rotationProgress
	stats    *nodeStatsCache
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descNodes
	ch <- descRoot
	ch <- descNode
	ch <- descSoonest
	ch <- descStatsAge
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
	stats, err := c.stats.get(ctx)
	if err != nil {
		return
	}
	for state, v := range stats.states {
		ch <- prometheus.MustNewConstMetric(descNodes, prometheus.GaugeValue, float64(v), state)
	}
	for _, role := range []string{"manager", "worker"} {
		e := stats.expiry(role, now)
		ch <- prometheus.MustNewConstHistogram(descNode, e.count, e.sum, e.buckets, role)
		if e.count > 0 {
			ch <- prometheus.MustNewConstMetric(descSoonest, prometheus.GaugeValue, e.soonest, role)
		}
	}
	ch <- prometheus.MustNewConstMetric(descStatsAge, prometheus.GaugeValue, now.Sub(stats.at).Seconds())
}
