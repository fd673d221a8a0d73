//! The assembly: the router of every door, the background jobs started beside
//! it, and the two ways to run it ([`serve`] for the CLI, [`spawn`] for tests).
pub mod openapi;

use crate::base::{config, data_dir, error, master_key, metrics, state, telemetry};
use data_dir::write_private;

use crate::api::{
    admin, admin_tokens, audit as audit_api, client_keys, imports, issuers, keys, login_sync,
    people, subscriptions,
};
use crate::auth::{oauth, ratelimit, signing};
use crate::http::{bodies, transport};
use crate::jobs::{cluster, delivery, schedule, spool, worker};
use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use axum::Router;
use master_key::MasterKey;
use muster_core::clock::{Clock, SystemClock};
use muster_core::secret;
use muster_proto::AuditVerification;
use muster_store::Store;
use muster_store_postgres::PostgresStore;
use muster_store_sqlite::SqliteStore;
use state::AppState;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub fn router(state: AppState) -> Router {
    let small = bodies::SmallBody(state.config.limits.max_unauthenticated_body_bytes);
    let api = Router::new()
        .route(
            "/tenants",
            post(admin::tenant_create).get(admin::tenant_list),
        )
        .route(
            "/clients",
            post(admin::client_create).get(admin::client_list),
        )
        .route("/clients/{client_id}", get(admin::client_get))
        .route("/clients/{client_id}/disable", post(admin::client_disable))
        .route("/clients/{client_id}/enable", post(admin::client_enable))
        .route(
            "/clients/{client_id}/rotate-secret",
            post(admin::client_rotate_secret),
        )
        .route(
            "/clients/{client_id}/scim-token",
            post(admin::client_scim_token),
        )
        .route(
            "/clients/{client_id}/read-policy",
            get(admin::read_policy_get).put(admin::read_policy_put),
        )
        .route(
            "/clients/{client_id}/intake-policy",
            get(keys::intake_policy_get).put(keys::intake_policy_put),
        )
        .route("/keys", get(keys::key_list).post(keys::key_create))
        .route("/keys/{id}", get(keys::key_get))
        .route("/keys/{id}/rotate", post(keys::key_rotate))
        .route("/keys/{id}/revoke", post(keys::key_revoke))
        .route("/mappings", get(admin::mapping_list))
        .route(
            "/mappings/{name}",
            put(admin::mapping_put).get(admin::mapping_get),
        )
        .route("/mappings/{name}/versions", get(admin::mapping_versions))
        .route(
            "/imports",
            post(imports::import_create).get(imports::import_list),
        )
        .route("/imports/{id}", get(imports::import_get))
        .route("/imports/{id}/errors", get(imports::import_errors))
        .route("/imports/{id}/events", get(imports::import_events))
        .route("/people", get(people::person_list))
        .route("/people/sync", post(people::people_sync))
        .route(
            "/people/{external_id}",
            put(people::person_put).get(people::person_get),
        )
        // Admin API tokens: minted with a lifetime, listed, revoked.
        .route(
            "/admin/tokens",
            post(admin_tokens::admin_token_create).get(admin_tokens::admin_token_list),
        )
        .route(
            "/admin/tokens/{id}/revoke",
            post(admin_tokens::admin_token_revoke),
        )
        // The installation's master key (docs/intake.md#master-key-rotation): operator only.
        .route(
            "/admin/master-key",
            get(crate::api::master_key::master_key_get),
        )
        .route(
            "/admin/master-key/rotate",
            post(crate::api::master_key::master_key_rotate),
        )
        .route(
            "/admin/master-key/retire-previous",
            post(crate::api::master_key::master_key_retire_previous),
        )
        .route("/audit", get(audit_api::audit_list))
        .route("/audit/verify", get(audit_api::audit_verify))
        .route(
            "/clients/{client_id}/keys",
            get(client_keys::client_keys_get),
        )
        .route(
            "/clients/{client_id}/keys/hmac",
            post(client_keys::client_hmac_rotate).delete(client_keys::client_hmac_delete),
        )
        .route(
            "/clients/{client_id}/keys/ed25519",
            put(client_keys::client_ed25519_put).delete(client_keys::client_ed25519_delete),
        )
        .route(
            "/clients/{client_id}/keys/jwt",
            put(client_keys::client_jwt_keys_put).delete(client_keys::client_jwt_keys_delete),
        )
        // Login sync (docs/authentication.md#login-sync): issuers, and the endpoint their JWTs call.
        .route(
            "/issuers",
            post(issuers::issuer_create).get(issuers::issuer_list),
        )
        .route(
            "/issuers/{name}",
            get(issuers::issuer_get).delete(issuers::issuer_delete),
        )
        // Reachable before authentication: a small body limit.
        .route(
            "/login-sync",
            post(login_sync::login_sync).layer(axum::middleware::from_fn_with_state(
                small,
                bodies::limit_problem,
            )),
        )
        .route(
            "/tenants/{tenant}/login-sync",
            post(login_sync::tenant_login_sync).layer(axum::middleware::from_fn_with_state(
                small,
                bodies::limit_problem,
            )),
        )
        // Change events and webhook subscriptions (docs/events.md).
        .route("/changes", get(subscriptions::changes_list))
        .route(
            "/subscriptions",
            post(subscriptions::subscription_create).get(subscriptions::subscription_list),
        )
        .route(
            "/subscriptions/{id}",
            get(subscriptions::subscription_get)
                .patch(subscriptions::subscription_update)
                .delete(subscriptions::subscription_delete),
        )
        .route(
            "/subscriptions/{id}/rotate-secret",
            post(subscriptions::subscription_rotate_secret),
        )
        .route(
            "/subscriptions/{id}/deliveries",
            get(subscriptions::subscription_deliveries),
        )
        .route(
            "/subscriptions/{id}/redeliver",
            post(subscriptions::subscription_redeliver),
        )
        .route(
            "/subscriptions/{id}/reconcile",
            post(subscriptions::subscription_reconcile),
        )
        // Effective dates (docs/people.md#effective-dates).
        .route("/effective-dates/run", post(people::effective_dates_run))
        // RFC 9421 signed requests, as an alternative to Bearer tokens.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            signing::verify_signature,
        ));
    // The OAuth endpoints read their bodies before the client is known.
    let small_body = || axum::middleware::from_fn_with_state(small, oauth::limit_oauth);
    Router::new()
        .nest("/api/v1", api)
        // The SCIM 2.0 service provider (docs/scim.md).
        .nest("/scim/v2", crate::scim::router())
        .route(
            "/oauth2/token",
            post(oauth::token_create).layer(small_body()),
        )
        .route(
            "/oauth2/revoke",
            post(oauth::token_revoke).layer(small_body()),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(oauth::metadata),
        )
        .route("/healthz", get(health))
        .route("/readyz", get(ready))
        .route("/openapi.json", get(openapi::document))
        // Prometheus, behind its own token (docs/operations.md#metrics).
        .route("/metrics", get(metrics::guarded))
        .fallback(not_found)
        // Uploads are streamed and limited by the import handler itself
        // (a raw `Body` is not held to this); JSON bodies by their
        // extractor; anything else axum buffers, to the JSON limit.
        .layer(DefaultBodyLimit::max(state.config.limits.max_json_bytes))
        // Every body keeps a minimum pace (see `bodies`).
        .layer(axum::middleware::from_fn_with_state(
            bodies::Pace::of(&state.config.limits),
            bodies::pace,
        ))
        .layer(telemetry::trace_layer())
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track,
        ))
        // Outermost: also the answers of the layers inside get the headers.
        .layer(axum::middleware::from_fn_with_state(
            transport::ResponseHeaders::new(&state.config),
            transport::security_headers,
        ))
        .with_state(state)
}

