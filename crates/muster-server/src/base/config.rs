//! Typed configuration in layers: built-in defaults, then an optional TOML
//! file, then `MUSTER_*` environment variables (`__` separates a section from
//! its key: `MUSTER_LIMITS__MAX_UPLOAD_BYTES`). Unknown keys in the file are
//! errors. Zero configuration runs on SQLite in `./muster-data`.
//! `MUSTER_DATABASE_URL_FILE` names a file holding the database URL (which
//! may carry a password), and wins over `MUSTER_DATABASE_URL`.
use anyhow::Context;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the embedded database, the master key and pending uploads live.
    pub data_dir: PathBuf,
    /// `postgres://...` (PostgreSQL) or `sqlite://PATH`; empty means
    /// `sqlite://<data_dir>/muster.db`.
    pub database_url: DatabaseUrl,
    /// Address to listen on.
    pub listen: String,
    /// The URL clients use to reach the gateway (the OAuth issuer); empty
    /// means `http://<listen>`, or `https://<listen>` when `[tls]` is on.
    pub public_url: String,
    /// A file holding the 32-byte master key (64 hex characters); empty
    /// means `<data_dir>/master.key`, generated on first start.
    pub master_key_file: String,
    /// `human` or `json`.
    pub log_format: String,
    pub limits: Limits,
    pub import: ImportConfig,
    pub tokens: TokenConfig,
    pub webhooks: WebhookConfig,
    pub outbound: OutboundConfig,
    pub cluster: ClusterConfig,
    pub http: HttpConfig,
    pub tls: TlsConfig,
    pub scim: ScimConfig,
    pub metrics: MetricsConfig,
}

/// Where the Prometheus metrics are served (docs/operations.md#metrics).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// A separate plain-HTTP listener serving only `/metrics`, without
    /// authentication (for a private network or loopback); empty: none.
    pub listen: String,
    /// A file holding a bearer token: `/metrics` on the main listener then
    /// answers to `Authorization: Bearer <token>`; empty: it is not served
    /// there.
    pub token_file: String,
}

/// The SCIM door (docs/scim.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScimConfig {
    /// The most Users a filter or sort that no index answers may read;
    /// beyond it such a request is refused with `tooMany`.
    pub max_scan: u64,
}

/// How the listener treats connections (see docs/security.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Seconds a client has to send a whole request head once its first
    /// byte has arrived (and to finish the TLS handshake); a connection
    /// that takes longer is closed.
    pub header_read_timeout_seconds: u64,
    /// Seconds a connection may stay open with no request in flight and,
    /// on HTTP/1.1, no byte of the next request received: then it is
    /// closed. Keep it above the idle timeout of a proxy or load balancer
    /// that reuses connections to the gateway.
    pub idle_timeout_seconds: u64,
    /// Open connections served at once. At the cap the gateway stops
    /// accepting until one closes, so further clients wait in the kernel's
    /// listen backlog. Keep it below the process's open-file limit.
    pub max_connections: usize,
    /// Seconds requests in flight get to finish when the gateway stops
    /// (`muster serve` on SIGTERM or Ctrl-C); then the remaining
    /// connections are closed.
    pub shutdown_grace_seconds: u64,
    /// Seconds a response write may wait for the client to read (its
    /// receive window full) before the connection is closed: a client that
    /// asks and never reads cannot hold a connection for ever.
    pub write_timeout_seconds: u64,
}

/// HTTPS from certificate files (see docs/security.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, the gateway's own certificate
    /// first. Empty (with `key_file`) serves plain HTTP.
    pub cert_file: String,
    /// PEM file with the certificate's private key (PKCS#8, PKCS#1 or
    /// SEC1). Readable by the service user alone.
    pub key_file: String,
    /// How often, in seconds, the files' modification times are checked;
    /// changed files are loaded without a restart (as they are on SIGHUP).
    pub reload_check_seconds: u64,
    /// `max-age` of the `Strict-Transport-Security` header sent on every
    /// response over TLS; 0 tells browsers to forget an earlier one.
    pub hsts_max_age_seconds: u64,
}

impl TlsConfig {
    /// Whether the gateway serves HTTPS.
    pub fn enabled(&self) -> bool {
        !self.cert_file.is_empty()
    }
}

/// How instances sharing a database keep each other informed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// How often an instance records that it is alive, rereads the master
    /// key files and syncs the failed-authentication limits, in ms. Three
    /// missed beats and it is taken as gone.
    pub heartbeat_ms: u64,
}

/// Requests the gateway makes itself: webhook deliveries, identity
/// providers' JWK Sets (see docs/security.md, "Outbound requests").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundConfig {
    /// Allow destinations in the IANA special-purpose address ranges
    /// (loopback, private, link-local, ...) and plain `http`, for every
    /// outbound request. Off: nothing outbound can reach the gateway's own
    /// network. (`webhooks.allow_private_destinations` still allows them
    /// for webhooks alone.)
    pub allow_private_destinations: bool,
}

