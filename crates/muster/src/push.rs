//! `muster push FILE`: the scheduled worker's command.
//!
//! It authenticates with credentials from the environment, never from the
//! command line (where `ps` and shell history would show them): by default
//! OAuth 2.0 client credentials (`MUSTER_CLIENT_ID`, and `MUSTER_CLIENT_SECRET`
//! or `MUSTER_CLIENT_SECRET_FILE`); with `--auth private-key-jwt` a signed
//! client assertion (`MUSTER_CLIENT_KEY_FILE`, RFC 7523); with `--auth hmac`
//! or `--auth ed25519` signed requests (`MUSTER_CLIENT_SIGNING_KEY_FILE`,
//! RFC 9421) and no token at all. It streams the file with a progress bar
//! (only when stderr is a terminal), waits for the import to become final,
//! prints the counts and the first row errors, and exits with a code a
//! scheduler can act on:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | the import succeeded (or, with `--no-wait`, was accepted) |
//! | 3 | it succeeded, but some rows had errors (they were skipped) |
//! | 1 | it was rejected or failed, it was not final within `--wait`, or authentication, the network or reading the file failed |
//! | 2 | the command line was wrong |
//!
//! Every push sends an `Idempotency-Key` (a random UUID unless
//! `--idempotency-key` gives one), so an upload retried by the client or a
//! proxy cannot import the file twice.
//!
//! Transient failures (no answer, 408, 425, 429, 500, 502, 503, 504, an
//! import the gateway itself failed) are retried `--retries` times with
//! exponential backoff and jitter; a refusal or a rejected file never is.
//! A retry after no answer keeps the idempotency key, so it cannot import
//! twice; after a failed import it takes a new one (the key would answer
//! with the failed import).
//!
//! With `--every 1h` or `--cron "0 2 * * *"` the command is the scheduled
//! worker: it pushes the file on that schedule, one run at a time (a run
//! that overruns its next start delays it; missed starts are skipped),
//! prints one line per run, and stops cleanly on SIGTERM or Ctrl-C (a run
//! in progress is abandoned: an upload cut off keeps nothing in the
//! gateway, an import it accepted goes on there). `--config FILE` gives
//! the settings in a file ([`crate::push_config`]).
use crate::output::{counts_line, print_json, print_row_errors, report_error, time};
use crate::push_config::PushConfig;
use crate::schedule::{parse_every, Cron};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use muster_client::{
    Auth, Client, ClientError, EncryptTo, ImportFormat, ImportMode, ImportParams, JwtAssertionKey,
    RequestSigner, SecretString,
};
use muster_proto::{ImportInfo, ImportState, RowErrorInfo};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// The import succeeded.
pub const EXIT_OK: u8 = 0;
/// Rejected, failed, not final in time, or no answer.
pub const EXIT_FAILED: u8 = 1;
/// A usage error (clap's own, and a format that cannot be told).
pub const EXIT_USAGE: u8 = 2;
/// Succeeded, with row errors.
pub const EXIT_ROW_ERRORS: u8 = 3;

/// How many row errors are printed.
const SHOWN_ERRORS: u32 = 20;
/// The gateway holds the upload's answer at most this long (longer
/// requests risk idle timeouts in proxies); after that the command polls.
const SERVER_WAIT_MAX: u64 = 30;

pub const AFTER_HELP: &str = "\
Credentials come from the environment, never from the command line. MUSTER_CLIENT_ID always,
and by --auth (or MUSTER_AUTH):
  client-secret    MUSTER_CLIENT_SECRET or MUSTER_CLIENT_SECRET_FILE (OAuth client_secret_basic)
  private-key-jwt  MUSTER_CLIENT_KEY_FILE: a PEM private key (RSA, P-256 or Ed25519) whose public
                   half is registered for the client; MUSTER_CLIENT_KEY_ID names it in a JWKS
  hmac             MUSTER_CLIENT_SIGNING_KEY_FILE: the HMAC key the gateway issued (base64url);
                   every request is signed (RFC 9421), no token is fetched
  ed25519          MUSTER_CLIENT_SIGNING_KEY_FILE: a PKCS#8 PEM Ed25519 private key (or its
                   base64 32-byte seed); every request is signed

Exit codes:
  0  the import succeeded (with --no-wait: it was accepted)
  3  it succeeded, but some rows had errors (the first 20 are printed)
  1  it was rejected or failed, was not final within --wait, or authentication,
     the network or reading the file failed
  2  usage error
With --every or --cron it runs until SIGTERM, one line per run, and exits 0 when stopped.

--config FILE (TOML, mode 600 or 640) may hold: url, client_id, auth, secret_file, key_file, key_id,
signing_key_file, file, mapping, mode, format, delimiter, encoding, header_map, dry_run, encrypt,
encryption, encrypt_key_id, on_behalf_of, wait, retries, every, cron. The command line wins
over the environment, which wins over the file.";

