//! Limits on authentication (issues 4 and 5).
//!
//! **Failed authentications**, everywhere a credential is checked (the
//! token and revocation endpoints, signed requests, bearer tokens): after
//! `limits.failed_auth_max` failures within `limits.failed_auth_window_seconds`
//! from one source address (`addr:..`), or naming one client id
//! (`client:..`; for signed requests the key id, which is the client id),
//! further attempts get 429 with `Retry-After` until the window has passed.
//! The counters live in the database ([`muster_store::Store::auth_failure_record`]):
//! failures are rare, so one write per failure costs little, and failures
//! spread over several instances add up. The check itself reads memory
//! only, so a successful authentication costs nothing more: each instance
//! learns the keys over the limit from its own failures at once, and from
//! the other instances' at its next heartbeat (`cluster.heartbeat_ms`).
//!
//! **Token requests** (`limits.token_requests_per_second`, 0: off): a
//! cluster-wide rate per client id and per source address at the token
//! endpoint. Each instance enforces its share, the rate divided by the
//! number of live instances (from the heartbeat table), with a token bucket
//! in memory holding one second's share: no database work per grant, and
//! grant throughput scales with instances. A load balancer that spreads
//! requests unevenly makes the effective limit lower, never higher.
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// How many keys are tracked before expired ones are swept out.
const SWEEP_AT: usize = 10_000;

#[derive(Debug)]
pub struct FailureLimiter {
    max: u32,
    window: Duration,
    /// Keys at their limit -> when their window started.
    blocked: Mutex<HashMap<String, DateTime<Utc>>>,
}

impl FailureLimiter {
    pub fn new(max: u32, window_seconds: u64) -> Self {
        Self {
            max,
            window: Duration::seconds(window_seconds.clamp(1, 86_400) as i64),
            blocked: Mutex::new(HashMap::new()),
        }
    }