/// Webhook delivery (docs/events.md#retries-and-dead-letters).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Allow special-purpose (loopback, private, link-local, ...)
    /// destinations and plain `http` for webhooks only; the older spelling
    /// of `outbound.allow_private_destinations`, which covers them too.
    pub allow_private_destinations: bool,
    /// Delays before each retry, comma separated, with units s/m/h; the
    /// default is the Standard Webhooks schedule. After the last, the
    /// event is dead-lettered.
    pub retry_schedule: String,
    /// How long one delivery request may take. It is also the longest a
    /// tenant over its share of the delivery slots keeps one after being
    /// asked to hand it to a waiting tenant.
    pub request_timeout_seconds: u64,
    /// How often the delivery worker looks for due retries when no change
    /// wakes it, in milliseconds.
    pub poll_interval_ms: u64,
    /// How long a rotated secret keeps signing, by default.
    pub secret_overlap_seconds: u64,
    /// How long an instance's hold on a subscription (its delivery lease)
    /// lasts unrenewed: after a crash, the longest its deliveries wait to
    /// be taken over by another instance.
    pub lease_seconds: u64,
    /// Subscriptions one instance delivers to at the same time. The tenants
    /// with work share these slots: each may hold the slots divided by
    /// their number (at least one), and a slot another tenant does not
    /// need goes to whoever waits.
    pub concurrency: usize,
}