async fn not_found() -> error::ApiError {
    error::ApiError::NotFound("route")
}

async fn health() -> &'static str {
    "ok"
}

/// Ready when the database answers a read, within a few seconds: a load
/// balancer asking must not wait out a connect timeout.
async fn ready(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<&'static str, error::ApiError> {
    let probe = state.db(|s| s.tenant_list().map(|_| ()));
    match tokio::time::timeout(std::time::Duration::from_secs(5), probe).await {
        Ok(Ok(())) => Ok("ready"),
        Ok(Err(e)) => Err(error::ApiError::Unavailable(anyhow::anyhow!("{e:?}"))),
        Err(_) => Err(error::ApiError::Unavailable(anyhow::anyhow!(
            "the database did not answer within 5 s"
        ))),
    }
}

/// The digest of the metrics token in `metrics.token_file`, if one is set.
fn metrics_token(config: &config::Config) -> anyhow::Result<Option<secret::SecretDigest>> {
    let path = &config.metrics.token_file;
    if path.is_empty() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("metrics.token_file: cannot read {path}"))?;
    let token = text.trim();
    anyhow::ensure!(
        token.len() >= 16,
        "metrics.token_file: the token in {path} must be at least 16 characters"
    );
    Ok(Some(secret::digest(token)))
}

