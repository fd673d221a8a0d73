//! Effective dates: every instance applies the status transitions whose day
//! has come (`ops::people::settle_due`, see docs/people.md#effective-dates) at
//! start and every `import.effective_dates_interval_seconds`, for every
//! tenant. Days are UTC days of the injected clock;
//! `POST /api/v1/effective-dates/run` runs it at once for the caller's
//! tenant (operators after a clock or data fix, and tests, which move the
//! clock instead of waiting for days).
use crate::base::state::AppState;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The background task: every tenant, at start and then periodically.
pub async fn run(state: AppState, stop: Arc<AtomicBool>) {
    let every =
        std::time::Duration::from_secs(state.config.import.effective_dates_interval_seconds);
    loop {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match state.db(|s| s.tenant_list()).await {
            Ok(tenants) => {
                for t in tenants {
                    match crate::ops::people::settle_due(&state, &t.id).await {
                        Ok(0) => {}
                        Ok(n) => {
                            tracing::info!(tenant = %t.id, applied = n, "effective-date transitions applied")
                        }
                        Err(e) => {
                            tracing::error!(tenant = %t.id, error = ?e, "cannot apply effective-date transitions")
                        }
                    }
                }
            }
            Err(e) => tracing::error!(error = ?e, "cannot list tenants for effective dates"),
        }
        tokio::time::sleep(every).await;
    }
}