impl WebhookConfig {
    /// The parsed retry schedule.
    pub fn schedule(&self) -> anyhow::Result<Vec<std::time::Duration>> {
        self.retry_schedule
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                // By suffix, not by byte position: the last character may
                // be more than one byte.
                let (n, unit) = [("s", 1), ("m", 60), ("h", 3600)]
                    .into_iter()
                    .find_map(|(u, secs)| s.strip_suffix(u).map(|n| (n, secs)))
                    .with_context(|| {
                        format!("webhooks.retry_schedule: '{s}' needs a unit s, m or h")
                    })?;
                let secs = n
                    .parse::<u64>()
                    .ok()
                    .and_then(|n| n.checked_mul(unit))
                    .with_context(|| format!("webhooks.retry_schedule: '{s}' is not a delay"))?;
                Ok(std::time::Duration::from_secs(secs))
            })
            .collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest accepted upload, in bytes.
    pub max_upload_bytes: u64,
    /// Longest line (or record) of an uploaded file, in bytes.
    pub max_line_bytes: usize,
    /// Largest JSON request body (people API, admin API), in bytes.
    pub max_json_bytes: usize,
    /// Most items in one `POST /api/v1/people/sync`.
    pub max_sync_items: usize,
    /// An encrypted upload that decompresses to more than this many bytes
    /// is refused as a decompression bomb.
    pub max_decompressed_bytes: u64,
    /// ... or that grows more than this many times while decompressing
    /// (after the first `ratio_grace_bytes`).
    pub max_decompression_ratio: u64,
    pub ratio_grace_bytes: u64,
    /// Failed authentications per (source address, client id) pair within
    /// the window that are answered at once; later failures of the pair
    /// are answered after a growing delay (0: not counted). A correct
    /// credential is never refused or delayed.
    pub failed_auth_max: u32,
    /// The same per source address, whatever client id is named (0: not
    /// counted). Higher than the pair's: clients behind one NAT or proxy
    /// share an address.
    pub failed_auth_address_max: u32,
    /// The window failures are counted in, and audit entries of
    /// unauthenticated failures aggregated over, in seconds.
    pub failed_auth_window_seconds: u64,
    /// How long the answer to the first failure over a threshold waits, in
    /// milliseconds; each further failure doubles it ...
    pub failed_auth_delay_ms: u64,
    /// ... up to this many milliseconds.
    pub failed_auth_max_delay_ms: u64,
    /// Addresses or CIDR blocks of reverse proxies whose forwarding header
    /// is believed (a TOML list, or one comma-separated string in
    /// `MUSTER_LIMITS__TRUSTED_PROXIES`). Empty: the peer's address is the
    /// client's, whatever a header says.
    #[serde(deserialize_with = "string_list")]
    pub trusted_proxies: Vec<String>,
    /// The header those proxies set: `x-forwarded-for` or `forwarded`
    /// (RFC 7239). Only that one is read: the other may come from the client.
    pub trusted_proxy_header: String,
    /// Token-endpoint requests per second per client id and per source
    /// address, across all instances (0: no limit).
    pub token_requests_per_second: u32,
    /// Largest body accepted by the routes reachable before authentication
    /// (`/oauth2/token`, `/oauth2/revoke`, `POST /api/v1/login-sync`), and
    /// the most a signed request to a route that takes no JSON body may
    /// send, in bytes. Larger bodies are answered 413 without being read.
    pub max_unauthenticated_body_bytes: usize,
    /// A request body (an upload included) that delivers nothing for this
    /// many seconds is ended with 408.
    pub body_read_timeout_seconds: u64,
    /// A request body that averages fewer bytes per second than this, over
    /// the time the gateway waited for it, is ended with 408 once it has
    /// been waited on for `body_rate_grace_seconds` (0: no minimum).
    pub min_upload_bytes_per_second: u64,
    /// How long a body is waited on before `min_upload_bytes_per_second`
    /// applies, in seconds.
    pub body_rate_grace_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportConfig {
    /// Rows applied per transaction (with their audit entries and a checkpoint).
    pub batch_size: usize,
    /// Keep sealed uploads after processing instead of deleting them.
    pub retain_uploads: bool,
    /// Longest `wait=` a request may ask for, in seconds.
    pub max_wait_seconds: u64,
    /// How long an instance's claim on an import lasts without renewal (it
    /// renews every third of this while it works): after a crash, the
    /// longest an import waits before another instance resumes it.
    pub lease_seconds: u64,
    /// A snapshot import that would deactivate more than this share (in
    /// percent) of its source's active people is rejected, unless the
    /// request allows it (`allow_mass_deactivation=true`) or sets its own
    /// `max_deactivate_percent`.
    pub snapshot_max_deactivate_percent: f64,
    /// How often each instance applies due effective-date transitions
    /// (future termination and hire dates); it also does at start.
    pub effective_dates_interval_seconds: u64,
    /// Run the import worker on this instance; `false` makes an instance
    /// that takes uploads and leaves processing to the others.
    pub worker: bool,
    /// Imports this instance's worker runs at the same time. With more
    /// than one, the last free slot is kept for a tenant with no import
    /// running anywhere, so that one tenant's queue of large imports never
    /// holds every slot while another tenant's import waits; free slots go
    /// to the tenant with the fewest imports running, tenants taking turns.
    pub concurrency: usize,
    /// How long a file in the uploads directory that no pending import
    /// needs (a partial upload a kill left, the upload or validation index
    /// of an import that has ended or was never recorded) must have gone
    /// unmodified before it is removed; the sweep runs at start and then
    /// this often. It protects uploads other instances sharing the
    /// directory are receiving: keep it above a slow client's longest pause.
    pub orphan_grace_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Default access-token lifetime for clients that set none.
    pub default_ttl_seconds: u64,
    /// Default rotation overlap for client secrets.
    pub secret_overlap_seconds: u64,
    /// How far in the future a `private_key_jwt` client assertion's `exp`
    /// may lie (RFC 7523 3, item 4): an hour, as OAuth libraries sign by
    /// default.
    pub max_assertion_lifetime_seconds: u64,
    /// How long ago an assertion's `iat` may lie. Its `jti` is remembered
    /// only that long, whatever its `exp`, and an assertion without `iat`
    /// may live no longer than this: the replay cache holds at most this
    /// many seconds of assertions.
    pub max_assertion_age_seconds: u64,
    /// Lifetime of an admin API token minted with `POST
    /// /api/v1/admin/tokens` (or `muster admin token create`) that asks for
    /// none, and of a new tenant's first admin token (90 days).
    pub admin_ttl_seconds: u64,
    /// The longest lifetime a minted admin token may ask for (one year).
    pub admin_max_ttl_seconds: u64,
    /// Lifetime of the initial admin token `muster serve` writes to
    /// `<data_dir>/initial-admin-token` on its first start (one day): it
    /// is for replacing itself (`muster admin token replace-initial`),
    /// not for daily use.
    pub initial_admin_ttl_seconds: u64,
}