/// Reads the master key ring, or creates a first key (mode 0600) on
/// first start.
fn master_key(config: &config::Config) -> anyhow::Result<MasterKey> {
    MasterKey::load(&config.master_key_path(), config.master_key_file.is_empty())
}

/// Opens the database `config` names, creating an SQLite file (and its
/// directory) unless `existing_only`. Blocks (PostgreSQL connects and
/// migrates): call it off the async runtime.
fn open_store(config: &config::Config, existing_only: bool) -> anyhow::Result<Arc<dyn Store>> {
    match config.database()? {
        config::Database::Sqlite(path) => {
            if existing_only {
                anyhow::ensure!(path.exists(), "no database at {}", path.display());
            } else if let Some(dir) = path.parent() {
                if !dir.as_os_str().is_empty() {
                    data_dir::create_private_dirs(dir)
                        .with_context(|| format!("cannot create {}", dir.display()))?;
                }
            }
            let store = SqliteStore::open(&path)
                .with_context(|| format!("cannot open the database {}", path.display()))?;
            tracing::info!(path = %path.display(), "database: SQLite");
            Ok(Arc::new(store))
        }
        config::Database::Postgres(url) => {
            // The store's errors never quote the password; the URL shown is
            // redacted.
            let store = PostgresStore::open(url.expose()).with_context(|| {
                format!("cannot open the PostgreSQL database {}", url.redacted())
            })?;
            tracing::info!(url = %url.redacted(), "database: PostgreSQL");
            Ok(Arc::new(store))
        }
    }
}

/// A running gateway: its address and how to stop it.
pub struct Running {
    pub addr: std::net::SocketAddr,
    /// The separate metrics listener's address (`metrics.listen`).
    pub metrics_addr: Option<std::net::SocketAddr>,
    pub state: AppState,
    tls: Option<Arc<transport::Tls>>,
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Asks for a graceful stop and waits for it: requests in flight get
    /// `http.shutdown_grace_seconds`, then the connections are closed.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.handle.await.context("server task")?
    }

    /// `https://ADDR` or `http://ADDR`: the listener itself, whatever
    /// `public_url` says.
    pub fn local_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The TLS certificate reloader, when TLS is on (SIGHUP calls it).
    pub fn tls(&self) -> Option<Arc<transport::Tls>> {
        self.tls.clone()
    }
}

