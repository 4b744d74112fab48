package main

import (
	"context"
	"time"

	"github.com/fastsession/sessions"
	"github.com/prometheus/client_golang/prometheus"
)

// Metric names. Counters give rates in PromQL: sessions created per second
// is rate(fastsession_session_events_total{kind="created"}[5m]), forged or
// stale cookies per second rate(...{kind="rejected"}[5m]), the store's error
// ratio rate(fastsession_store_call_errors_total[5m]) /
// rate(fastsession_store_call_duration_seconds_count[5m]).
const (
	metricEvents     = "fastsession_session_events_total"
	metricAge        = "fastsession_session_age_seconds"
	metricCallTime   = "fastsession_store_call_duration_seconds"
	metricCallErrors = "fastsession_store_call_errors_total"
	metricLive       = "fastsession_sessions_live"
)

// eventKinds are the kinds counted from the start, at zero, so that rate()
// sees the first event of each.
var eventKinds = []sessions.EventKind{
	sessions.EventCreated, sessions.EventRegenerated, sessions.EventDestroyed,
	sessions.EventExpired, sessions.EventUnknown, sessions.EventRejected,
	sessions.EventStoreError,
}

// sessionMetrics is a sessions.Observer that feeds Prometheus collectors.
// Its methods run on the request's goroutine: they only add to counters and
// histograms, which are safe for concurrent use, and start no goroutine.
type sessionMetrics struct {
	events   *prometheus.CounterVec
	ages     *prometheus.HistogramVec
	calls    *prometheus.HistogramVec
	callErrs *prometheus.CounterVec

	// byKind caches the counter of each event kind, and ageByKind the age
	// histogram of the kinds that end or renew a session (nil otherwise),
	// so that an event costs no label lookup.
	byKind    [sessions.EventStoreError + 1]prometheus.Counter
	ageByKind [sessions.EventStoreError + 1]prometheus.Observer
}

var _ sessions.Observer = (*sessionMetrics)(nil)

// newSessionMetrics makes the collectors and registers them on reg.
func newSessionMetrics(reg prometheus.Registerer) *sessionMetrics {
	m := &sessionMetrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricEvents,
			Help: "Session events by kind: created, regenerated, destroyed, expired, unknown, rejected, store_error.",
		}, []string{"kind"}),
		ages: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: metricAge,
			Help: "How long sessions had lived when destroyed, expired or regenerated.",
			// From ten seconds to the default absolute lifetime of a day.
			Buckets: []float64{10, 60, 300, 900, 1800, 3600, 7200, 4 * 3600, 8 * 3600, 12 * 3600, 24 * 3600},
		}, []string{"kind"}),
		calls: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: metricCallTime,
			Help: "Duration of store calls by operation: load, save, save_delta, update, delete, touch, lock, link_user, unlink_user.",
			// From 50µs (memory) to over a second (a struggling database).
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"op"}),
		callErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricCallErrors,
			Help: "Store calls that returned an error, by operation.",
		}, []string{"op"}),
	}
	reg.MustRegister(m.events, m.ages, m.calls, m.callErrs)
	for _, k := range eventKinds {
		m.byKind[k] = m.events.WithLabelValues(k.String())
	}
	for _, k := range []sessions.EventKind{sessions.EventDestroyed, sessions.EventExpired, sessions.EventRegenerated} {
		m.ageByKind[k] = m.ages.WithLabelValues(k.String())
	}
	return m
}

// SessionEvent counts the event and, for a session that ends or gets a new
// ID, records how long it had lived. Age is 0 when unknown (a session ended
// by the Manager, outside a request): such events are counted, not timed.
func (m *sessionMetrics) SessionEvent(_ context.Context, e sessions.Event) {
	if e.Kind <= 0 || int(e.Kind) >= len(m.byKind) || m.byKind[e.Kind] == nil {
		m.events.WithLabelValues(e.Kind.String()).Inc() // a kind added later
		return
	}
	m.byKind[e.Kind].Inc()
	if h := m.ageByKind[e.Kind]; h != nil && e.Age > 0 {
		h.Observe(e.Age.Seconds())
	}
}

// StoreCall times the call and counts it as an error if it failed. The
// error counter of an operation is created at zero with its first call, so
// that rate() sees its first error.
func (m *sessionMetrics) StoreCall(_ context.Context, op string, d time.Duration, err error) {
	m.calls.WithLabelValues(op).Observe(d.Seconds())
	errs := m.callErrs.WithLabelValues(op)
	if err != nil {
		errs.Inc()
	}
}

// liveSessions is the gauge fastsession_sessions_live: the number of live
// sessions, counted when Prometheus scrapes, by walking the store with
// Manager.Range.
//
// Range reads every session in the store, so a scrape costs time in
// proportion to their number: fine for the memory store and for moderate
// numbers (tens of thousands) elsewhere. For millions of sessions, count
// them in the store instead (Redis DBSIZE on a dedicated database, SELECT
// count(*) in SQL), or follow the rate of created sessions from the events
// counter.
type liveSessions struct {
	mgr     *sessions.Manager
	desc    *prometheus.Desc
	timeout time.Duration
}

func newLiveSessions(mgr *sessions.Manager) *liveSessions {
	return &liveSessions{
		mgr:     mgr,
		desc:    prometheus.NewDesc(metricLive, "Live sessions in the store, counted at scrape time.", nil, nil),
		timeout: 10 * time.Second,
	}
}

// Describe implements prometheus.Collector.
func (l *liveSessions) Describe(ch chan<- *prometheus.Desc) { ch <- l.desc }

// Collect implements prometheus.Collector. A store that cannot list its
// sessions, or fails to, makes the scrape report the error instead of a
// wrong number.
func (l *liveSessions) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	n := 0
	err := l.mgr.Range(ctx, func(sessions.SessionInfo) bool {
		n++
		return true
	})
	if err != nil {
		ch <- prometheus.NewInvalidMetric(l.desc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(l.desc, prometheus.GaugeValue, float64(n))
}