#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct PushArgs {
    /// The file to import (.csv, .jsonl or .ndjson, also encrypted as
    /// .csv.gpg, .csv.age and the like; a SCIM file with --format scim).
    #[arg(required_unless_present = "config")]
    pub file: Option<PathBuf>,
    /// Name of the stored mapping to apply (none with --format scim: the
    /// SCIM User mapping reads it).
    #[arg(long, required_unless_present_any = ["format", "config"])]
    pub mapping: Option<String>,
    /// upsert: create and update; snapshot: also deactivate this source's
    /// people missing from the file.
    #[arg(long, value_parser = parse_mode)]
    pub mode: Option<ImportMode>,
    /// Report what would change without writing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Seconds to wait for the import to become final (default 600).
    #[arg(long, value_name = "SECONDS")]
    pub wait: Option<u64>,
    /// Do not wait: print the accepted import and exit 0.
    #[arg(long, conflicts_with = "wait")]
    pub no_wait: bool,
    /// csv, jsonl or scim (default: from the file's extension, else the
    /// mapping's [file] format).
    #[arg(long, value_parser = parse_format)]
    pub format: Option<ImportFormat>,
    /// The CSV delimiter: one character, or 'tab'.
    #[arg(long, value_name = "C", value_parser = parse_delimiter)]
    pub delimiter: Option<char>,
    /// The file's text encoding (windows-1252, iso-8859-1, utf-16le, ...;
    /// default: UTF-8, and a file that is not is refused whole).
    #[arg(long, value_name = "LABEL")]
    pub encoding: Option<String>,
    /// Column renames for this file only: 'Mapping Column=File Column,...'
    /// (repeatable).
    #[arg(long, value_name = "MAP", value_parser = parse_header_map)]
    pub header_map: Vec<BTreeMap<String, String>>,
    /// Who the push is for, recorded in the audit trail.
    #[arg(long, value_name = "WHO")]
    pub on_behalf_of: Option<String>,
    /// Reuse a key to make a retried push return the first import
    /// (default: a new random key per run).
    #[arg(long, value_name = "K")]
    pub idempotency_key: Option<String>,
    /// Encrypt the file while it uploads, to the tenant's active key
    /// (GET /api/v1/keys): no plaintext leaves this machine.
    #[arg(long)]
    pub encrypt: bool,
    /// The tenant key to encrypt to (default: the newest active key).
    #[arg(long, value_name = "ID")]
    pub encrypt_key_id: Option<String>,
    /// Encrypt with OpenPGP or age (default: whatever the chosen key is).
    #[arg(long, value_name = "pgp|age", value_parser = ["pgp", "age"])]
    pub encryption: Option<String>,
    /// Print {"import": ..., "errors": [...]} as JSON.
    #[arg(long)]
    pub json: bool,
    /// The gateway's URL (default http://127.0.0.1:8080).
    #[arg(long, env = "MUSTER_URL")]
    pub url: Option<String>,
    /// How to authenticate: client-secret (the default), private-key-jwt,
    /// hmac or ed25519 (key material from the environment, see below).
    #[arg(long, env = "MUSTER_AUTH", value_parser = parse_auth_method)]
    pub auth: Option<AuthMethod>,
    /// Settings from a TOML file (see below); it must be readable by its
    /// owner alone.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Push the file on a fixed interval (30s, 15m, 1h, 1h30m, 1d), the
    /// first run at once.
    #[arg(long, value_name = "INTERVAL", value_parser = parse_every, conflicts_with = "cron")]
    pub every: Option<Duration>,
    /// Push the file on a cron schedule in local time ("0 2 * * *",
    /// "@daily").
    #[arg(long, value_name = "EXPR", value_parser = Cron::parse)]
    pub cron: Option<Cron>,
    /// Retries of a transient failure per run (default 0, or 5 with
    /// --every or --cron).
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,
}

/// How `muster push` authenticates (`--auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    ClientSecret,
    PrivateKeyJwt,
    Hmac,
    Ed25519,
}

fn parse_auth_method(s: &str) -> Result<AuthMethod, String> {
    match s {
        "client-secret" => Ok(AuthMethod::ClientSecret),
        "private-key-jwt" => Ok(AuthMethod::PrivateKeyJwt),
        "hmac" => Ok(AuthMethod::Hmac),
        "ed25519" => Ok(AuthMethod::Ed25519),
        _ => Err("one of client-secret, private-key-jwt, hmac, ed25519".to_owned()),
    }
}

fn parse_mode(s: &str) -> Result<ImportMode, String> {
    s.parse()
}

fn parse_format(s: &str) -> Result<ImportFormat, String> {
    s.parse()
}

/// One character, or `tab` / `\t` for a tab.
pub fn parse_delimiter(s: &str) -> Result<char, String> {
    if s == "tab" || s == "\\t" {
        return Ok('\t');
    }
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Ok(c),
        _ => Err("one character, or 'tab'".to_owned()),
    }
}

/// Parses `Mapping Column=File Column,...` into a header map.
pub fn parse_header_map(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut m = BTreeMap::new();
    for pair in s.split(',').filter(|p| !p.trim().is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .map(|(k, v)| (k.trim(), v.trim()))
            .filter(|(k, v)| !k.is_empty() && !v.is_empty())
            .ok_or_else(|| format!("'{pair}' is not 'Mapping Column=File Column'"))?;
        if m.insert(k.to_owned(), v.to_owned()).is_some() {
            return Err(format!("'{k}' is renamed twice"));
        }
    }
    Ok(m)
}

/// The exit code for an import's final state.
pub fn exit_code(state: ImportState) -> u8 {
    match state {
        ImportState::Succeeded => EXIT_OK,
        ImportState::SucceededWithErrors => EXIT_ROW_ERRORS,
        _ => EXIT_FAILED,
    }
}

