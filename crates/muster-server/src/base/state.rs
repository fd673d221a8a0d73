//! What every handler and worker shares.
use crate::base::config::Config;
use crate::base::error::ApiError;
use muster_core::clock::Clock;
use muster_store::Store;
use std::sync::Arc;
use tokio::sync::Notify;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub config: Arc<Config>,
    /// The master key ring: seals uploads and secrets at rest; never
    /// logged, never leaves the process.
    pub master_key: Arc<MasterKey>,
    /// Wakes the import worker when an upload is queued.
    pub import_queued: Arc<Notify>,
    /// Wakes requests waiting for an import to end (`wait=`, SSE).
    pub import_finished: Arc<Notify>,
    /// Wakes change-feed long polls and the webhook delivery worker when
    /// a batch of changes commits.
    pub changes_committed: Arc<Notify>,
    /// The gateway's public URL (OAuth issuer), without a trailing slash.
    pub issuer: Arc<str>,
    /// This running instance, as it is named on the imports it claims.
    /// New on every start: a restarted instance is another claimant.
    pub instance: Arc<str>,
    /// Failed client authentications per source address and client id.
    pub auth_failures: Arc<crate::auth::ratelimit::FailureLimiter>,
    /// Token-endpoint requests per client id and source address.
    pub token_rate: Arc<crate::auth::ratelimit::RequestLimiter>,
    /// Login-sync issuers' fetched JWK Sets.
    pub jwks_cache: Arc<crate::auth::login_sync::JwksCache>,
    /// Clients' parsed `private_key_jwt` keys.
    pub assertion_keys: Arc<crate::auth::client_assertion::KeyCache>,
    /// The uploads this instance is receiving (the spool sweep passes them by).
    pub receiving: Arc<crate::jobs::spool::Receiving>,
    /// Each tenant's SCIM User schemas, built from its mappings.
    pub(crate) scim_schemas: Arc<crate::scim::users::SchemaCache>,
    /// The Prometheus metrics (`crate::base::metrics`).
    pub metrics: Arc<crate::base::metrics::Metrics>,
    /// The digest of the bearer token `/metrics` on the main listener
    /// answers to (`metrics.token_file`); none: it is not served there.
    pub metrics_token: Option<muster_core::secret::SecretDigest>,
}

impl AppState {
    /// Runs a blocking store call off the async runtime.
    pub async fn db<R, F>(&self, f: F) -> Result<R, ApiError>
    where
        R: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<R, muster_store::StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        Ok(tokio::task::spawn_blocking(move || f(store.as_ref())).await??)
    }

    /// A short read-only store call on a hot path (a client or person by
    /// its key): run in place when the store's reads are local (see
    /// [`Store::reads_are_local`]), else off the async runtime like
    /// [`AppState::db`]. Never for writes, which wait for a commit.
    pub async fn db_read<R, F>(&self, f: F) -> Result<R, ApiError>
    where
        R: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<R, muster_store::StoreError> + Send + 'static,
    {
        if self.store.reads_are_local() {
            Ok(f(self.store.as_ref())?)
        } else {
            self.db(f).await
        }
    }
}

/// The master key ring (see [`crate::base::master_key`]).
pub use crate::base::master_key::MasterKey;