const DEFAULTS: &str = r#"
data_dir = "muster-data"
database_url = ""
listen = "127.0.0.1:8080"
public_url = ""
master_key_file = ""
log_format = "human"
[limits]
max_upload_bytes = 4294967296
max_line_bytes = 1048576
max_json_bytes = 16777216
max_sync_items = 10000
max_decompressed_bytes = 17179869184
max_decompression_ratio = 100
ratio_grace_bytes = 8388608
failed_auth_max = 20
failed_auth_address_max = 100
failed_auth_window_seconds = 300
failed_auth_delay_ms = 500
failed_auth_max_delay_ms = 10000
trusted_proxies = []
trusted_proxy_header = "x-forwarded-for"
token_requests_per_second = 0
max_unauthenticated_body_bytes = 65536
body_read_timeout_seconds = 30
min_upload_bytes_per_second = 1024
body_rate_grace_seconds = 10
[import]
batch_size = 5000
retain_uploads = false
max_wait_seconds = 3600
lease_seconds = 60
snapshot_max_deactivate_percent = 10.0
effective_dates_interval_seconds = 300
worker = true
concurrency = 2
orphan_grace_seconds = 3600
[outbound]
allow_private_destinations = false
[webhooks]
allow_private_destinations = false
retry_schedule = "5s,5m,30m,2h,5h,10h,10h"
request_timeout_seconds = 15
poll_interval_ms = 1000
secret_overlap_seconds = 86400
lease_seconds = 60
concurrency = 16
[tokens]
default_ttl_seconds = 900
secret_overlap_seconds = 86400
max_assertion_lifetime_seconds = 3600
max_assertion_age_seconds = 300
admin_ttl_seconds = 7776000
admin_max_ttl_seconds = 31536000
initial_admin_ttl_seconds = 86400
[cluster]
heartbeat_ms = 2000
[scim]
max_scan = 20000
[metrics]
listen = ""
token_file = ""
[http]
header_read_timeout_seconds = 10
idle_timeout_seconds = 120
max_connections = 4096
shutdown_grace_seconds = 20
write_timeout_seconds = 60
[tls]
cert_file = ""
key_file = ""
reload_check_seconds = 5
hsts_max_age_seconds = 31536000
"#;

/// Environment variables that are not server settings: the client side's
/// (`muster push`, `muster admin`, `muster migrate`), the log filter, the
/// SQLite knob. A shell set up for one of those still starts the server.
const CLIENT_VARS: [&str; 12] = [
    "LOG",
    "URL",
    "ADMIN_TOKEN",
    "AUTH",
    "CLIENT_KEY_ID",
    "CLIENT_KEY_FILE",
    "CLIENT_ID",
    "CLIENT_SECRET",
    "CLIENT_SECRET_FILE",
    "CLIENT_SIGNING_KEY_FILE",
    "MIGRATE_TO",
    "SQLITE_SYNCHRONOUS",
];

/// Settings whose names end in `_FILE` because they name a file, not
/// because the value is to be read from one.
const PATH_SETTINGS: [&str; 4] = [
    "MASTER_KEY_FILE",
    "TLS__CERT_FILE",
    "TLS__KEY_FILE",
    "METRICS__TOKEN_FILE",
];