/// The client credentials, from the environment `env`; `read` reads the
/// secret file.
pub fn credentials(
    env: impl Fn(&str) -> Option<String>,
    read: impl Fn(&Path) -> std::io::Result<String>,
) -> Result<Auth, String> {
    let client_id = env("MUSTER_CLIENT_ID").filter(|s| !s.trim().is_empty()).ok_or(
        "no credentials: set MUSTER_CLIENT_ID, and MUSTER_CLIENT_SECRET or MUSTER_CLIENT_SECRET_FILE",
    )?;
    let secret = match (
        env("MUSTER_CLIENT_SECRET"),
        env("MUSTER_CLIENT_SECRET_FILE"),
    ) {
        (Some(_), Some(_)) => {
            return Err(
                "set MUSTER_CLIENT_SECRET or MUSTER_CLIENT_SECRET_FILE, not both".to_owned(),
            )
        }
        (Some(s), None) => s,
        (None, Some(f)) => read(Path::new(&f))
            .map_err(|e| format!("cannot read MUSTER_CLIENT_SECRET_FILE ({f}): {e}"))?,
        (None, None) => {
            return Err(
                "no client secret: set MUSTER_CLIENT_SECRET or MUSTER_CLIENT_SECRET_FILE"
                    .to_owned(),
            )
        }
    };
    let secret = secret.trim();
    if secret.is_empty() {
        return Err("the client secret is empty".to_owned());
    }
    Ok(Auth::client_credentials(
        client_id.trim(),
        SecretString::from(secret),
    ))
}

/// The credentials for `method`, from the environment `env`; `read` reads
/// key files. Key material never comes from the command line.
pub fn credentials_for(
    method: AuthMethod,
    env: impl Fn(&str) -> Option<String>,
    read: impl Fn(&Path) -> std::io::Result<String>,
) -> Result<Auth, String> {
    if method == AuthMethod::ClientSecret {
        return credentials(env, read);
    }
    let client_id = env("MUSTER_CLIENT_ID")
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .ok_or("no credentials: set MUSTER_CLIENT_ID")?;
    let var = match method {
        AuthMethod::PrivateKeyJwt => "MUSTER_CLIENT_KEY_FILE",
        _ => "MUSTER_CLIENT_SIGNING_KEY_FILE",
    };
    let file = env(var).ok_or_else(|| format!("no key: set {var}"))?;
    let text = read(Path::new(&file)).map_err(|e| format!("cannot read {var} ({file}): {e}"))?;
    let bad = |e: ClientError| format!("{var} ({file}): {e}");
    match method {
        AuthMethod::PrivateKeyJwt => {
            let kid = env("MUSTER_CLIENT_KEY_ID").filter(|k| !k.trim().is_empty());
            Ok(Auth::PrivateKeyJwt {
                client_id,
                key: JwtAssertionKey::from_pem(&text, kid).map_err(bad)?,
                scope: None,
            })
        }
        AuthMethod::Hmac => Ok(Auth::Signed(
            RequestSigner::hmac(&client_id, &text).map_err(bad)?,
        )),
        _ => Ok(Auth::Signed(
            RequestSigner::ed25519(&client_id, &text).map_err(bad)?,
        )),
    }
}

fn fail(code: u8, msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("muster push: {msg}");
    ExitCode::from(code)
}

fn client_failed(e: &ClientError) -> ExitCode {
    report_error("muster push", e);
    ExitCode::from(EXIT_FAILED)
}

/// A byte progress bar on stderr, or nothing when stderr is not a
/// terminal (a scheduler's log should not fill with redraws).
fn progress_bar(size: u64) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(size);
    if let Ok(style) = ProgressStyle::with_template(
        "uploading [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    Some(bar)
}

/// When a scheduled push runs.
#[derive(Debug, Clone)]
pub enum Schedule {
    Every(Duration),
    Cron(Cron),
}

/// A push with every setting resolved from the command line, the
/// environment and the config file, in that order.
pub struct Job {
    file: PathBuf,
    /// `None`: the mapping's `[file]` format.
    format: Option<ImportFormat>,
    mapping: Option<String>,
    mode: Option<ImportMode>,
    dry_run: bool,
    wait: u64,
    no_wait: bool,
    delimiter: Option<char>,
    encoding: Option<String>,
    header_map: BTreeMap<String, String>,
    on_behalf_of: Option<String>,
    idempotency_key: Option<String>,
    encrypt: bool,
    encryption: Option<String>,
    encrypt_key_id: Option<String>,
    json: bool,
    url: String,
    auth: Auth,
    retries: u32,
    schedule: Option<Schedule>,
}

type Usage = (u8, String);

fn usage(msg: impl Into<String>) -> Usage {
    (EXIT_USAGE, msg.into())
}

