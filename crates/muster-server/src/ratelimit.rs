//! Failed-authentication limits at the token endpoint: after `max` failures
//! within `window` from one source address, or naming one client id, further
//! attempts get 429 with `Retry-After` until the window has passed. Guessing
//! a secret then costs a window per handful of tries; a legitimate client
//! that authenticates is not slowed at all.
//!
//! The counters live in this process. With several instances each counts
//! its own, so the effective limit is `max` per instance.
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use std::sync::Mutex;

/// How many keys are tracked before expired ones are swept out.
const SWEEP_AT: usize = 10_000;

#[derive(Debug)]
pub struct FailureLimiter {
    max: u32,
    window: Duration,
    /// key -> (start of its window, failures in it)
    seen: Mutex<HashMap<String, (DateTime<Utc>, u32)>>,
}

impl FailureLimiter {
    pub fn new(max: u32, window_seconds: u64) -> Self {
        Self {
            max,
            window: Duration::seconds(window_seconds.min(86_400) as i64),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(seconds)` when `key` is over its limit: try again after that.
    pub fn check(&self, key: &str, now: DateTime<Utc>) -> Result<(), u64> {
        if self.max == 0 {
            return Ok(());
        }
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        match seen.get(key) {
            Some((start, n)) if *n >= self.max && now < *start + self.window => {
                let left = (*start + self.window - now).num_seconds().max(1);
                Err(left as u64)
            }
            _ => Ok(()),
        }
    }

    pub fn failed(&self, key: &str, now: DateTime<Utc>) {
        if self.max == 0 {
            return;
        }
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= SWEEP_AT {
            let window = self.window;
            seen.retain(|_, (start, _)| now < *start + window);
        }
        let e = seen.entry(key.to_owned()).or_insert((now, 0));
        if now >= e.0 + self.window {
            *e = (now, 0);
        }
        e.1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_key_is_refused_after_max_failures_until_its_window_ends() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let l = FailureLimiter::new(3, 60);
        for _ in 0..3 {
            assert!(l.check("addr:1", t0).is_ok());
            l.failed("addr:1", t0);
        }
        assert_eq!(l.check("addr:1", t0 + Duration::seconds(10)), Err(50));
        assert!(l.check("addr:2", t0).is_ok(), "other keys are not affected");
        assert!(l.check("addr:1", t0 + Duration::seconds(60)).is_ok());
        l.failed("addr:1", t0 + Duration::seconds(61));
        assert!(
            l.check("addr:1", t0 + Duration::seconds(61)).is_ok(),
            "a new window"
        );
    }

    #[test]
    fn zero_turns_it_off() {
        let t0 = Utc::now();
        let l = FailureLimiter::new(0, 60);
        for _ in 0..100 {
            l.failed("k", t0);
        }
        assert!(l.check("k", t0).is_ok());
    }
}
