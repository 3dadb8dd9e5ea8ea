//! Prometheus metrics: HTTP requests by route and status, their latency,
//! open connections, the actors and child processes alive, and samples
//! left out of live recordings.
//!
//! Rendered in the OpenMetrics text format, which Prometheus scrapes natively.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use streamforge_actors::live::Live;
use streamforge_actors::supervision::{BranchKind, Supervision};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    /// The route pattern (`/vod/{asset}/master.m3u8`), never the raw path, so
    /// that label cardinality stays bounded.
    pub route: String,
    pub status: u16,
}

/// The series of one [`RequestLabels`] (shared with the families: a request
/// observed here is one the families render).
#[derive(Clone, Debug)]
pub struct RequestSeries {
    count: Counter,
    latency: Histogram,
}

impl RequestSeries {
    pub fn observe(&self, elapsed: Duration) {
        self.latency.observe(elapsed.as_secs_f64());
        self.count.inc();
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BranchLabels {
    branch: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProtocolLabels {
    pub protocol: &'static str,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RequestLabels, Histogram>,
    connections_open: Family<ProtocolLabels, Gauge>,
    connections_total: Family<ProtocolLabels, Counter>,
    actors: Family<BranchLabels, Gauge>,
    child_processes: Gauge,
    recording_lost: Counter,
    truncated_pages: Counter,
    webrtc_dropped: Counter,
    /// One render at a time brings `recording_lost` and `truncated_pages`
    /// up to their sources' counts.
    render_lock: std::sync::Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to ~16 s: segment hits are sub-millisecond, blocking reloads take seconds.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.0005, 2.0, 16,
    ))
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("streamforge");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RequestLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let connections_open = Family::<ProtocolLabels, Gauge>::default();
        let connections_total = Family::<ProtocolLabels, Counter>::default();
        let actors = Family::<BranchLabels, Gauge>::default();
        let child_processes = Gauge::default();
        let recording_lost = Counter::default();
        let truncated_pages = Counter::default();
        let webrtc_dropped = Counter::default();
        registry.register(
            "webrtc_datagrams_dropped",
            "WebRTC (WHIP) datagrams dropped because their session fell behind",
            webrtc_dropped.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from request head to response head, by method, route and status",
            latency.clone(),
        );
        registry.register(
            "connections_open",
            "Client connections open now, by protocol",
            connections_open.clone(),
        );
        registry.register(
            "connections",
            "Client connections accepted, by protocol",
            connections_total.clone(),
        );
        registry.register(
            "actors",
            "Work actors alive under each supervision branch",
            actors.clone(),
        );
        registry.register(
            "child_processes",
            "Child processes (ffmpeg, ffprobe) alive",
            child_processes.clone(),
        );
        registry.register(
            "live_recording_samples_lost",
            "Live samples left out of their recording because the store fell behind (the live stream kept them)",
            recording_lost.clone(),
        );
        registry.register(
            "storage_truncated_pages",
            "Pages of mapped segment files read after their file was cut short underneath the server (sent as zeros)",
            truncated_pages.clone(),
        );
        Arc::new(Metrics {
            registry,
            requests,
            latency,
            connections_open,
            connections_total,
            actors,
            child_processes,
            recording_lost,
            truncated_pages,
            webrtc_dropped,
            render_lock: std::sync::Mutex::new(()),
        })
    }

    pub fn observe_request(&self, labels: RequestLabels, elapsed: Duration) {
        self.latency
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        self.requests.get_or_create(&labels).inc();
    }

    /// The counter and histogram of one set of request labels, for a caller
    /// that observes many requests under the same labels (the fast path)
    /// without looking them up each time.
    pub fn request_series(&self, labels: &RequestLabels) -> RequestSeries {
        RequestSeries {
            count: self.requests.get_or_create(labels).clone(),
            latency: self.latency.get_or_create(labels).clone(),
        }
    }

    /// Counts a connection as open until the returned guard drops.
    pub fn connection_opened(self: &Arc<Self>, protocol: &'static str) -> ConnectionGuard {
        let labels = ProtocolLabels { protocol };
        self.connections_total.get_or_create(&labels).inc();
        self.connections_open.get_or_create(&labels).inc();
        ConnectionGuard {
            metrics: Arc::clone(self),
            labels,
        }
    }

    /// Renders every metric, reading the actor and process counts, the
    /// recordings' losses and WHIP's dropped datagrams as of now.
    pub fn render(
        &self,
        supervision: &Supervision,
        live: &Live,
        whip: Option<&streamforge_actors::live::whip::Whip>,
    ) -> String {
        for kind in BranchKind::ALL {
            self.actors
                .get_or_create(&BranchLabels {
                    branch: kind.as_str(),
                })
                .set(supervision.counts().get(kind));
        }
        self.child_processes
            .set(i64::try_from(supervision.processes().len()).unwrap_or(i64::MAX));
        let _one = self
            .render_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let lost = live.recording_samples_lost();
        self.recording_lost
            .inc_by(lost.saturating_sub(self.recording_lost.get()));
        if let Some(whip) = whip {
            let dropped = whip.dropped();
            self.webrtc_dropped
                .inc_by(dropped.saturating_sub(self.webrtc_dropped.get()));
        }
        let truncated = streamforge_actors::storage::truncated_page_faults();
        self.truncated_pages
            .inc_by(truncated.saturating_sub(self.truncated_pages.get()));
        let mut out = String::new();
        if let Err(err) = encode(&mut out, &self.registry) {
            tracing::error!(%err, "cannot encode metrics");
        }
        out
    }
}

pub struct ConnectionGuard {
    metrics: Arc<Metrics>,
    labels: ProtocolLabels,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.metrics
            .connections_open
            .get_or_create(&self.labels)
            .dec();
    }
}