/// A value from the config file, parsed as its flag would be.
fn file_value<T>(
    shown: &str,
    key: &str,
    v: &Option<String>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, Usage> {
    v.as_deref()
        .map(|v| parse(v).map_err(|e| usage(format!("{shown}: {key}: {e}"))))
        .transpose()
}

/// Resolves `a` with the config file it names and the environment `env`.
pub fn resolve(a: PushArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<Job, Usage> {
    let (cfg, shown) = match &a.config {
        Some(p) => (
            PushConfig::load(p).map_err(usage)?,
            format!("--config {}", p.display()),
        ),
        None => (PushConfig::default(), String::new()),
    };
    let mode = a
        .mode
        .or(file_value(&shown, "mode", &cfg.mode, parse_mode)?);
    let format_flag = a
        .format
        .or(file_value(&shown, "format", &cfg.format, parse_format)?);
    let delimiter = a.delimiter.or(file_value(
        &shown,
        "delimiter",
        &cfg.delimiter,
        parse_delimiter,
    )?);
    let method = a
        .auth
        .or(file_value(&shown, "auth", &cfg.auth, parse_auth_method)?)
        .unwrap_or(AuthMethod::ClientSecret);
    let schedule = match (a.every, a.cron) {
        (Some(d), _) => Some(Schedule::Every(d)),
        (_, Some(c)) => Some(Schedule::Cron(c)),
        _ => match (
            file_value(&shown, "every", &cfg.every, parse_every)?,
            file_value(&shown, "cron", &cfg.cron, Cron::parse)?,
        ) {
            (Some(_), Some(_)) => {
                return Err(usage(format!("{shown}: set every or cron, not both")))
            }
            (Some(d), None) => Some(Schedule::Every(d)),
            (None, Some(c)) => Some(Schedule::Cron(c)),
            (None, None) => None,
        },
    };
    let file = a
        .file
        .or(cfg.file.clone())
        .ok_or_else(|| usage("no file to push: name one, or set file in the --config file"))?;
    // A name that tells nothing leaves the format to the mapping's [file]
    // table (docs/mapping.md); a SCIM file has no mapping to ask.
    let format = format_flag.or_else(|| ImportFormat::from_path(&file));
    let mapping = a.mapping.or(cfg.mapping.clone());
    match (format, &mapping) {
        (None, None) => {
            return Err(usage(format!(
                "cannot tell the format of {} from its name: pass --format csv, jsonl or scim",
                file.display()
            )))
        }
        (Some(f), None) if f != ImportFormat::Scim => return Err(usage(
            "--mapping is required (or mapping in the --config file), except with --format scim",
        )),
        _ => {}
    }
    let encrypt = a.encrypt || cfg.encrypt;
    let encryption = a.encryption.or(cfg.encryption.clone());
    let encrypt_key_id = a.encrypt_key_id.or(cfg.encrypt_key_id.clone());
    if let Some(e) = encryption
        .as_deref()
        .filter(|e| !["pgp", "age"].contains(e))
    {
        return Err(usage(format!(
            "{shown}: encryption: '{e}' is not pgp or age"
        )));
    }
    if !encrypt && (encryption.is_some() || encrypt_key_id.is_some()) {
        return Err(usage("--encryption and --encrypt-key-id need --encrypt"));
    }
    if schedule.is_some() && a.idempotency_key.is_some() {
        return Err(usage(
            "--idempotency-key with --every or --cron would answer every run with the first import: leave it out, each run takes its own",
        ));
    }
    let merged = |k: &str| env(k).or_else(|| cfg.var(k, env));
    let auth = credentials_for(method, merged, |p| std::fs::read_to_string(p))
        .map_err(|e| (EXIT_FAILED, e))?;
    let mut header_map = cfg.header_map.clone();
    header_map.extend(a.header_map.into_iter().flatten());
    Ok(Job {
        file,
        format,
        mapping,
        mode,
        dry_run: a.dry_run || cfg.dry_run,
        wait: a.wait.or(cfg.wait).unwrap_or(600),
        no_wait: a.no_wait,
        delimiter,
        encoding: a.encoding.or(cfg.encoding.clone()),
        header_map,
        on_behalf_of: a.on_behalf_of.or(cfg.on_behalf_of.clone()),
        idempotency_key: a.idempotency_key,
        encrypt,
        encryption,
        encrypt_key_id,
        json: a.json,
        url: a
            .url
            .or(cfg.url.clone())
            .unwrap_or_else(|| "http://127.0.0.1:8080".to_owned()),
        auth,
        retries: a
            .retries
            .or(cfg.retries)
            .unwrap_or(if schedule.is_some() { 5 } else { 0 }),
        schedule,
    })
}

pub async fn run(a: PushArgs) -> ExitCode {
    let job = match resolve(a, &|k| std::env::var(k).ok()) {
        Ok(j) => j,
        Err((code, msg)) => return fail(code, msg),
    };
    let client = match Client::new(&job.url, job.auth.clone()) {
        Ok(c) => c,
        Err(e) => return client_failed(&e),
    };
    match job.schedule.clone() {
        Some(s) => scheduled(&client, &job, s).await,
        None => once(&client, &job).await,
    }
}

/// Why an attempt ended without an import to report.
enum Failure {
    Client(ClientError),
    /// A problem on this side (the file, the tenant's keys), not retried.
    Local(String),
}

impl Failure {
    /// Worth another attempt: no answer, or an answer that says "later".
    fn transient(&self) -> bool {
        match self {
            Failure::Client(ClientError::Transport(_)) => true,
            Failure::Client(e) => e
                .status()
                .is_some_and(|s| matches!(s.as_u16(), 408 | 425 | 429 | 500 | 502 | 503 | 504)),
            Failure::Local(_) => false,
        }
    }

    fn report(&self) -> ExitCode {
        match self {
            Failure::Client(e) => client_failed(e),
            Failure::Local(m) => fail(EXIT_FAILED, m),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Client(e) => write!(f, "{e}"),
            Failure::Local(m) => f.write_str(m),
        }
    }
}

fn new_key() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The pause before retry `n` (from 0): doubling from 1 s to 5 minutes,
/// the second half of each drawn at random so that workers that failed
/// together do not come back together.
fn backoff(n: u32) -> Duration {
    use rand::Rng;
    let full = Duration::from_secs(1u64 << n.min(9)).min(Duration::from_secs(300));
    let half = full / 2;
    half + half.mul_f64(rand::thread_rng().gen::<f64>())
}

/// One upload and its wait: the import as it stands at the end.
async fn attempt(
    client: &Client,
    job: &Job,
    key: String,
    show_progress: bool,
) -> Result<ImportInfo, Failure> {
    let shown = job.file.display();
    let size = match std::fs::metadata(&job.file) {
        Ok(m) if m.is_file() => m.len(),
        Ok(_) => return Err(Failure::Local(format!("{shown} is not a file"))),
        Err(e) => return Err(Failure::Local(format!("{shown}: {e}"))),
    };
    let server_wait = (!job.no_wait).then_some(job.wait.min(SERVER_WAIT_MAX));
    let encrypt_to = if job.encrypt {
        Some(EncryptTo::from_key(&choose_key(client, job).await?))
    } else {
        None
    };
    let params = ImportParams {
        mapping: job.mapping.clone().unwrap_or_default(),
        mode: job.mode,
        dry_run: job.dry_run,
        wait_seconds: server_wait,
        format: job.format,
        delimiter: job.delimiter,
        encoding: job.encoding.clone(),
        header_map: job.header_map.clone(),
        // A retried upload with the same key cannot import twice.
        idempotency_key: Some(key),
        on_behalf_of: job.on_behalf_of.clone(),
        encrypt_to,
    };
    let bar = show_progress.then(|| progress_bar(size)).flatten();
    let shown_bar = bar.clone();
    let uploaded = client
        .upload_import(&job.file, &params, move |sent| {
            if let Some(b) = &shown_bar {
                b.set_position(sent);
            }
        })
        .await;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let (_, info) = uploaded.map_err(Failure::Client)?;
    if job.no_wait || info.state.is_final() {
        return Ok(info);
    }
    // The gateway already waited up to `server_wait` of the budget.
    let rest = Duration::from_secs(job.wait - server_wait.unwrap_or(0));
    client
        .wait_import(&info.id, rest)
        .await
        .map_err(Failure::Client)
}

/// Attempts until one is not transient or the retries are used up.
/// Returns its result and how many attempts it took.
async fn with_retries(
    client: &Client,
    job: &Job,
    show_progress: bool,
) -> (Result<ImportInfo, Failure>, u32) {
    let mut key = job.idempotency_key.clone().unwrap_or_else(new_key);
    let mut n = 0;
    loop {
        let result = attempt(client, job, key.clone(), show_progress).await;
        let again = n < job.retries
            && match &result {
                Err(f) => f.transient(),
                // The gateway failed the import itself: a new key sends
                // the file again (ours only: a key the caller chose stays).
                Ok(i) if i.state == ImportState::Failed && job.idempotency_key.is_none() => {
                    key = new_key();
                    true
                }
                Ok(_) => false,
            };
        if !again {
            return (result, n + 1);
        }
        tokio::time::sleep(backoff(n)).await;
        n += 1;
    }
}

async fn once(client: &Client, job: &Job) -> ExitCode {
    let (result, _) = with_retries(client, job, true).await;
    let info = match result {
        Ok(i) => i,
        Err(f) => return f.report(),
    };
    if job.no_wait {
        if job.json {
            print_json(&serde_json::json!({ "import": info, "errors": [] }));
        } else {
            println!("import {} {} (not waiting)", info.id, info.state.as_str());
        }
        return ExitCode::from(EXIT_OK);
    }
    report(client, info, job.json, job.wait).await
}

/// The one line a scheduled run prints.
fn run_line(
    run: u64,
    started: chrono::DateTime<chrono::Utc>,
    result: &Result<ImportInfo, Failure>,
    attempts: u32,
) -> String {
    let took = (chrono::Utc::now() - started).num_milliseconds() as f64 / 1000.0;
    let tries = match attempts {
        1 => String::new(),
        n => format!(", {n} attempts"),
    };
    let what = match result {
        Ok(i) => {
            let mut errors = if i.counts.failed > 0 {
                format!(" (row errors: muster admin import errors {})", i.id)
            } else {
                String::new()
            };
            for w in &i.warnings {
                errors.push_str(&format!(
                    " [warning {}: {}]",
                    w.code,
                    w.column.as_deref().unwrap_or("-")
                ));
            }
            let state = if i.state.is_final() {
                i.state.as_str().to_owned()
            } else {
                format!("still {} (it goes on in the gateway)", i.state.as_str())
            };
            format!(
                "import {} {state}{}: {}{errors}",
                i.id,
                if i.dry_run { " (dry run)" } else { "" },
                counts_line(&i.counts)
            )
        }
        Err(f) => format!("failed: {f}"),
    };
    format!("{} run {run}: {what} ({took:.1} s{tries})", time(&started))
}

/// Resolves on SIGTERM or Ctrl-C.
async fn stop_requested() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Sleeps until `at` on the wall clock, re-reading the clock each minute
/// (a suspended machine or a clock change would make one long sleep late).
async fn sleep_until(at: chrono::DateTime<chrono::Utc>) {
    loop {
        let left = (at - chrono::Utc::now()).to_std().unwrap_or_default();
        if left.is_zero() {
            return;
        }
        tokio::time::sleep(left.min(Duration::from_secs(60))).await;
    }
}

/// The start after a run that started at `last` (`None`: the first), as
/// the wall clock reads `now`: never in the past, so a run that overran
/// skips the starts it missed.
fn next_start(
    schedule: &Schedule,
    last: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    match schedule {
        Schedule::Every(d) => {
            let Some(last) = last else { return Some(now) };
            let step = chrono::Duration::from_std(*d).ok()?;
            let mut at = last + step;
            if at < now {
                let behind = (now - at).num_milliseconds() / step.num_milliseconds().max(1);
                at += step * (behind as i32 + 1);
            }
            Some(at)
        }
        Schedule::Cron(c) => {
            let now = now.with_timezone(&chrono::Local);
            let mut at = c.next_after(&now)?;
            // A local time that happens twice may give one already past.
            while at <= now {
                at = c.next_after(&at)?;
            }
            Some(at.with_timezone(&chrono::Utc))
        }
    }
}

/// The scheduled worker: runs on `schedule` until told to stop.
async fn scheduled(client: &Client, job: &Job, schedule: Schedule) -> ExitCode {
    let stop = stop_requested();
    tokio::pin!(stop);
    let plan = match &schedule {
        Schedule::Every(d) => format!("every {} s", d.as_secs()),
        Schedule::Cron(_) => "on its cron schedule (local time)".to_owned(),
    };
    println!(
        "{} pushing {} {plan}; SIGTERM stops",
        time(&chrono::Utc::now()),
        job.file.display()
    );
    let mut last = None;
    let mut run = 0u64;
    loop {
        let Some(at) = next_start(&schedule, last, chrono::Utc::now()) else {
            return fail(EXIT_USAGE, "the schedule has no further start");
        };
        tokio::select! {
            _ = sleep_until(at) => {}
            _ = &mut stop => {
                println!("{} stopped", time(&chrono::Utc::now()));
                return ExitCode::from(EXIT_OK);
            }
        }
        run += 1;
        let started = chrono::Utc::now();
        last = Some(started);
        let (result, attempts) = tokio::select! {
            r = with_retries(client, job, false) => r,
            _ = &mut stop => {
                println!(
                    "{} run {run}: interrupted, stopped (an import the gateway accepted goes on there)",
                    time(&chrono::Utc::now())
                );
                return ExitCode::from(EXIT_OK);
            }
        };
        println!("{}", run_line(run, started, &result, attempts));
    }
}

async fn report(client: &Client, info: ImportInfo, json: bool, wait: u64) -> ExitCode {
    let errors: Vec<RowErrorInfo> = if info.counts.failed > 0 {
        match client
            .import_errors(&info.id, Some(SHOWN_ERRORS), None)
            .await
        {
            Ok(p) => p.items,
            Err(e) => {
                // The result still stands; only its details are missing.
                report_error("muster push: cannot list the row errors", &e);
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    if json {
        print_json(&serde_json::json!({ "import": info, "errors": errors }));
    } else {
        println!(
            "import {} {}{}",
            info.id,
            info.state.as_str(),
            if info.dry_run { " (dry run)" } else { "" }
        );
        println!("{}", counts_line(&info.counts));
        for w in &info.warnings {
            println!("warning: {} ({})", w.message, w.code);
        }
        if !errors.is_empty() {
            println!("first row errors:");
            print_row_errors(&errors);
            let more = info.counts.failed.saturating_sub(errors.len() as u64);
            if more > 0 {
                println!(
                    "... and {more} more: muster admin import errors {}",
                    info.id
                );
            }
        }
    }
    if !info.state.is_final() {
        return fail(
            EXIT_FAILED,
            format!(
                "import {} is still {} after {wait} s; it goes on in the gateway \
                 (muster admin import show {})",
                info.id,
                info.state.as_str(),
                info.id
            ),
        );
    }
    if let Some(e) = &info.error {
        eprintln!(
            "muster push: import {} {}: {} ({})",
            info.id,
            info.state.as_str(),
            e.message,
            e.code
        );
    }
    ExitCode::from(exit_code(info.state))
}

/// The key `--encrypt` encrypts to: the one named, or the newest active key
/// of the asked kind.
async fn choose_key(client: &Client, job: &Job) -> Result<muster_proto::KeyInfo, Failure> {
    let keys = client.key_list().await.map_err(Failure::Client)?;
    let kind = job
        .encryption
        .as_deref()
        .map(|k| if k == "pgp" { "openpgp" } else { "age" });
    let fits = |k: &&muster_proto::KeyInfo| {
        k.state == "active" && k.purpose == "decryption" && kind.is_none_or(|want| k.kind == want)
    };
    let found = match &job.encrypt_key_id {
        Some(id) => keys.iter().filter(fits).find(|k| &k.id == id),
        None => keys.iter().filter(fits).max_by_key(|k| k.created_at),
    };
    found.cloned().ok_or_else(|| {
        Failure::Local(match &job.encrypt_key_id {
            Some(id) => format!("the tenant has no active key {id} to encrypt to"),
            None => {
                "the tenant has no active key to encrypt to (muster admin key create)".to_owned()
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    #[test]
    fn header_maps_parse_and_name_the_bad_pair() {
        let m = parse_header_map("First Name=Given, Employee ID = Worker").unwrap();
        assert_eq!(m["First Name"], "Given");
        assert_eq!(m["Employee ID"], "Worker");
        assert!(parse_header_map("nonsense")
            .unwrap_err()
            .contains("nonsense"));
        assert!(parse_header_map("A=").is_err());
        assert!(parse_header_map("=B").is_err());
        assert!(parse_header_map("A=B,A=C").unwrap_err().contains("twice"));
        assert!(parse_header_map("").unwrap().is_empty());
    }

    #[test]
    fn delimiters_are_one_character_or_tab() {
        assert_eq!(parse_delimiter(";"), Ok(';'));
        assert_eq!(parse_delimiter("tab"), Ok('\t'));
        assert_eq!(parse_delimiter("\\t"), Ok('\t'));
        assert!(parse_delimiter(";;").is_err());
        assert!(parse_delimiter("").is_err());
    }

    #[test]
    fn exit_codes_follow_the_final_state() {
        assert_eq!(exit_code(ImportState::Succeeded), 0);
        assert_eq!(exit_code(ImportState::SucceededWithErrors), 3);
        assert_eq!(exit_code(ImportState::Rejected), 1);
        assert_eq!(exit_code(ImportState::Failed), 1);
        assert_eq!(exit_code(ImportState::Applying), 1);
    }

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    fn secret_of(a: &Auth) -> (String, String) {
        match a {
            Auth::ClientCredentials {
                client_id,
                client_secret,
                ..
            } => (client_id.clone(), client_secret.expose_secret().to_owned()),
            _ => panic!("not client credentials"),
        }
    }

    #[test]
    fn signing_and_assertion_keys_come_from_files_named_in_the_environment() {
        let hmac_key = "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk";
        let a = credentials_for(
            AuthMethod::Hmac,
            env(&[
                ("MUSTER_CLIENT_ID", "hr"),
                ("MUSTER_CLIENT_SIGNING_KEY_FILE", "/run/secrets/hmac"),
            ]),
            |p: &Path| {
                assert_eq!(p, Path::new("/run/secrets/hmac"));
                Ok(format!("{hmac_key}\n"))
            },
        )
        .unwrap();
        let Auth::Signed(s) = &a else {
            panic!("not a signer")
        };
        assert_eq!(s.client_id(), "hr");
        assert!(!format!("{a:?}").contains(hmac_key));

        let e = credentials_for(
            AuthMethod::PrivateKeyJwt,
            env(&[("MUSTER_CLIENT_ID", "hr")]),
            |_: &Path| Ok(String::new()),
        )
        .unwrap_err();
        assert!(e.contains("MUSTER_CLIENT_KEY_FILE"), "{e}");
        let e = credentials_for(
            AuthMethod::Ed25519,
            env(&[
                ("MUSTER_CLIENT_ID", "hr"),
                ("MUSTER_CLIENT_SIGNING_KEY_FILE", "/k"),
            ]),
            |_: &Path| Ok("not a key".to_owned()),
        )
        .unwrap_err();
        assert!(e.contains("MUSTER_CLIENT_SIGNING_KEY_FILE"), "{e}");
        assert_eq!(parse_auth_method("ed25519"), Ok(AuthMethod::Ed25519));
        assert!(parse_auth_method("kerberos").is_err());
    }

    #[test]
    fn credentials_come_from_the_environment_or_a_secret_file() {
        let no_files = |_: &Path| Err(std::io::Error::from(std::io::ErrorKind::NotFound));
        let a = credentials(
            env(&[
                ("MUSTER_CLIENT_ID", "hr"),
                ("MUSTER_CLIENT_SECRET", "mcs_1\n"),
            ]),
            no_files,
        )
        .unwrap();
        assert_eq!(secret_of(&a), ("hr".into(), "mcs_1".into()));

        let a = credentials(
            env(&[
                ("MUSTER_CLIENT_ID", "hr"),
                ("MUSTER_CLIENT_SECRET_FILE", "/run/secrets/muster"),
            ]),
            |p: &Path| {
                assert_eq!(p, Path::new("/run/secrets/muster"));
                Ok("mcs_2\n".to_owned())
            },
        )
        .unwrap();
        assert_eq!(secret_of(&a).1, "mcs_2");
    }

    fn args(argv: &[&str]) -> PushArgs {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            push: PushArgs,
        }
        let mut all = vec!["push"];
        all.extend_from_slice(argv);
        Cli::try_parse_from(all).unwrap().push
    }

    fn config(dir: &Path, text: &str) -> String {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join("push.toml");
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p.display().to_string()
    }

    #[test]
    fn the_command_line_wins_over_the_environment_which_wins_over_the_config_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("secret"), "mcs_file\n").unwrap();
        let c = config(
            d.path(),
            "url = \"http://file\"\nclient_id = \"from-file\"\nsecret_file = \"secret\"\n\
             file = \"e.csv\"\nmapping = \"file-map\"\nmode = \"snapshot\"\nwait = 5\n\
             every = \"1h\"\n",
        );
        let job = resolve(args(&["--config", &c]), &|_| None).unwrap();
        assert_eq!(job.url, "http://file");
        assert_eq!(job.mapping.as_deref(), Some("file-map"));
        assert_eq!(job.mode, Some(ImportMode::Snapshot));
        assert_eq!(job.file, d.path().join("e.csv"));
        assert_eq!(job.format, Some(ImportFormat::Csv));
        assert_eq!(job.wait, 5);
        assert_eq!(job.retries, 5, "scheduled runs retry by default");
        assert!(matches!(job.schedule, Some(Schedule::Every(d)) if d.as_secs() == 3600));
        assert_eq!(
            secret_of(&job.auth),
            ("from-file".into(), "mcs_file".into())
        );

        let env = env(&[
            ("MUSTER_CLIENT_ID", "from-env"),
            ("MUSTER_CLIENT_SECRET", "mcs_env"),
        ]);
        let job = resolve(
            args(&[
                "--config",
                &c,
                "--mapping",
                "flag-map",
                "--cron",
                "0 2 * * *",
                "other.jsonl",
            ]),
            &env,
        )
        .unwrap();
        assert_eq!(job.mapping.as_deref(), Some("flag-map"));
        assert_eq!(job.file, PathBuf::from("other.jsonl"));
        assert_eq!(job.format, Some(ImportFormat::Jsonl));
        assert!(matches!(job.schedule, Some(Schedule::Cron(_))));
        assert_eq!(secret_of(&job.auth), ("from-env".into(), "mcs_env".into()));
    }

    #[test]
    fn a_file_name_that_tells_no_format_leaves_it_to_the_mapping() {
        let creds = env(&[("MUSTER_CLIENT_ID", "hr"), ("MUSTER_CLIENT_SECRET", "s")]);
        let job = resolve(args(&["export.dat", "--mapping", "hr"]), &creds).unwrap();
        assert_eq!(job.format, None);
        let Err((code, msg)) = resolve(args(&["export.dat", "--format", "csv"]), &creds) else {
            panic!("a csv file without a mapping was accepted");
        };
        assert_eq!(code, EXIT_USAGE);
        assert!(msg.contains("--mapping is required"), "{msg}");
    }

    #[test]
    fn a_config_value_that_does_not_parse_names_its_key_and_usage_errors_exit_2() {
        let d = tempfile::tempdir().unwrap();
        let creds = env(&[("MUSTER_CLIENT_ID", "hr"), ("MUSTER_CLIENT_SECRET", "s")]);
        for (text, needle) in [
            (
                "file = \"e.csv\"\nmapping = \"m\"\nmode = \"merge\"\n",
                "mode",
            ),
            (
                "file = \"e.csv\"\nmapping = \"m\"\ncron = \"0 25 * * *\"\n",
                "cron: hour",
            ),
            (
                "file = \"e.csv\"\nmapping = \"m\"\nevery = \"soon\"\n",
                "every",
            ),
            (
                "file = \"e.csv\"\nmapping = \"m\"\nevery = \"1h\"\ncron = \"@daily\"\n",
                "not both",
            ),
            ("file = \"e.csv\"\n", "--mapping is required"),
            (
                "file = \"e.csv\"\nmapping = \"m\"\nencryption = \"age\"\n",
                "need --encrypt",
            ),
        ] {
            let c = config(d.path(), text);
            let Err((code, e)) = resolve(args(&["--config", &c]), &creds) else {
                panic!("{text} resolved")
            };
            assert_eq!(code, EXIT_USAGE, "{e}");
            assert!(e.contains(needle), "{text}: {e}");
        }
        let Err((code, e)) = resolve(
            args(&[
                "f.csv",
                "--mapping",
                "m",
                "--every",
                "1h",
                "--idempotency-key",
                "k",
            ]),
            &creds,
        ) else {
            panic!("a fixed key with a schedule resolved")
        };
        assert_eq!(code, EXIT_USAGE);
        assert!(e.contains("--idempotency-key"), "{e}");
    }

    #[test]
    fn a_run_that_overruns_skips_the_starts_it_missed() {
        let t = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .with_timezone(&chrono::Utc)
        };
        let every = Schedule::Every(Duration::from_secs(3600));
        let now = t("2026-12-04T10:00:00Z");
        assert_eq!(
            next_start(&every, None, now),
            Some(now),
            "the first at once"
        );
        assert_eq!(
            next_start(&every, Some(t("2026-12-04T09:30:00Z")), now),
            Some(t("2026-12-04T10:30:00Z"))
        );
        // Started 07:30 and ran until 10:00: 08:30 and 09:30 are skipped.
        assert_eq!(
            next_start(&every, Some(t("2026-12-04T07:30:00Z")), now),
            Some(t("2026-12-04T10:30:00Z"))
        );
    }

    #[test]
    fn only_failures_that_say_later_are_retried() {
        let api = |status: u16| {
            Failure::Client(ClientError::Decode {
                status: muster_client::StatusCode::from_u16(status).unwrap(),
                message: String::new(),
            })
        };
        for s in [408, 425, 429, 500, 502, 503, 504] {
            assert!(api(s).transient(), "{s}");
        }
        for s in [400, 401, 403, 404, 409, 413, 415, 422] {
            assert!(!api(s).transient(), "{s}");
        }
        assert!(!Failure::Local("no such file".into()).transient());
        for n in 0..20 {
            let b = backoff(n);
            let full = Duration::from_secs(1u64 << n.min(9)).min(Duration::from_secs(300));
            assert!(b >= full / 2 && b <= full, "{n}: {b:?}");
        }
    }

    #[test]
    fn missing_or_ambiguous_credentials_are_explained() {
        let no_files = |_: &Path| Err(std::io::Error::from(std::io::ErrorKind::NotFound));
        let e = credentials(env(&[]), no_files).unwrap_err();
        assert!(e.contains("MUSTER_CLIENT_ID"), "{e}");
        let e = credentials(env(&[("MUSTER_CLIENT_ID", "hr")]), no_files).unwrap_err();
        assert!(e.contains("MUSTER_CLIENT_SECRET"), "{e}");
        let e = credentials(
            env(&[
                ("MUSTER_CLIENT_ID", "hr"),
                ("MUSTER_CLIENT_SECRET", "a"),
                ("MUSTER_CLIENT_SECRET_FILE", "f"),
            ]),
            no_files,
        )
        .unwrap_err();
        assert!(e.contains("not both"), "{e}");
        let e = credentials(
            env(&[
                ("MUSTER_CLIENT_ID", "hr"),
                ("MUSTER_CLIENT_SECRET_FILE", "f"),
            ]),
            no_files,
        )
        .unwrap_err();
        assert!(e.contains("cannot read"), "{e}");
    }
}