impl Config {
    /// Defaults, then `file`, then the process environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        Self::load_from(file, std::env::vars())
    }

    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Config> {
        let mut table: toml::Table = toml::from_str(DEFAULTS).context("built-in defaults")?;
        let mut url_from_file = None;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!("cannot read the configuration file {}", path.display())
            })?;
            let over: toml::Table = toml::from_str(&text)
                .with_context(|| format!("{} is not valid TOML", path.display()))?;
            merge(&mut table, over);
        }
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("MUSTER_") else {
                continue;
            };
            if rest == "DATABASE_URL_FILE" {
                // The URL may hold a password: it can come from a file (a
                // mounted secret) instead of the environment.
                let url = std::fs::read_to_string(&value)
                    .with_context(|| format!("cannot read MUSTER_DATABASE_URL_FILE ({value})"))?;
                url_from_file = Some(url.trim().to_owned());
                continue;
            }
            if CLIENT_VARS.contains(&rest)
                || rest.ends_with("_FILE") && !PATH_SETTINGS.contains(&rest)
            {
                continue;
            }
            let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
            set_path(&mut table, &path, scalar(&value));
        }
        if let Some(url) = url_from_file {
            table.insert("database_url".into(), toml::Value::String(url));
        }
        let cfg: Config = toml::Value::Table(table)
            .try_into()
            .context("invalid configuration")?;
        cfg.check()?;
        Ok(cfg)
    }

    fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            matches!(self.log_format.as_str(), "human" | "json"),
            "log_format must be 'human' or 'json'"
        );
        self.webhooks.schedule()?;
        anyhow::ensure!(
            self.import.batch_size > 0,
            "import.batch_size must be positive"
        );
        anyhow::ensure!(
            (0.0..=100.0).contains(&self.import.snapshot_max_deactivate_percent),
            "import.snapshot_max_deactivate_percent must be between 0 and 100"
        );
        anyhow::ensure!(
            (1..=86400).contains(&self.import.effective_dates_interval_seconds),
            "import.effective_dates_interval_seconds must be between 1 and 86400"
        );
        anyhow::ensure!(
            (3..=86400).contains(&self.import.lease_seconds),
            "import.lease_seconds must be between 3 and 86400"
        );
        anyhow::ensure!(
            (1..=64).contains(&self.import.concurrency),
            "import.concurrency must be between 1 and 64"
        );
        anyhow::ensure!(
            (60..=2_592_000).contains(&self.import.orphan_grace_seconds),
            "import.orphan_grace_seconds must be between 60 and 2592000 (30 days)"
        );
        anyhow::ensure!(
            (3..=86400).contains(&self.webhooks.lease_seconds),
            "webhooks.lease_seconds must be between 3 and 86400"
        );
        // A round ends a third of the lease in, plus at most one request:
        // the holder must be able to save before its lease runs out.
        anyhow::ensure!(
            self.webhooks.request_timeout_seconds >= 1
                && self.webhooks.request_timeout_seconds.saturating_mul(3) < self.webhooks.lease_seconds * 2,
            "webhooks.request_timeout_seconds must be at least 1 and under two thirds of webhooks.lease_seconds"
        );
        anyhow::ensure!(
            (1..=1024).contains(&self.webhooks.concurrency),
            "webhooks.concurrency must be between 1 and 1024"
        );
        anyhow::ensure!(
            (60..=self.tokens.admin_max_ttl_seconds).contains(&self.tokens.admin_ttl_seconds),
            "tokens.admin_ttl_seconds must be between 60 and tokens.admin_max_ttl_seconds"
        );
        anyhow::ensure!(
            (60..=self.tokens.admin_max_ttl_seconds)
                .contains(&self.tokens.initial_admin_ttl_seconds),
            "tokens.initial_admin_ttl_seconds must be between 60 and tokens.admin_max_ttl_seconds"
        );
        anyhow::ensure!(
            (60..=86_400).contains(&self.tokens.max_assertion_lifetime_seconds),
            "tokens.max_assertion_lifetime_seconds must be between 60 and 86400"
        );
        anyhow::ensure!(
            (30..=self.tokens.max_assertion_lifetime_seconds)
                .contains(&self.tokens.max_assertion_age_seconds),
            "tokens.max_assertion_age_seconds must be between 30 and tokens.max_assertion_lifetime_seconds"
        );
        anyhow::ensure!(
            self.tokens.admin_max_ttl_seconds <= 10 * 31_536_000,
            "tokens.admin_max_ttl_seconds must be at most ten years"
        );
        anyhow::ensure!(
            self.limits.max_line_bytes >= 1024,
            "limits.max_line_bytes must be at least 1024"
        );
        anyhow::ensure!(
            (1024..=self.limits.max_json_bytes.max(1024))
                .contains(&self.limits.max_unauthenticated_body_bytes),
            "limits.max_unauthenticated_body_bytes must be at least 1024 and at most limits.max_json_bytes"
        );
        anyhow::ensure!(
            (1..=3600).contains(&self.limits.body_read_timeout_seconds),
            "limits.body_read_timeout_seconds must be between 1 and 3600"
        );
        anyhow::ensure!(
            (1..=3600).contains(&self.limits.body_rate_grace_seconds),
            "limits.body_rate_grace_seconds must be between 1 and 3600"
        );
        let http = &self.http;
        anyhow::ensure!(
            (1..=3600).contains(&http.header_read_timeout_seconds),
            "http.header_read_timeout_seconds must be between 1 and 3600"
        );
        anyhow::ensure!(
            (1..=86400).contains(&http.idle_timeout_seconds),
            "http.idle_timeout_seconds must be between 1 and 86400"
        );
        anyhow::ensure!(
            (1..=1_000_000).contains(&http.max_connections),
            "http.max_connections must be between 1 and 1000000"
        );
        anyhow::ensure!(
            http.shutdown_grace_seconds <= 3600,
            "http.shutdown_grace_seconds must be at most 3600"
        );
        anyhow::ensure!(
            (1..=3600).contains(&http.write_timeout_seconds),
            "http.write_timeout_seconds must be between 1 and 3600"
        );
        anyhow::ensure!(
            self.tls.cert_file.is_empty() == self.tls.key_file.is_empty(),
            "tls.cert_file and tls.key_file go together: set both (HTTPS) or neither"
        );
        anyhow::ensure!(
            (1..=3600).contains(&self.tls.reload_check_seconds),
            "tls.reload_check_seconds must be between 1 and 3600"
        );
        anyhow::ensure!(
            self.limits.failed_auth_delay_ms <= self.limits.failed_auth_max_delay_ms
                && self.limits.failed_auth_max_delay_ms <= 60_000,
            "limits.failed_auth_delay_ms must not exceed limits.failed_auth_max_delay_ms, which must not exceed 60000"
        );
        parse_proxies(&self.limits.trusted_proxies)?;
        parse_proxy_header(&self.limits.trusted_proxy_header)?;
        Ok(())
    }

    /// Which database to use, from `database_url`'s scheme.
    pub fn database(&self) -> anyhow::Result<Database> {
        let url = self.database_url.expose();
        if url.is_empty() {
            return Ok(Database::Sqlite(self.data_dir.join("muster.db")));
        }
        if let Some(p) = url.strip_prefix("sqlite://") {
            anyhow::ensure!(!p.is_empty(), "database_url: sqlite:// needs a file path");
            return Ok(Database::Sqlite(PathBuf::from(p)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Database::Postgres(self.database_url.clone()));
        }
        // Only the scheme is named: the rest may hold a password.
        let scheme = url.split_once("://").map_or("(none)", |(s, _)| s);
        anyhow::bail!(
            "database_url: the scheme {scheme:?} is not supported; use postgres:// or sqlite://"
        )
    }

    pub fn uploads_dir(&self) -> PathBuf {
        self.data_dir.join("uploads")
    }

    pub fn master_key_path(&self) -> PathBuf {
        if self.master_key_file.is_empty() {
            self.data_dir.join("master.key")
        } else {
            PathBuf::from(&self.master_key_file)
        }
    }
}

