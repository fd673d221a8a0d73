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
use crate::output::{counts_line, print_json, print_row_errors, report_error};
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
  2  usage error";

#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct PushArgs {
    /// The file to import (.csv, .jsonl or .ndjson, also encrypted as
    /// .csv.gpg, .csv.age and the like; a SCIM file with --format scim).
    pub file: PathBuf,
    /// Name of the stored mapping to apply (none with --format scim: the
    /// SCIM User mapping reads it).
    #[arg(long, required_unless_present = "format")]
    pub mapping: Option<String>,
    /// upsert: create and update; snapshot: also deactivate this source's
    /// people missing from the file.
    #[arg(long, value_parser = parse_mode)]
    pub mode: Option<ImportMode>,
    /// Report what would change without writing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Seconds to wait for the import to become final.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    pub wait: u64,
    /// Do not wait: print the accepted import and exit 0.
    #[arg(long, conflicts_with = "wait")]
    pub no_wait: bool,
    /// csv, jsonl or scim (default: from the file's extension).
    #[arg(long, value_parser = parse_format)]
    pub format: Option<ImportFormat>,
    /// The CSV delimiter: one character, or 'tab'.
    #[arg(long, value_name = "C", value_parser = parse_delimiter)]
    pub delimiter: Option<char>,
    /// Column renames for this file only: 'Mapping Column=File Column,...'
    /// (repeatable).
    #[arg(long, value_name = "MAP", value_parser = parse_header_map)]
    pub header_map: Vec<BTreeMap<String, String>>,
    /// Who the push is for, recorded in the audit trail.
    #[arg(long, value_name = "WHO")]
    pub on_behalf_of: Option<String>,
    /// Reuse a key to make a retried push return the first import
    /// (default: a new random key).
    #[arg(long, value_name = "K")]
    pub idempotency_key: Option<String>,
    /// Encrypt the file while it uploads, to the tenant's active key
    /// (GET /api/v1/keys): no plaintext leaves this machine.
    #[arg(long)]
    pub encrypt: bool,
    /// The tenant key to encrypt to (default: the newest active key).
    #[arg(long, value_name = "ID", requires = "encrypt")]
    pub encrypt_key_id: Option<String>,
    /// Encrypt with OpenPGP or age (default: whatever the chosen key is).
    #[arg(long, value_name = "pgp|age", requires = "encrypt", value_parser = ["pgp", "age"])]
    pub encryption: Option<String>,
    /// Print {"import": ..., "errors": [...]} as JSON.
    #[arg(long)]
    pub json: bool,
    /// The gateway's URL.
    #[arg(long, env = "MUSTER_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// How to authenticate: client-secret, private-key-jwt, hmac or ed25519
    /// (key material from the environment, see below).
    #[arg(long, env = "MUSTER_AUTH", value_parser = parse_auth_method, default_value = "client-secret")]
    pub auth: AuthMethod,
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

pub async fn run(a: PushArgs) -> ExitCode {
    let auth = match credentials_for(
        a.auth,
        |k| std::env::var(k).ok(),
        |p| std::fs::read_to_string(p),
    ) {
        Ok(a) => a,
        Err(e) => return fail(EXIT_FAILED, e),
    };
    let Some(format) = a.format.or_else(|| ImportFormat::from_path(&a.file)) else {
        return fail(
            EXIT_USAGE,
            format!(
                "cannot tell the format of {} from its name: pass --format csv, jsonl or scim",
                a.file.display()
            ),
        );
    };
    let size = match std::fs::metadata(&a.file) {
        Ok(m) if m.is_file() => m.len(),
        Ok(_) => return fail(EXIT_FAILED, format!("{} is not a file", a.file.display())),
        Err(e) => return fail(EXIT_FAILED, format!("{}: {e}", a.file.display())),
    };
    let client = match Client::new(&a.url, auth) {
        Ok(c) => c,
        Err(e) => return client_failed(&e),
    };
    let server_wait = (!a.no_wait).then_some(a.wait.min(SERVER_WAIT_MAX));
    let params = ImportParams {
        mapping: a.mapping.clone().unwrap_or_default(),
        mode: a.mode,
        dry_run: a.dry_run,
        wait_seconds: server_wait,
        format: Some(format),
        delimiter: a.delimiter,
        header_map: a
            .header_map
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        // A retried upload with the same key cannot import twice.
        idempotency_key: Some(
            a.idempotency_key
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        ),
        on_behalf_of: a.on_behalf_of.clone(),
        encrypt_to: None,
    };
    let params = if a.encrypt {
        match choose_key(&client, &a).await {
            Ok(k) => ImportParams {
                encrypt_to: Some(EncryptTo::from_key(&k)),
                ..params
            },
            Err(code) => return code,
        }
    } else {
        params
    };

    let bar = progress_bar(size);
    let shown = bar.clone();
    let uploaded = client
        .upload_import(&a.file, &params, move |sent| {
            if let Some(b) = &shown {
                b.set_position(sent);
            }
        })
        .await;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let info = match uploaded {
        Ok((_, info)) => info,
        Err(e) => return client_failed(&e),
    };
    if a.no_wait {
        if a.json {
            print_json(&serde_json::json!({ "import": info, "errors": [] }));
        } else {
            println!("import {} {} (not waiting)", info.id, info.state.as_str());
        }
        return ExitCode::from(EXIT_OK);
    }
    // The gateway already waited up to `server_wait` of the budget.
    let rest = Duration::from_secs(a.wait - server_wait.unwrap_or(0));
    let info = if info.state.is_final() {
        info
    } else {
        match client.wait_import(&info.id, rest).await {
            Ok(i) => i,
            Err(e) => return client_failed(&e),
        }
    };
    report(&client, info, a.json, a.wait).await
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
async fn choose_key(client: &Client, a: &PushArgs) -> Result<muster_proto::KeyInfo, ExitCode> {
    let keys = client.key_list().await.map_err(|e| client_failed(&e))?;
    let kind = a
        .encryption
        .as_deref()
        .map(|k| if k == "pgp" { "openpgp" } else { "age" });
    let fits = |k: &&muster_proto::KeyInfo| {
        k.state == "active" && k.purpose == "decryption" && kind.is_none_or(|want| k.kind == want)
    };
    let found = match &a.encrypt_key_id {
        Some(id) => keys.iter().filter(fits).find(|k| &k.id == id),
        None => keys.iter().filter(fits).max_by_key(|k| k.created_at),
    };
    found.cloned().ok_or_else(|| {
        fail(
            EXIT_FAILED,
            match &a.encrypt_key_id {
                Some(id) => format!("the tenant has no active key {id} to encrypt to"),
                None => "the tenant has no active key to encrypt to (muster admin key create)"
                    .to_owned(),
            },
        )
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
