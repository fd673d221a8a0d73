//! The installation's master key: rotated (a new current key, every sealed
//! value sealed again) and its previous keys retired, by the operator only
//! (the master key is not a tenant's). The ring itself is
//! `base::master_key`.
use crate::auth::Caller;
use crate::base::error::{ApiError, ApiResult};
use crate::base::master_key::{reseal_all, uploads_on_previous_keys, ResealReport};
use crate::base::state::AppState;
use crate::ops::require_operator;
use serde::Serialize;
use std::collections::BTreeMap;

/// The master key ring as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MasterKeyStatus {
    /// The id of the key new values are sealed under.
    pub current: String,
    /// Ids of previous keys that still open older values.
    pub previous: Vec<String>,
    /// Live instances and the key each seals with.
    pub instances: BTreeMap<String, String>,
}

/// What a rotation or retirement did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MasterKeyChanged {
    #[serde(flatten)]
    pub status: MasterKeyStatus,
    /// Previous keys retired by this call.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<String>,
    pub reseal: ResealReport,
    /// Uploads waiting in the spool under a previous key (retire once
    /// they are processed).
    pub uploads_on_previous_keys: u64,
}

async fn status(state: &AppState) -> ApiResult<MasterKeyStatus> {
    let since = state.clock.now() - crate::base::config::live_for(&state.config);
    let instances = state.db(move |s| s.instance_list(since)).await?;
    let ids = state.master_key.key_ids();
    Ok(MasterKeyStatus {
        current: ids[0].clone(),
        previous: ids[1..].to_vec(),
        instances: instances
            .into_iter()
            .map(|i| (i.id, i.master_key_id))
            .collect(),
    })
}

/// The ring and the key each live instance seals with.
pub(crate) async fn get(state: &AppState, caller: &Caller) -> ApiResult<MasterKeyStatus> {
    require_operator(caller)?;
    status(state).await
}

/// Runs a blocking closure over the state (file and store work).
async fn blocking<R: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&AppState) -> anyhow::Result<R> + Send + 'static,
) -> ApiResult<R> {
    let st = state.clone();
    tokio::task::spawn_blocking(move || f(&st))
        .await?
        .map_err(ApiError::Internal)
}

/// A new current key: written to the key files, every sealed value in the
/// database sealed again under it; the previous key still opens what is
/// left (uploads in the spool) until it is retired.
pub(crate) async fn rotate(state: &AppState, caller: &Caller) -> ApiResult<MasterKeyChanged> {
    require_operator(caller)?;
    let _one = state.master_key.changing.lock().await;
    let before = state.master_key.current_id();
    let (reseal, waiting) = blocking(state, |st| {
        st.master_key.rotate_files()?;
        // This instance seals with the new key from now on; say so at once.
        let _ =
            st.store
                .instance_heartbeat(&st.instance, &st.master_key.current_id(), st.clock.now());
        let reseal = reseal_all(st.store.as_ref(), &st.master_key)?;
        Ok((reseal, uploads_on_previous_keys(st)?.len() as u64))
    })
    .await?;
    let after = state.master_key.current_id();
    crate::ops::audit::audit_only(
        state,
        caller,
        "master_key.rotated",
        serde_json::json!({
            "key": after,
            "previous": before,
            "resealed": reseal.resealed,
            "unopenable": reseal.unopenable.len(),
        }),
    )
    .await?;
    Ok(MasterKeyChanged {
        status: status(state).await?,
        retired: Vec::new(),
        reseal,
        uploads_on_previous_keys: waiting,
    })
}

/// Forgets the previous keys, once every instance seals with the current
/// one and nothing is left that only a previous key opens.
pub(crate) async fn retire_previous(
    state: &AppState,
    caller: &Caller,
) -> ApiResult<MasterKeyChanged> {
    require_operator(caller)?;
    let _one = state.master_key.changing.lock().await;
    blocking(state, |st| st.master_key.reload().map(|_| ())).await?;
    let current = state.master_key.current_id();
    let now_status = status(state).await?;
    if let Some((id, key)) = now_status.instances.iter().find(|(_, k)| **k != current) {
        return Err(ApiError::Conflict(format!(
            "instance {id} still seals with master key {key}, not {current}: retry once it \
             has reloaded (within cluster.heartbeat_ms)"
        )));
    }
    let (reseal, waiting) = blocking(state, |st| {
        let reseal = reseal_all(st.store.as_ref(), &st.master_key)?;
        Ok((reseal, uploads_on_previous_keys(st)?))
    })
    .await?;
    if !waiting.is_empty() {
        return Err(ApiError::Conflict(format!(
            "{} upload(s) waiting to be imported were sealed under a previous master key; \
             retry once they are processed",
            waiting.len()
        )));
    }
    if !reseal.unopenable.is_empty() || reseal.changed_meanwhile > 0 {
        return Err(ApiError::Conflict(format!(
            "{} sealed value(s) do not open with any key and {} changed during the pass; \
             nothing was retired (see the log)",
            reseal.unopenable.len(),
            reseal.changed_meanwhile
        )));
    }
    let retired = blocking(state, |st| st.master_key.retire_files()).await?;
    if !retired.is_empty() {
        crate::ops::audit::audit_only(
            state,
            caller,
            "master_key.previous_retired",
            serde_json::json!({ "keys": retired }),
        )
        .await?;
    }
    Ok(MasterKeyChanged {
        status: status(state).await?,
        retired,
        reseal,
        uploads_on_previous_keys: 0,
    })
}