/// The database an instance runs on.
#[derive(Debug, Clone)]
pub enum Database {
    Sqlite(PathBuf),
    Postgres(DatabaseUrl),
}

/// A database connection URL. It may carry a password, so its `Debug`
/// (and [`DatabaseUrl::redacted`], for logs) blot that out; only
/// [`DatabaseUrl::expose`] gives the whole text, to the driver.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with the password of its user info and any `password=`
    /// parameter replaced by `***`.
    pub fn redacted(&self) -> String {
        let url = self.0.as_str();
        let Some((scheme, rest)) = url.split_once("://") else {
            return url.to_owned();
        };
        // The user info ends at the last `@` before the query, so a
        // password with an unescaped `/` in it is still found whole.
        let q = rest.find('?').unwrap_or(rest.len());
        let (user_info, after) = match rest[..q].rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at..]),
            None => (None, rest),
        };
        let user = match user_info {
            Some(ui) => match ui.split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None => ui.to_owned(),
            },
            None => String::new(),
        };
        let tail = match after.split_once('?') {
            Some((path, query)) => {
                let params: Vec<String> = query
                    .split('&')
                    .map(|kv| match kv.split_once('=') {
                        Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                        _ => kv.to_owned(),
                    })
                    .collect();
                format!("{path}?{}", params.join("&"))
            }
            None => after.to_owned(),
        };
        format!("{scheme}://{user}{tail}")
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) {
    match path {
        [] => {}
        [last] => {
            table.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(t) = entry {
                set_path(t, rest, value);
            }
        }
    }
}

/// Environment values are text; numbers and booleans are read as such.
/// A list of strings given as a TOML array, or as one comma-separated
/// string (how an environment variable carries it).
fn string_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        OneOrMany::Many(v) => v,
    })
}

fn scalar(v: &str) -> toml::Value {
    if let Ok(i) = v.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    match v {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(v.to_owned()),
    }
}

/// An instance not heard from for this long is taken as gone.
pub fn live_for(config: &crate::base::config::Config) -> chrono::Duration {
    chrono::Duration::milliseconds((config.cluster.heartbeat_ms.max(100) * 3) as i64)
}

/// Which forwarding header a trusted proxy sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProxyHeader {
    XForwardedFor,
    Forwarded,
}

/// Parses `limits.trusted_proxies` entries: addresses or CIDR blocks.
pub(crate) fn parse_proxies(entries: &[String]) -> anyhow::Result<Vec<ipnet::IpNet>> {
    entries
        .iter()
        .map(|e| {
            let e = e.trim();
            e.parse::<ipnet::IpNet>()
                .or_else(|_| e.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    anyhow::anyhow!(
                        "limits.trusted_proxies: '{e}' is neither an IP address nor a CIDR block"
                    )
                })
        })
        .collect()
}

