//! `/metrics` in the Prometheus text format (prometheus-client): requests by route,
//! status and model, the queue, stage latencies, paid calls, tokens, images, estimated
//! cost, references reused and recalled, and degradations by cause.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::Report;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
    model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Label {
    name: String,
}

type Histograms = Family<Label, Histogram, fn() -> Histogram>;

fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 20))
}

/// The service's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Histograms,
    stage_seconds: Histograms,
    /// Requests waiting for a run slot.
    pub queue_depth: Gauge,
    /// Requests running.
    pub running: Gauge,
    paid_calls: Family<Label, Counter>,
    tokens: Family<Label, Counter>,
    images: Counter,
    cost: Counter<f64, AtomicU64>,
    references: Family<Label, Counter>,
    degradations: Family<Label, Counter>,
}

impl Metrics {
    /// Registered and zero.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("iat2i");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route, status and model",
            requests.clone(),
        );
        let request_seconds = Histograms::new_with_constructor(latency);
        registry.register(
            "http_request_seconds",
            "Time to answer, by route",
            request_seconds.clone(),
        );
        let stage_seconds = Histograms::new_with_constructor(latency);
        registry.register(
            "stage_seconds",
            "Pipeline stage latency (gate, search, select, generate, run)",
            stage_seconds.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Requests waiting for a run slot",
            queue_depth.clone(),
        );
        let running = Gauge::default();
        registry.register("runs_in_progress", "Requests running", running.clone());
        let paid_calls = Family::<Label, Counter>::default();
        registry.register(
            "paid_calls",
            "Paid model calls by kind (chat, image)",
            paid_calls.clone(),
        );
        let tokens = Family::<Label, Counter>::default();
        registry.register("tokens", "Tokens by kind (chat, image)", tokens.clone());
        let images = Counter::default();
        registry.register("images_generated", "Images generated", images.clone());
        let cost = Counter::<f64, AtomicU64>::default();
        registry.register(
            "estimated_cost_usd",
            "Estimated cost in US dollars (price table)",
            cost.clone(),
        );
        let references = Family::<Label, Counter>::default();
        registry.register(
            "references",
            "Reference images by how they were had (reused, recalled, stored)",
            references.clone(),
        );
        let degradations = Family::<Label, Counter>::default();
        registry.register(
            "degradations",
            "What runs lost on the way, by cause",
            degradations.clone(),
        );
        Arc::new(Metrics {
            registry,
            requests,
            request_seconds,
            stage_seconds,
            queue_depth,
            running,
            paid_calls,
            tokens,
            images,
            cost,
            references,
            degradations,
        })
    }

    /// One answered request.
    pub fn request(&self, route: &str, status: u16, model: &str, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                status,
                model: model.to_string(),
            })
            .inc();
        self.request_seconds
            .get_or_create(&Label {
                name: route.to_string(),
            })
            .observe(seconds);
    }

    fn add(family: &Family<Label, Counter>, name: &str, n: u64) {
        if n > 0 {
            family
                .get_or_create(&Label {
                    name: name.to_string(),
                })
                .inc_by(n);
        }
    }

    fn stage(&self, name: &str, ms: u64) {
        self.stage_seconds
            .get_or_create(&Label {
                name: name.to_string(),
            })
            .observe(ms as f64 / 1000.0);
    }

    /// What one run did and spent (`cost`: its estimate, when priced).
    pub fn run(&self, report: &Report, cost: Option<f64>) {
        let u = &report.usage;
        Self::add(&self.paid_calls, "chat", u64::from(u.lmm_total.calls));
        let image_calls = report
            .rounds
            .iter()
            .filter(|r| r.image_usage.is_some() || r.image.is_some())
            .count() as u64;
        Self::add(&self.paid_calls, "image", image_calls);
        Self::add(&self.tokens, "chat", u.lmm_total.total_tokens);
        Self::add(&self.tokens, "image", u.images.total_tokens);
        self.images.inc_by(u64::from(u.images.images));
        if let Some(c) = cost.filter(|c| c.is_finite() && *c > 0.0) {
            self.cost.inc_by(c);
        }
        for r in &report.retrievals {
            Self::add(
                &self.references,
                "reused",
                r.selection.as_ref().map_or(0, |s| s.memory.reused as u64),
            );
            Self::add(
                &self.references,
                "recalled",
                r.selection.as_ref().map_or(0, |s| s.memory.recalled as u64),
            );
            Self::add(
                &self.references,
                "stored",
                r.selection.as_ref().map_or(0, |s| s.memory.stored as u64),
            );
            self.stage("search", r.search_ms);
            self.stage("select", r.select_ms);
        }
        for round in &report.rounds {
            self.stage("generate", round.generate_ms);
        }
        self.stage("run", report.total_ms);
        for d in &report.degraded {
            let cause = serde_json::to_value(d.cause)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "other".into());
            Self::add(&self.degradations, &cause, 1);
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an error would only leave the page short.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