    pub fn max(&self) -> u32 {
        self.max
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// `Err(seconds)` when one of `keys` is over its limit: try again after
    /// that. Memory only.
    pub fn check(&self, keys: &[String], now: DateTime<Utc>) -> Result<(), u64> {
        if self.max == 0 {
            return Ok(());
        }
        let blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        let mut wait = 0i64;
        for k in keys {
            if let Some(start) = blocked.get(k) {
                let left = (*start + self.window - now).num_seconds();
                if *start + self.window > now {
                    wait = wait.max(left.max(1));
                }
            }
        }
        if wait > 0 {
            Err(wait as u64)
        } else {
            Ok(())
        }
    }

    /// Takes in failure counts (from the database): a key at the limit is
    /// refused from now until its window ends.
    pub fn note(&self, counts: impl IntoIterator<Item = (String, u32, DateTime<Utc>)>) {
        let mut blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        for (k, n, start) in counts {
            if self.max > 0 && n >= self.max {
                blocked.insert(k, start);
            }
        }
    }

    /// Merges the keys the database holds over the limit (every instance's
    /// failures) and forgets windows that ended.
    pub fn sync(&self, over: Vec<(String, DateTime<Utc>)>, now: DateTime<Utc>) {
        let mut blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        let window = self.window;
        blocked.retain(|_, start| *start + window > now);
        if blocked.len() >= SWEEP_AT {
            blocked.clear();
        }
        for (k, start) in over {
            blocked.insert(k, start);
        }
    }
}

/// Counts a failed authentication against `keys` in the database and
/// refuses those keys here at once when they reach the limit. A database
/// error is logged: the failure answer goes out regardless.
pub async fn record_failure(state: &crate::state::AppState, keys: Vec<String>) {
    let limiter = state.auth_failures.clone();
    if limiter.max() == 0 || keys.is_empty() {
        return;
    }
    let (now, window) = (state.clock.now(), limiter.window());
    let k2 = keys.clone();
    match state
        .db(move |s| s.auth_failure_record(&k2, window, now))
        .await
    {
        Ok(counts) => limiter.note(
            keys.into_iter()
                .zip(counts)
                .map(|(k, (n, start))| (k, n, start)),
        ),
        Err(e) => tracing::warn!(error = ?e, "could not count a failed authentication"),
    }
}

/// The limit keys of a request: its source address and, when it names
/// one, the client id.
pub fn keys(peer: Option<std::net::IpAddr>, client_id: Option<&str>) -> Vec<String> {
    let mut out = Vec::with_capacity(2);
    if let Some(ip) = peer {
        out.push(format!("addr:{ip}"));
    }
    if let Some(c) = client_id.filter(|c| !c.is_empty() && c.len() <= 256) {
        out.push(format!("client:{c}"));
    }
    out
}

/// Token-endpoint request rate per key, shared out between instances.
#[derive(Debug)]
pub struct RequestLimiter {
    /// Cluster-wide requests per second per key (0: no limit).
    per_second: u32,
    /// Live instances (at least 1), from the heartbeat table.
    instances: AtomicUsize,
    /// key -> (tokens left, when last refilled)
    buckets: Mutex<HashMap<String, (f64, DateTime<Utc>)>>,
}

impl RequestLimiter {
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second,
            instances: AtomicUsize::new(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn set_instances(&self, n: usize) {
        self.instances.store(n.max(1), Ordering::Relaxed);
    }

    /// This instance's share of the rate, per second.
    fn share(&self) -> f64 {
        f64::from(self.per_second) / self.instances.load(Ordering::Relaxed).max(1) as f64
    }

    /// Takes one request for each key, or `Err(seconds)` to wait.
    pub fn allow(&self, keys: &[String], now: DateTime<Utc>) -> Result<(), u64> {
        if self.per_second == 0 {
            return Ok(());
        }
        let rate = self.share();
        // A bucket holds one second's share, and at least one request.
        let cap = rate.max(1.0);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= SWEEP_AT {
            // A bucket untouched for a second is full again: forget it.
            buckets.retain(|_, (_, at)| now - *at < Duration::seconds(1));
        }
        let mut wait = 0.0f64;
        for k in keys {
            let (tokens, at) = buckets.entry(k.clone()).or_insert((cap, now));
            let elapsed = (now - *at).num_milliseconds().max(0) as f64 / 1000.0;
            *tokens = (*tokens + elapsed * rate).min(cap);
            *at = now;
            if *tokens < 1.0 {
                wait = wait.max((1.0 - *tokens) / rate);
            }
        }
        if wait > 0.0 {
            return Err(wait.ceil().max(1.0) as u64);
        }
        for k in keys {
            if let Some((tokens, _)) = buckets.get_mut(k) {
                *tokens -= 1.0;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn k(s: &str) -> Vec<String> {
        vec![s.to_owned()]
    }

    #[test]
    fn a_key_at_its_limit_is_refused_until_its_window_ends() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let l = FailureLimiter::new(3, 60);
        l.note([("addr:1".to_owned(), 2, t0)]);
        assert!(l.check(&k("addr:1"), t0).is_ok(), "below the limit");
        l.note([("addr:1".to_owned(), 3, t0)]);
        assert_eq!(l.check(&k("addr:1"), t0 + Duration::seconds(10)), Err(50));
        assert!(
            l.check(&k("addr:2"), t0).is_ok(),
            "other keys are not affected"
        );
        assert!(l.check(&k("addr:1"), t0 + Duration::seconds(60)).is_ok());
        // What the database says is over the limit is refused too.
        l.sync(vec![("client:c".into(), t0)], t0 + Duration::seconds(70));
        assert!(l.check(&k("client:c"), t0 + Duration::seconds(1)).is_err());
    }

    #[test]
    fn zero_turns_it_off() {
        let t0 = Utc::now();
        let l = FailureLimiter::new(0, 60);
        l.note([("k".to_owned(), 100, t0)]);
        assert!(l.check(&k("k"), t0).is_ok());
    }

    #[test]
    fn each_instance_enforces_its_share_of_the_request_rate() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let l = RequestLimiter::new(10);
        l.set_instances(2);
        for _ in 0..5 {
            assert!(l.allow(&k("client:a"), t0).is_ok());
        }
        assert_eq!(l.allow(&k("client:a"), t0), Err(1));
        assert!(l.allow(&k("client:b"), t0).is_ok(), "per key");
        // A fifth of a second refills one request at 5 per second.
        assert!(l
            .allow(&k("client:a"), t0 + Duration::milliseconds(200))
            .is_ok());
        assert!(RequestLimiter::new(0).allow(&k("x"), t0).is_ok());
    }
}