/// Parses `limits.trusted_proxy_header`.
pub(crate) fn parse_proxy_header(name: &str) -> anyhow::Result<ProxyHeader> {
    if name.eq_ignore_ascii_case("x-forwarded-for") {
        Ok(ProxyHeader::XForwardedFor)
    } else if name.eq_ignore_ascii_case("forwarded") {
        Ok(ProxyHeader::Forwarded)
    } else {
        anyhow::bail!("limits.trusted_proxy_header must be 'x-forwarded-for' or 'forwarded'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn zero_configuration_runs_on_sqlite_in_the_data_dir() {
        let c = Config::load_from(None, Vec::new()).unwrap();
        assert!(matches!(
            c.database().unwrap(),
            Database::Sqlite(p) if p == Path::new("muster-data/muster.db")
        ));
        assert_eq!(c.listen, "127.0.0.1:8080");
    }
    #[test]
    fn environment_overrides_file_and_nested_keys_use_double_underscores() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("m.toml");
        std::fs::write(
            &f,
            "listen = \"127.0.0.1:9000\"\n[import]\nbatch_size = 10\n",
        )
        .unwrap();
        let env = vec![
            ("MUSTER_DATA_DIR".to_string(), "/tmp/x".to_string()),
            ("MUSTER_IMPORT__BATCH_SIZE".to_string(), "20".to_string()),
            ("MUSTER_URL".to_string(), "http://ignored".to_string()),
            (
                "MUSTER_CLIENT_SECRET_FILE".to_string(),
                "/ignored".to_string(),
            ),
            // A shell set up for `muster migrate` or a signing client.
            (
                "MUSTER_MIGRATE_TO".to_string(),
                "postgres://ignored".to_string(),
            ),
            (
                "MUSTER_CLIENT_SIGNING_KEY_FILE".to_string(),
                "/ignored".to_string(),
            ),
            ("MUSTER_CLIENT_KEY_FILE".to_string(), "/ignored".to_string()),
        ];
        let c = Config::load_from(Some(&f), env).unwrap();
        assert_eq!(c.listen, "127.0.0.1:9000");
        assert_eq!(c.import.batch_size, 20);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn a_retry_schedule_is_read_or_refused_never_a_panic() {
        let with = |v: &str| {
            let env = vec![("MUSTER_WEBHOOKS__RETRY_SCHEDULE".to_string(), v.to_string())];
            Config::load_from(None, env)
        };
        let c = with("5s, 2m,1h").unwrap();
        assert_eq!(
            c.webhooks.schedule().unwrap(),
            [5, 120, 3600].map(std::time::Duration::from_secs)
        );
        for bad in ["5é", "é", "5", "5d", "x s", "99999999999999999h", "-1s"] {
            let err = with(bad).unwrap_err();
            assert!(
                format!("{err:#}").contains("webhooks.retry_schedule"),
                "{bad}: {err:#}"
            );
        }
    }
    #[test]
    fn the_orphan_grace_period_is_bounded() {
        for bad in ["0", "59", "2592001"] {
            let env = vec![("MUSTER_IMPORT__ORPHAN_GRACE_SECONDS".into(), bad.into())];
            let err = Config::load_from(None, env).unwrap_err();
            assert!(
                format!("{err:#}").contains("import.orphan_grace_seconds"),
                "{err:#}"
            );
        }
        let env = vec![("MUSTER_IMPORT__ORPHAN_GRACE_SECONDS".into(), "60".into())];
        assert_eq!(
            Config::load_from(None, env)
                .unwrap()
                .import
                .orphan_grace_seconds,
            60
        );
    }

    #[test]
    fn body_limits_have_safe_defaults_and_bounds() {
        let c = Config::load_from(None, Vec::new()).unwrap();
        assert_eq!(c.limits.max_unauthenticated_body_bytes, 64 * 1024);
        assert_eq!(c.limits.body_read_timeout_seconds, 30);
        for (var, bad) in [
            ("MUSTER_LIMITS__MAX_UNAUTHENTICATED_BODY_BYTES", "100"),
            ("MUSTER_LIMITS__BODY_READ_TIMEOUT_SECONDS", "0"),
            ("MUSTER_LIMITS__BODY_RATE_GRACE_SECONDS", "0"),
        ] {
            let err = Config::load_from(None, vec![(var.into(), bad.into())]).unwrap_err();
            let name = var
                .trim_start_matches("MUSTER_LIMITS__")
                .to_ascii_lowercase();
            assert!(format!("{err:#}").contains(&name), "{err:#}");
        }
    }

    /// docs/configuration.md lists every setting under its section's heading.
    #[test]
    fn the_configuration_reference_lists_every_setting() {
        let page = include_str!("../../../../docs/configuration.md");
        let defaults: toml::Table = toml::from_str(DEFAULTS).unwrap();
        let section_of = |name: &str| {
            let heading = format!("## `[{name}]`");
            let start = page
                .find(&heading)
                .unwrap_or_else(|| panic!("no {heading}"));
            let rest = &page[start + heading.len()..];
            &rest[..rest.find("\n## ").unwrap_or(rest.len())]
        };
        for (key, value) in &defaults {
            match value {
                toml::Value::Table(t) => {
                    let section = section_of(key);
                    for k in t.keys() {
                        assert!(
                            section.contains(&format!("| `{k}` |")),
                            "docs/configuration.md has no row for {key}.{k}"
                        );
                    }
                }
                _ => assert!(
                    page.contains(&format!("| `{key}` |")),
                    "docs/configuration.md has no row for {key}"
                ),
            }
        }
    }

    #[test]
    fn assertions_live_an_hour_and_are_remembered_for_their_age() {
        let c = Config::load_from(None, Vec::new()).unwrap();
        assert_eq!(c.tokens.max_assertion_lifetime_seconds, 3600);
        assert_eq!(c.tokens.max_assertion_age_seconds, 300);
        for (var, bad) in [
            ("MUSTER_TOKENS__MAX_ASSERTION_LIFETIME_SECONDS", "0"),
            ("MUSTER_TOKENS__MAX_ASSERTION_AGE_SECONDS", "7200"),
            ("MUSTER_TOKENS__MAX_ASSERTION_AGE_SECONDS", "1"),
        ] {
            let err = Config::load_from(None, vec![(var.into(), bad.into())]).unwrap_err();
            let name = var
                .trim_start_matches("MUSTER_TOKENS__")
                .to_ascii_lowercase();
            assert!(format!("{err:#}").contains(&name), "{err:#}");
        }
    }

    #[test]
    fn tls_files_can_be_named_in_the_environment_and_go_together() {
        let env = vec![
            (
                "MUSTER_TLS__CERT_FILE".into(),
                "/etc/muster/chain.pem".into(),
            ),
            ("MUSTER_TLS__KEY_FILE".into(), "/etc/muster/key.pem".into()),
        ];
        let c = Config::load_from(None, env).unwrap();
        assert_eq!(c.tls.cert_file, "/etc/muster/chain.pem");
        assert_eq!(c.tls.key_file, "/etc/muster/key.pem");
        assert!(c.tls.enabled());
        assert!(!Config::load_from(None, Vec::new()).unwrap().tls.enabled());
        let env = vec![(
            "MUSTER_TLS__CERT_FILE".into(),
            "/etc/muster/chain.pem".into(),
        )];
        let err = Config::load_from(None, env).unwrap_err();
        assert!(format!("{err:#}").contains("tls.key_file"), "{err:#}");
    }

    #[test]
    fn connection_limits_are_bounded() {
        for (var, bad) in [
            ("MUSTER_HTTP__HEADER_READ_TIMEOUT_SECONDS", "0"),
            ("MUSTER_HTTP__IDLE_TIMEOUT_SECONDS", "0"),
            ("MUSTER_HTTP__MAX_CONNECTIONS", "0"),
            ("MUSTER_HTTP__SHUTDOWN_GRACE_SECONDS", "3601"),
            ("MUSTER_HTTP__WRITE_TIMEOUT_SECONDS", "0"),
        ] {
            let err = Config::load_from(None, vec![(var.into(), bad.into())]).unwrap_err();
            assert!(format!("{err:#}").contains("http."), "{var}: {err:#}");
        }
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("m.toml");
        std::fs::write(&f, "lisen = \"x\"\n").unwrap();
        let e = Config::load_from(Some(&f), Vec::new()).unwrap_err();
        assert!(format!("{e:#}").contains("lisen"), "{e:#}");
    }
    #[test]
    fn the_url_scheme_selects_the_backend() {
        let load = |url: &str| {
            Config::load_from(None, vec![("MUSTER_DATABASE_URL".into(), url.into())])
                .unwrap()
                .database()
        };
        assert!(matches!(
            load("sqlite:///var/lib/m.db").unwrap(),
            Database::Sqlite(p) if p == Path::new("/var/lib/m.db")
        ));
        assert!(matches!(
            load("postgres://u@db/muster").unwrap(),
            Database::Postgres(_)
        ));
        assert!(matches!(
            load("postgresql://u@db/muster").unwrap(),
            Database::Postgres(_)
        ));
        let e = load("mysql://u:hunter2@db/m").unwrap_err();
        assert!(!format!("{e:#}").contains("hunter2"), "{e:#}");
    }
    #[test]
    fn a_database_password_is_never_shown() {
        for url in [
            "postgres://muster:hunter2@db.internal:5432/muster",
            "postgres://muster:hunter2@db.internal/muster?sslmode=disable&password=hunter2",
            "postgresql://muster:hunter2@db:5432",
        ] {
            let c =
                Config::load_from(None, vec![("MUSTER_DATABASE_URL".into(), url.into())]).unwrap();
            let shown = format!("{c:?} {:?}", c.database().unwrap());
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("db"), "{shown}");
        }
        assert_eq!(
            DatabaseUrl::new("postgres://muster:pw@db:5432/m?password=pw&x=1").redacted(),
            "postgres://muster:***@db:5432/m?password=***&x=1"
        );
        assert_eq!(
            DatabaseUrl::new("postgres://u:a/b@c@db/m").redacted(),
            "postgres://u:***@db/m"
        );
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("db-url");
        std::fs::write(&f, "postgres://muster:hunter2@db/m\n").unwrap();
        let c = Config::load_from(
            None,
            vec![("MUSTER_DATABASE_URL_FILE".into(), f.display().to_string())],
        )
        .unwrap();
        assert_eq!(c.database_url.expose(), "postgres://muster:hunter2@db/m");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(
            DatabaseUrl::new("postgres://muster@db/m").redacted(),
            "postgres://muster@db/m"
        );
    }
}
