//! What instances sharing a database tell each other, on a heartbeat
//! (`cluster.heartbeat_ms`): each records that it is alive and which master
//! key it seals with (so a previous key is retired only once every live
//! instance moved on), rereads the master key files (so a rotation made
//! through another instance reaches it without a restart), learns the
//! number of live instances (each enforces its share of the token request
//! rate), purges expired failed-authentication counters and writes the
//! audit summaries of failed authentications whose window has ended.
use crate::base::config::live_for;
use crate::base::state::AppState;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// One heartbeat. Errors are logged; the next beat tries again.
pub async fn beat(state: &AppState) {
    let st = state.clone();
    let done = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        st.master_key.reload()?;
        let now = st.clock.now();
        st.store
            .instance_heartbeat(&st.instance, &st.master_key.current_id(), now)?;
        let live = st.store.instance_list(now - live_for(&st.config))?;
        st.token_rate.set_instances(live.len());
        // Failure counts come back with each failure, from the database
        // (so every instance's add up); the beat purges expired ones.
        let limiter = &st.auth_failures;
        if limiter.enabled() {
            let over = st
                .store
                .auth_failures_over(limiter.lowest_max(), limiter.window(), now)?;
            if !over.is_empty() {
                tracing::debug!(
                    sources = over.len(),
                    "failed authentications are being slowed down"
                );
            }
        }
        Ok(())
    })
    .await;
    match done {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = format!("{e:#}"), "heartbeat failed"),
        Err(e) => tracing::warn!(error = %e, "heartbeat task failed"),
    }
}

/// Beats until `stop` (or until aborted).
pub async fn run(state: AppState, stop: Arc<AtomicBool>) {
    let every = std::time::Duration::from_millis(state.config.cluster.heartbeat_ms.max(100));
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(every).await;
        beat(&state).await;
        crate::auth::ratelimit::flush_audit(&state, false).await;
    }
}

/// Removes this instance from the table (a clean shutdown).
pub async fn leave(state: &AppState) {
    // Failures counted but not yet audited are written now, not lost.
    crate::auth::ratelimit::flush_audit(state, true).await;
    let id = state.instance.to_string();
    if let Err(e) = state.db(move |s| s.instance_remove(&id)).await {
        tracing::warn!(error = ?e, "could not remove this instance from the table");
    }
}