/// Prepares the data directory, database, master key and first admin, then
/// serves on `listener` until `shutdown` is notified.
pub async fn spawn(
    config: config::Config,
    listener: TcpListener,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Running> {
    // A certificate that cannot be used stops the start, before anything
    // else is touched.
    let tls = if config.tls.enabled() {
        let tls_config = config.tls.clone();
        Some(tokio::task::spawn_blocking(move || transport::Tls::load(&tls_config)).await??)
    } else {
        None
    };
    // So does a metrics token or listener that cannot be used.
    let metrics_token = metrics_token(&config)?;
    let metrics_listener = match config.metrics.listen.as_str() {
        "" => None,
        at => Some(
            TcpListener::bind(at)
                .await
                .with_context(|| format!("metrics.listen: cannot listen on {at}"))?,
        ),
    };
    data_dir::prepare(&config)?;
    let key = master_key(&config)?;
    let store = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || open_store(&config, false)).await??
    };
    let (token, digest) = secret::generate("mat_");
    let now = clock.now();
    let s2 = store.clone();
    let ttl = config.tokens.initial_admin_ttl_seconds;
    let expires = crate::ops::admin_tokens::expiry(now, ttl);
    let first = tokio::task::spawn_blocking(move || s2.bootstrap_admin(digest, Some(expires), now))
        .await??;
    let reissued = if first {
        false
    } else {
        let s2 = store.clone();
        tokio::task::spawn_blocking(move || {
            crate::ops::admin_tokens::reissue_initial(s2.as_ref(), digest, expires, now)
        })
        .await??
    };
    if first || reissued {
        let path = config.data_dir.join("initial-admin-token");
        let _ = std::fs::remove_file(&path);
        write_private(&path, &token)?;
        if first {
            tracing::info!(
                path = %path.display(),
                expires_at = %expires.to_rfc3339(),
                "created the tenant 'default' and its first admin; the admin's API token is in this file until it expires: replace it now with `muster admin token replace-initial`, which mints your own token and deletes the file"
            );
        } else {
            tracing::warn!(
                path = %path.display(),
                expires_at = %expires.to_rfc3339(),
                "the first admin had no admin token left that works (all expired or revoked): a new initial token is in this file; replace it with `muster admin token replace-initial`"
            );
        }
    }
    let addr = listener.local_addr()?;
    let issuer = if config.public_url.is_empty() {
        let scheme = if tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{addr}")
    } else {
        config.public_url.trim_end_matches('/').to_owned()
    };
    let auth_failures = Arc::new(ratelimit::FailureLimiter::new(&config.limits)?);
    let token_rate = Arc::new(ratelimit::RequestLimiter::new(
        config.limits.token_requests_per_second,
    ));
    let backend = match config.database()? {
        config::Database::Sqlite(_) => "sqlite",
        config::Database::Postgres(_) => "postgres",
    };
    let state = AppState {
        store,
        clock,
        config: Arc::new(config),
        master_key: Arc::new(key),
        import_queued: Arc::new(Notify::new()),
        import_finished: Arc::new(Notify::new()),
        changes_committed: Arc::new(Notify::new()),
        issuer: issuer.into(),
        instance: uuid::Uuid::new_v4().simple().to_string().into(),
        auth_failures,
        token_rate,
        jwks_cache: Arc::default(),
        assertion_keys: Arc::default(),
        receiving: Arc::default(),
        scim_schemas: Arc::default(),
        metrics: Arc::new(metrics::Metrics::new(backend)),
        metrics_token,
    };
    // What a crash left in the uploads directory, before the worker starts.
    spool::sweep_logged(&state).await;
    tracing::info!(instance = %state.instance, "this instance's id (it names the imports it works on)");
    let stop = Arc::new(AtomicBool::new(false));
    // The first heartbeat before serving: this instance is counted (and its
    // master key known) from its first request on.
    cluster::beat(&state).await;
    let heartbeat = tokio::spawn(cluster::run(state.clone(), stop.clone()));
    let worker = state
        .config
        .import
        .worker
        .then(|| tokio::spawn(worker::run(state.clone(), stop.clone())));
    let deliveries = tokio::spawn(delivery::run(state.clone(), stop.clone()));
    let scheduler = tokio::spawn(schedule::run(state.clone(), stop.clone()));
    let sweeper = tokio::spawn(spool::run(state.clone(), stop.clone()));
    let shutdown = CancellationToken::new();
    let app = router(state.clone());
    let limits = transport::Limits::from_config(&state.config.http);
    let watcher = tls.clone().map(|t| {
        let every = std::time::Duration::from_secs(state.config.tls.reload_check_seconds);
        tokio::spawn(t.watch(every, shutdown.clone()))
    });
    let metrics_addr = match metrics_listener {
        Some(l) => {
            let addr = l.local_addr()?;
            tracing::info!(addr = %addr, "metrics are served at /metrics on their own listener");
            let only_metrics = Router::new()
                .route("/metrics", get(metrics::open))
                .fallback(not_found)
                .with_state(state.clone());
            tokio::spawn(transport::serve(
                l,
                only_metrics,
                transport::Limits::from_config(&state.config.http),
                None,
                shutdown.clone(),
            ));
            Some(addr)
        }
        None => None,
    };
    let listening = tokio::spawn(transport::serve(
        listener,
        app,
        limits,
        tls.clone(),
        shutdown.clone(),
    ));
    let gone = state.clone();
    let handle = tokio::spawn(async move {
        listening.await.context("http server")?;
        if let Some(w) = watcher {
            w.abort();
        }
        // The worker stops between batches: no batch is half-applied.
        stop.store(true, Ordering::SeqCst);
        // Delivery may be mid-request: stopping it there only means that
        // event goes out again (at least once).
        deliveries.abort();
        let _ = deliveries.await;
        // Hands the subscriptions back, so another instance goes on at once.
        delivery::release_all(&gone).await;
        // A settling round is one transaction: stopping between them is safe.
        scheduler.abort();
        // A sweep removes one file at a time: stopping between them is safe.
        sweeper.abort();
        if let Some(worker) = worker {
            let _ = worker.await;
        }
        heartbeat.abort();
        cluster::leave(&gone).await;
        Ok(())
    });
    Ok(Running {
        addr,
        metrics_addr,
        state,
        tls,
        shutdown,
        handle,
    })
}

