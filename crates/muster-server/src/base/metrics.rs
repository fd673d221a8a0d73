//! Prometheus metrics, in the text exposition format, through the
//! `prometheus-client` crate (docs/operations.md#metrics).
//!
//! Labels hold only what is bounded and public: route templates (never a
//! concrete path, which may name an employee), methods, statuses, states,
//! outcomes, authentication methods and subscription ids. No person data,
//! no tenant secret, no client id.
//!
//! Served at `/metrics` on a separate listener (`metrics.listen`) or on the
//! main one behind a bearer token (`metrics.token_file`); neither by
//! default.
use crate::base::state::AppState;
use axum::body::Body;
use axum::extract::{MatchedPath, State};
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use muster_core::secret;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    method: &'static str,
    route: Arc<str>,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    method: &'static str,
    route: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabel {
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    subscription: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SubscriptionLabel {
    subscription: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabel {
    state: &'static str,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Every metric the gateway keeps, and the registry that prints them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<RouteLabels, Histogram>,
    imports_finished: Family<StateLabel, Counter>,
    import_rows: Family<OutcomeLabel, Counter>,
    import_validation: Histogram,
    import_apply: Histogram,
    imports_pending: Gauge,
    deliveries: Family<DeliveryLabels, Counter>,
    delivery_lag: Family<SubscriptionLabel, FloatGauge>,
    quarantined: Family<SubscriptionLabel, Gauge>,
    token_grants: Family<MethodLabel, Counter>,
    auth_failures: Counter,
    db_connections: Family<PoolLabel, Gauge>,
    db_connections_max: Gauge,
}

/// Seconds from 1 ms to about 65 s, doubling: requests and phases alike.
fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

impl Metrics {
    pub fn new(backend: &'static str) -> Metrics {
        let mut r = Registry::with_prefix("muster");
        let http_requests = Family::<HttpLabels, Counter>::default();
        r.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            http_requests.clone(),
        );
        let http_duration =
            Family::<RouteLabels, Histogram>::new_with_constructor(seconds_histogram as fn() -> _);
        r.register(
            "http_request_duration_seconds",
            "Time to the response head, by route template and method",
            http_duration.clone(),
        );
        let imports_finished = Family::<StateLabel, Counter>::default();
        r.register(
            "imports_finished",
            "Imports that reached a final state, by state",
            imports_finished.clone(),
        );
        let import_rows = Family::<OutcomeLabel, Counter>::default();
        r.register(
            "import_rows",
            "Rows of succeeded imports, by outcome",
            import_rows.clone(),
        );
        let import_validation = seconds_histogram();
        r.register(
            "import_validation_duration_seconds",
            "Duration of an import's validation pass",
            import_validation.clone(),
        );
        let import_apply = seconds_histogram();
        r.register(
            "import_apply_duration_seconds",
            "Duration of an import's apply pass (deactivations included)",
            import_apply.clone(),
        );
        let imports_pending = Gauge::default();
        r.register(
            "imports_pending",
            "Imports not final yet, of every instance (read at each scrape)",
            imports_pending.clone(),
        );
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        r.register(
            "webhook_deliveries",
            "Webhook delivery attempts by subscription and outcome (delivered, failed, dead, gone)",
            deliveries.clone(),
        );
        let delivery_lag = Family::<SubscriptionLabel, FloatGauge>::default();
        r.register(
            "webhook_delivery_lag_seconds",
            "Seconds from a change's commit to its delivery, at the subscription's latest delivery",
            delivery_lag.clone(),
        );
        let quarantined = Family::<SubscriptionLabel, Gauge>::default();
        r.register(
            "subscription_quarantined",
            "1 while a subscription's target is quarantined (it fails as a whole and is tried hourly, then daily), else 0",
            quarantined.clone(),
        );
        let token_grants = Family::<MethodLabel, Counter>::default();
        r.register(
            "token_grants",
            "Access tokens granted at /oauth2/token, by client authentication method",
            token_grants.clone(),
        );
        let auth_failures = Counter::default();
        r.register(
            "auth_failures",
            "Failed authentications counted as guessing: a wrong secret, assertion, signature or token",
            auth_failures.clone(),
        );
        let db_connections = Family::<PoolLabel, Gauge>::default();
        r.register(
            "db_connections",
            "Database connections of this instance's pool, in use or idle (read at each scrape)",
            db_connections.clone(),
        );
        let db_connections_max = Gauge::default();
        r.register(
            "db_connections_max",
            "The pool's limit (0: opened on demand)",
            db_connections_max.clone(),
        );
        r.register(
            "build",
            "The running build",
            Info::new(vec![
                ("version", env!("CARGO_PKG_VERSION")),
                ("backend", backend),
            ]),
        );
        Metrics {
            registry: r,
            http_requests,
            http_duration,
            imports_finished,
            import_rows,
            import_validation,
            import_apply,
            imports_pending,
            deliveries,
            delivery_lag,
            quarantined,
            token_grants,
            auth_failures,
            db_connections,
            db_connections_max,
        }
    }

    pub fn import_finished(&self, state: muster_proto::ImportState) {
        self.imports_finished
            .get_or_create(&StateLabel {
                state: state.as_str(),
            })
            .inc();
    }

    pub fn import_rows(&self, c: &muster_store::Counts) {
        for (outcome, n) in [
            ("created", c.created),
            ("updated", c.updated),
            ("unchanged", c.unchanged),
            ("deactivated", c.deactivated),
            ("failed", c.failed),
        ] {
            self.import_rows
                .get_or_create(&OutcomeLabel { outcome })
                .inc_by(n);
        }
    }

    pub fn import_validated(&self, took: std::time::Duration) {
        self.import_validation.observe(took.as_secs_f64());
    }

    pub fn import_applied(&self, took: std::time::Duration) {
        self.import_apply.observe(took.as_secs_f64());
    }

    pub fn delivery(&self, subscription: &str, outcome: &str) {
        self.deliveries
            .get_or_create(&DeliveryLabels {
                subscription: subscription.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Whether a subscription's target is quarantined now, for an alert.
    pub fn quarantined(&self, subscription: &str, on: bool) {
        self.quarantined
            .get_or_create(&SubscriptionLabel {
                subscription: subscription.to_owned(),
            })
            .set(i64::from(on));
    }

    /// A delivery of a change committed at `committed` (its audit time).
    pub fn delivered(
        &self,
        subscription: &str,
        committed: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) {
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(committed) {
            let lag = (now - t.with_timezone(&chrono::Utc))
                .num_milliseconds()
                .max(0);
            self.delivery_lag
                .get_or_create(&SubscriptionLabel {
                    subscription: subscription.to_owned(),
                })
                .set(lag as f64 / 1000.0);
        }
    }

    pub fn token_granted(&self, method: &'static str) {
        self.token_grants
            .get_or_create(&MethodLabel { method })
            .inc();
    }

    pub fn auth_failed(&self) {
        self.auth_failures.inc();
    }

    /// The text exposition of every metric.
    fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String does not fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// A method as a label: the standard ones, anything else `other`.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Counts and times every request by its route template.
pub async fn track(State(m): State<Arc<Metrics>>, req: Request<Body>, next: Next) -> Response {
    let method = method_label(req.method());
    let route: Arc<str> = match req.extensions().get::<MatchedPath>() {
        Some(p) => p.as_str().into(),
        None => "unmatched".into(),
    };
    let started = Instant::now();
    let resp = next.run(req).await;
    let took = started.elapsed().as_secs_f64();
    m.http_duration
        .get_or_create(&RouteLabels {
            method,
            route: route.clone(),
        })
        .observe(took);
    m.http_requests
        .get_or_create(&HttpLabels {
            method,
            route,
            status: resp.status().as_u16(),
        })
        .inc();
    resp
}

/// Reads what is measured at scrape time, then prints every metric.
async fn scrape(state: &AppState) -> Response {
    let m = &state.metrics;
    let pool = state.store.pool_status();
    m.db_connections
        .get_or_create(&PoolLabel { state: "in_use" })
        .set(pool.in_use as i64);
    m.db_connections
        .get_or_create(&PoolLabel { state: "idle" })
        .set(pool.idle as i64);
    m.db_connections_max.set(pool.max as i64);
    match state.db(|s| s.import_pending()).await {
        Ok(p) => {
            m.imports_pending.set(p.len() as i64);
        }
        Err(e) => tracing::warn!(error = ?e, "metrics: cannot count the pending imports"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
        .into_response()
}

/// `/metrics` on the main listener: only with the configured bearer token
/// (`metrics.token_file`), else as if the route did not exist.
pub async fn guarded(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(want) = &state.metrics_token else {
        return crate::base::error::ApiError::NotFound("route").into_response();
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| secret::digest(t.trim()));
    match given {
        Some(d) if secret::digest_eq(d.as_ref(), want.as_ref()) => scrape(&state).await,
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "the metrics token is required",
        )
            .into_response(),
    }
}

/// `/metrics` on the separate metrics listener, which has no other route.
pub async fn open(State(state): State<AppState>) -> Response {
    scrape(&state).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_family_and_no_value_of_a_person() {
        let m = Metrics::new("sqlite");
        m.import_finished(muster_proto::ImportState::Succeeded);
        m.token_granted("client_secret_basic");
        m.delivery("0193-sub", "delivered");
        m.delivered(
            "0193-sub",
            "2026-12-04T10:00:00Z",
            "2026-12-04T10:00:02.5Z".parse().unwrap(),
        );
        let text = m.encode();
        for needle in [
            "muster_imports_finished_total{state=\"succeeded\"} 1",
            "muster_token_grants_total{method=\"client_secret_basic\"} 1",
            "muster_webhook_deliveries_total{subscription=\"0193-sub\",outcome=\"delivered\"} 1",
            "muster_webhook_delivery_lag_seconds{subscription=\"0193-sub\"} 2.5",
            "muster_build_info{version=",
            "# EOF",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
    }
}