/// Runs the gateway until SIGTERM or Ctrl-C.
pub async fn serve(config: config::Config) -> anyhow::Result<()> {
    telemetry::init(&config.log_format);
    // Signal handlers first: a SIGTERM that arrives during startup still
    // means a clean stop, not the default of dying on the spot.
    let stop = shutdown_signal()?;
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot install the SIGHUP handler")?;
    let listener = TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let running = spawn(config, listener, Arc::new(SystemClock)).await?;
    tracing::info!(url = %running.local_url(), "muster is listening");
    // SIGHUP reloads the TLS certificate (the files are also watched).
    #[cfg(unix)]
    let reloader = {
        let tls = running.tls();
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                match tls.clone() {
                    Some(tls) => {
                        let _ = tokio::task::spawn_blocking(move || tls.reload("SIGHUP")).await;
                    }
                    None => tracing::info!("SIGHUP: TLS is off, nothing to reload"),
                }
            }
        })
    };
    stop.await;
    #[cfg(unix)]
    reloader.abort();
    tracing::info!("shutting down: finishing the current batch");
    running.stop().await
}

/// Installs the SIGTERM and Ctrl-C handlers now; the future completes on
/// the first of them.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    #[cfg(unix)]
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot install the SIGINT handler")?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// Verifies every tenant's audit chain (or one tenant's) straight from the
/// database, without a running server.
pub fn verify_audit(
    config: &config::Config,
    tenant: Option<&str>,
) -> anyhow::Result<Vec<(String, AuditVerification)>> {
    let store = open_store(config, true)?;
    let tenants = match tenant {
        Some(t) => vec![muster_core::TenantId::parse(t).context("--tenant")?],
        None => store.tenant_list()?.into_iter().map(|t| t.id).collect(),
    };
    let mut out = Vec::new();
    for t in tenants {
        let v = audit_api::verify_tenant(store.as_ref(), &t)?;
        out.push((t.to_string(), v));
    }
    Ok(out)
}
