//! `muster admin ...`: the admin API from the command line.
//!
//! The gateway's URL comes from `--url` or `MUSTER_URL`. The admin API
//! token never comes from an argument (it would show in `ps` and shell
//! history): it is read from `--token-file FILE`, else `MUSTER_ADMIN_TOKEN`,
//! else `$MUSTER_DATA_DIR/initial-admin-token` (data directory
//! `./muster-data` by default), the file `muster serve` writes on its first
//! start. Every command takes `--json` to print the API's JSON instead of
//! the compact human form.
use crate::output::{
    counts_line, import_row, opt, print_json, print_row_errors, report_error, table, time,
    IMPORT_HEADER,
};
use clap::{Args, Subcommand, ValueEnum};
use muster_client::{Auth, Client, ClientError, MappingFormat, SecretString};
use muster_proto::{
    AdminTokenCreated, AdminTokenInfo, AdminTokenSpec, ClientInfo, ClientKeysInfo, ClientSpec,
    Ed25519KeyRequest, ImportState, IssuerInfo, IssuerSpec, JwtKeysRequest, KeyInfo, KeySpec,
    MappingInfo, Page, PersonInfo, ReadPolicyInfo, RotateSecretRequest, TenantSpec, TokenPolicy,
    WritePolicyInfo,
};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The default data directory of `muster serve`.
const DEFAULT_DATA_DIR: &str = "muster-data";
const INITIAL_TOKEN_FILE: &str = "initial-admin-token";
/// The revoke path segment that names the token the request presents.
const CURRENT_TOKEN: &str = "current";

#[derive(Debug, Args)]
#[command(
    after_help = "The admin token is read from --token-file, else MUSTER_ADMIN_TOKEN, else \
$MUSTER_DATA_DIR/initial-admin-token (default data directory ./muster-data); never from an argument.\n\n\
Exit codes: 0 done; 1 the gateway refused or could not be reached; 2 usage error."
)]
pub struct AdminArgs {
    /// The gateway's URL.
    #[arg(
        long,
        env = "MUSTER_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    url: String,
    /// A file holding the admin API token.
    #[arg(long, value_name = "FILE", global = true)]
    token_file: Option<PathBuf>,
    /// Print the API's JSON, for scripts.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Tenants (isolated organisations).
    #[command(subcommand)]
    Tenant(TenantCmd),
    /// Integration clients and their secrets.
    #[command(subcommand)]
    Client(ClientCmd),
    /// Keys that HR systems encrypt exports to, and their signing keys.
    #[command(subcommand)]
    Key(KeyCmd),
    /// Versioned mappings from source columns to person attributes.
    #[command(subcommand)]
    Mapping(MappingCmd),
    /// Identity-provider issuers whose JWTs sync people at login.
    #[command(subcommand)]
    Issuer(IssuerCmd),
    /// Imports, their counts and row errors.
    #[command(subcommand)]
    Import(ImportCmd),
    /// People (needs people:read).
    #[command(subcommand)]
    Person(PersonCmd),
    /// The audit trail.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Webhook subscriptions, their delivery log and redelivery.
    #[command(subcommand)]
    Subscription(crate::subscription::SubscriptionCmd),
    /// The installation's master key (operator only: tenant:admin on default).
    #[command(subcommand, name = "master-key")]
    MasterKey(MasterKeyCmd),
    /// Admin API tokens: mint (with a lifetime), list, revoke, and replace
    /// the initial one.
    #[command(subcommand)]
    Token(TokenCmd),
}

#[derive(Debug, Subcommand)]
enum TokenCmd {
    /// Mint an admin API token for yourself; printed once.
    Create {
        /// What it is for (shown in the list).
        #[arg(long)]
        name: String,
        /// Seconds until it expires (default: the gateway's, 90 days).
        #[arg(long, value_name = "SECONDS")]
        lifetime: Option<u64>,
        /// Write the token to FILE (created, mode 0600) instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// List the tenant's admin tokens (never a secret).
    List,
    /// Revoke an admin token at once, by id ('current': the one in use).
    Revoke { id: String },
    /// Mint your own token, revoke the initial one and delete its file
    /// (--token-file, else $MUSTER_DATA_DIR/initial-admin-token).
    ReplaceInitial {
        /// The new token's name.
        #[arg(long, default_value = "admin")]
        name: String,
        /// Seconds until the new token expires (default: the gateway's).
        #[arg(long, value_name = "SECONDS")]
        lifetime: Option<u64>,
        /// Write the new token to FILE (created, mode 0600) instead of
        /// printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum MasterKeyCmd {
    /// The current and previous key ids, and the key each instance uses.
    Status,
    /// Generate a new master key and re-seal every sealed row under it;
    /// the old key stays (previous) for uploads still waiting.
    Rotate,
    /// Forget the previous keys once no instance and no waiting upload
    /// needs them.
    RetirePrevious,
}

#[derive(Debug, Subcommand)]
enum TenantCmd {
    /// Create a tenant; prints its first admin token once.
    Create {
        id: String,
        /// A display name (default: the id).
        #[arg(long)]
        name: Option<String>,
    },
    /// List tenants.
    List,
}

/// `--token-policy` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PolicyArg {
    /// A token is consumed by the first request that presents it.
    #[value(name = "one_time")]
    OneTime,
    /// A token is reusable until it expires.
    #[value(name = "ttl")]
    Ttl,
}

impl From<PolicyArg> for TokenPolicy {
    fn from(p: PolicyArg) -> Self {
        match p {
            PolicyArg::OneTime => TokenPolicy::OneTime,
            PolicyArg::Ttl => TokenPolicy::Ttl,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum KeyAlgorithm {
    /// OpenPGP, Ed25519 + Curve25519 (the default).
    Curve25519,
    /// OpenPGP, RSA 3072.
    Rsa3072,
    /// OpenPGP, RSA 4096.
    Rsa4096,
    /// age, X25519.
    Age,
}

#[derive(Debug, Subcommand)]
enum KeyCmd {
    /// Generate a decryption key; prints its id and public key (what the
    /// HR system encrypts to).
    Create {
        #[arg(long, value_enum, default_value_t = KeyAlgorithm::Curve25519)]
        algorithm: KeyAlgorithm,
    },
    /// Import an existing secret key (armored OpenPGP or an age identity
    /// file); it is sealed at rest, never stored in the clear.
    Import { file: PathBuf },
    /// Register an HR system's armored OpenPGP public signing key, which a
    /// client's intake policy can require files to be signed with.
    AddSender { file: PathBuf },
    /// List the tenant's keys.
    List,
    /// Show one key with its public part.
    Show { id: String },
    /// Generate a new key of the same kind; the old one stays
    /// decrypt_only for files already on their way.
    Rotate { id: String },
    /// Revoke a key: files encrypted to it are refused from now on.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
enum ClientKeyCmd {
    /// Which keys the client has (never a secret).
    Show { id: String },
    /// Issue (or replace) the client's HMAC-SHA256 signing key; printed once.
    Hmac { id: String },
    /// Register the client's Ed25519 public key (a PEM file, or 32 bytes in
    /// base64).
    Ed25519 { id: String, file: PathBuf },
    /// Register the client's private_key_jwt public key: a PEM file, or a
    /// JWK / JWKS JSON file.
    Jwt { id: String, file: PathBuf },
    /// Remove one of the client's keys.
    Remove {
        id: String,
        #[arg(value_parser = ["hmac", "ed25519", "jwt"])]
        kind: String,
    },
}

#[derive(Debug, Subcommand)]
enum ClientCmd {
    /// Register an integration client; prints its id and secret once.
    Create {
        /// importer, syncer, reader, node, auditor, scim or admin.
        #[arg(long)]
        role: String,
        /// The client id (default: chosen by the gateway).
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_enum, default_value_t = PolicyArg::Ttl)]
        token_policy: PolicyArg,
        /// Access-token lifetime in seconds (default: the gateway's, 900).
        #[arg(long, value_name = "SECONDS")]
        ttl: Option<u64>,
        /// Attributes it may write, comma-separated ('*' for all).
        #[arg(long, value_delimiter = ',')]
        attributes: Vec<String>,
        /// Roles it may grant, comma-separated ('*' for all).
        #[arg(long, value_delimiter = ',')]
        grant_roles: Vec<String>,
        /// Attributes it may read, comma-separated (default: all).
        #[arg(long, value_delimiter = ',', value_name = "ATTRS")]
        read_attributes: Vec<String>,
        /// Change-feed events it may read, comma-separated (default: all).
        #[arg(long, value_delimiter = ',', value_name = "EVENTS")]
        read_events: Vec<String>,
    },
    /// List clients.
    List,
    /// Show one client.
    Show { id: String },
    /// Refuse the client's credentials and tokens until enabled again.
    Disable { id: String },
    /// Accept the client's credentials again.
    Enable { id: String },
    /// Request-signing and private_key_jwt keys of a client.
    #[command(subcommand)]
    Key(ClientKeyCmd),
    /// Show or set what the client may read of people: the attributes of
    /// its person reads, change feed and own subscriptions, and the feed's
    /// events.
    ReadPolicy {
        id: String,
        /// Attributes, comma-separated ('*' for all).
        #[arg(long, value_delimiter = ',', value_name = "ATTRS")]
        attributes: Option<Vec<String>>,
        /// Events, comma-separated ('*' for all).
        #[arg(long, value_delimiter = ',', value_name = "EVENTS")]
        events: Option<Vec<String>>,
    },
    /// Show or set what the client's uploads must be.
    IntakePolicy {
        id: String,
        /// Refuse plaintext uploads from this client.
        #[arg(long)]
        require_encryption: Option<bool>,
        /// Require files OpenPGP-signed by this sender key id ('none' to
        /// stop requiring it).
        #[arg(long, value_name = "KEY_ID")]
        require_signed_by: Option<String>,
    },
    /// Issue a new secret (printed once); the old one keeps working for
    /// the overlap.
    Rotate {
        id: String,
        /// How long the previous secret keeps working (default one day; 0
        /// ends it now).
        #[arg(long, value_name = "SECONDS")]
        overlap: Option<u64>,
    },
    /// Issue a SCIM token (printed once) for the identity provider that
    /// provisions into Muster as this client (docs/scim.md); its earlier
    /// SCIM tokens keep working for the overlap.
    ScimToken {
        id: String,
        /// The SCIM attribute that becomes the external id of the people
        /// the client provisions: userName (the default), externalId or
        /// employeeNumber.
        #[arg(long, value_name = "ATTRIBUTE")]
        key: Option<String>,
        /// How long earlier SCIM tokens keep working (default one day; 0
        /// ends them now).
        #[arg(long, value_name = "SECONDS")]
        overlap: Option<u64>,
    },
}

// Parsed once per run: the size of the Create variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum IssuerCmd {
    /// Register an identity provider for login sync.
    Create {
        /// The issuer's name in this tenant.
        name: String,
        /// The `iss` value of its tokens.
        #[arg(long)]
        issuer: String,
        /// The `aud` value its tokens must carry.
        #[arg(long)]
        audience: String,
        /// The mapping that turns claims into person attributes.
        #[arg(long)]
        mapping: String,
        /// A file holding its JWK Set (public keys).
        #[arg(long, value_name = "FILE", conflicts_with = "jwks_url")]
        jwks_file: Option<PathBuf>,
        /// Or where its JWK Set is published.
        #[arg(long, value_name = "URL")]
        jwks_url: Option<String>,
        /// How long a fetched JWK Set is kept, in seconds (default 300).
        #[arg(long, value_name = "SECONDS")]
        jwks_cache: Option<u64>,
        /// Accepted algorithms, comma-separated (default RS256,ES256,EdDSA).
        #[arg(long, value_delimiter = ',')]
        algorithms: Vec<String>,
        /// A file holding the HS256 shared secret (with HS256 in
        /// --algorithms); it is stored sealed and never shown again.
        #[arg(long, value_name = "FILE")]
        hs256_secret_file: Option<PathBuf>,
        /// Clock skew tolerated on exp and nbf, in seconds (default 60).
        #[arg(long, value_name = "SECONDS")]
        clock_skew: Option<u64>,
        /// The claim that holds the person's roles.
        #[arg(long, value_name = "CLAIM")]
        roles_claim: Option<String>,
        /// Attributes its logins may write, comma-separated ('*' for all).
        #[arg(long, value_delimiter = ',')]
        attributes: Vec<String>,
        /// Roles its logins may grant, comma-separated ('*' for all).
        #[arg(long, value_delimiter = ',')]
        grant_roles: Vec<String>,
    },
    /// List issuers.
    List,
    /// Show one issuer.
    Show { name: String },
    /// Remove an issuer: its tokens are refused from now on.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
enum MappingCmd {
    /// Store a new version of a mapping from a .toml or .json file.
    Put { name: String, file: PathBuf },
    /// Show a mapping (the latest version unless --version).
    Show {
        name: String,
        #[arg(long)]
        version: Option<i64>,
    },
    /// List mappings (their latest versions).
    List,
    /// List every version of a mapping.
    Versions { name: String },
}

#[derive(Debug, Subcommand)]
enum ImportCmd {
    /// List imports, newest first.
    List {
        /// Only imports in this state.
        #[arg(long, value_parser = parse_state)]
        state: Option<ImportState>,
        #[arg(long)]
        limit: Option<u32>,
        /// The cursor a previous page ended with.
        #[arg(long)]
        after: Option<String>,
    },
    /// Show one import.
    Show { id: String },
    /// List an import's row errors.
    Errors {
        id: String,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        after: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum PersonCmd {
    /// Show one person by external id (`get` is the old name, still
    /// accepted).
    #[command(alias = "get")]
    Show { id: String },
    /// List people.
    List {
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        after: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCmd {
    /// List audit entries in order.
    List {
        /// Entries after this sequence number.
        #[arg(long, value_name = "SEQ")]
        after: Option<i64>,
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Have the gateway check this tenant's hash chain (exit 1 if broken).
    Verify,
}

fn parse_state(s: &str) -> Result<ImportState, String> {
    ImportState::parse(s).ok_or_else(|| {
        "one of received, decrypting, parsing, applying, succeeded, \
         succeeded_with_errors, failed, rejected"
            .to_owned()
    })
}

/// Where the admin token comes from, in order: `--token-file`, then
/// `MUSTER_ADMIN_TOKEN`, then the data directory's initial token file.
/// `env` and `read` are the environment and the file system (tests pass
/// their own).
pub fn admin_token(
    token_file: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
    read: impl Fn(&Path) -> std::io::Result<String>,
) -> Result<SecretString, String> {
    let nonempty = |t: String, from: &str| {
        let t = t.trim();
        if t.is_empty() {
            Err(format!("{from} is empty"))
        } else {
            Ok(SecretString::from(t))
        }
    };
    if let Some(f) = token_file {
        let t = read(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
        return nonempty(t, &f.display().to_string());
    }
    if let Some(t) = env("MUSTER_ADMIN_TOKEN") {
        return nonempty(t, "MUSTER_ADMIN_TOKEN");
    }
    let dir = env("MUSTER_DATA_DIR").unwrap_or_else(|| DEFAULT_DATA_DIR.to_owned());
    let path = PathBuf::from(dir).join(INITIAL_TOKEN_FILE);
    match read(&path) {
        Ok(t) => nonempty(t, &path.display().to_string()),
        Err(_) => Err(format!(
            "no admin token: pass --token-file FILE, set MUSTER_ADMIN_TOKEN, or run where {} exists",
            path.display()
        )),
    }
}

/// The initial token file `replace-initial` retires: `--token-file`, else
/// the data directory's (the environment's token is not the file's).
fn initial_token_path(token_file: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> PathBuf {
    match token_file {
        Some(f) => f.to_path_buf(),
        None => {
            PathBuf::from(env("MUSTER_DATA_DIR").unwrap_or_else(|| DEFAULT_DATA_DIR.to_owned()))
                .join(INITIAL_TOKEN_FILE)
        }
    }
}

pub async fn run(args: AdminArgs) -> ExitCode {
    if let AdminCommand::Token(TokenCmd::ReplaceInitial {
        name,
        lifetime,
        out,
    }) = &args.command
    {
        let path = initial_token_path(args.token_file.as_deref(), |k| std::env::var(k).ok());
        return replace_initial(&args.url, &path, name, *lifetime, out.as_deref(), args.json).await;
    }
    let token = match admin_token(
        args.token_file.as_deref(),
        |k| std::env::var(k).ok(),
        |p| std::fs::read_to_string(p),
    ) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("muster admin: {e}");
            return ExitCode::FAILURE;
        }
    };
    let client = match Client::new(&args.url, Auth::Bearer(token)) {
        Ok(c) => c,
        Err(e) => {
            report_error("muster admin", &e);
            return ExitCode::FAILURE;
        }
    };
    match dispatch(&client, args.command, args.json).await {
        Ok(code) => code,
        Err(e) => {
            report_error("muster admin", &e);
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(c: &Client, cmd: AdminCommand, json: bool) -> Result<ExitCode, ClientError> {
    match cmd {
        AdminCommand::Tenant(cmd) => tenant_cmd(c, cmd, json).await?,
        AdminCommand::Client(cmd) => client_cmd(c, cmd, json).await?,
        AdminCommand::Key(cmd) => key_cmd(c, cmd, json).await?,
        AdminCommand::Mapping(cmd) => mapping_cmd(c, cmd, json).await?,
        AdminCommand::Issuer(cmd) => issuer_cmd(c, cmd, json).await?,
        AdminCommand::Import(cmd) => import_cmd(c, cmd, json).await?,
        AdminCommand::Person(cmd) => person_cmd(c, cmd, json).await?,
        AdminCommand::Audit(cmd) => return audit_cmd(c, cmd, json).await,
        AdminCommand::Subscription(cmd) => {
            crate::subscription::subscription_cmd(c, cmd, json).await?
        }
        AdminCommand::Token(cmd) => token_cmd(c, cmd, json).await?,
        AdminCommand::MasterKey(cmd) => {
            let v = match cmd {
                MasterKeyCmd::Status => c.master_key_status().await?,
                MasterKeyCmd::Rotate => c.master_key_rotate().await?,
                MasterKeyCmd::RetirePrevious => c.master_key_retire_previous().await?,
            };
            print_json(&v);
        }
    }
    Ok(ExitCode::SUCCESS)
}

const TOKEN_HEADER: [&str; 7] = [
    "ID",
    "NAME",
    "ADMIN",
    "CREATED",
    "EXPIRES",
    "LAST_USED",
    "STATUS",
];

fn token_row(t: &AdminTokenInfo) -> Vec<String> {
    let status = match (&t.revoked_at, &t.expires_at) {
        (Some(_), _) => "revoked",
        (None, Some(e)) if *e <= chrono::Utc::now() => "expired",
        _ => "active",
    };
    vec![
        t.id.clone(),
        t.name.clone(),
        t.admin.clone(),
        time(&t.created_at),
        t.expires_at
            .as_ref()
            .map_or_else(|| "never".to_owned(), time),
        t.last_used_at.as_ref().map_or_else(|| "-".to_owned(), time),
        status.to_owned(),
    ]
}

/// Writes a new token to `path`, which must not exist yet, readable by
/// its owner only.
fn write_token_file(path: &Path, token: &str) -> Result<(), ClientError> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let io = |e: std::io::Error| {
        ClientError::Io(std::io::Error::new(
            e.kind(),
            format!("{}: {e}", path.display()),
        ))
    };
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(token.as_bytes()).map_err(io)?;
    f.write_all(b"\n").map_err(io)?;
    f.sync_all().map_err(io)
}

/// Prints a new token once (or writes it to `out`).
fn show_new_token(
    t: &AdminTokenCreated,
    out: Option<&Path>,
    json: bool,
) -> Result<(), ClientError> {
    if let Some(out) = out {
        write_token_file(out, &t.admin_token)?;
    }
    if json {
        if out.is_some() {
            print_json(&t.token);
        } else {
            print_json(t);
        }
        return Ok(());
    }
    println!("id:          {}", t.token.id);
    println!(
        "expires:     {}",
        t.token
            .expires_at
            .as_ref()
            .map_or_else(|| "never".to_owned(), time)
    );
    match out {
        Some(out) => println!("admin token: written to {}", out.display()),
        None => {
            println!("admin token: {}", t.admin_token);
            println!("(the token is shown once and will not be shown again; store it now)");
        }
    }
    Ok(())
}

async fn token_cmd(c: &Client, cmd: TokenCmd, json: bool) -> Result<(), ClientError> {
    match cmd {
        TokenCmd::Create {
            name,
            lifetime,
            out,
        } => {
            let spec = AdminTokenSpec {
                name,
                lifetime_seconds: lifetime,
            };
            let t = c.admin_token_create(&spec).await?;
            show_new_token(&t, out.as_deref(), json)?;
        }
        TokenCmd::List => {
            let l = c.admin_token_list().await?;
            print_list(&l, json, &TOKEN_HEADER, token_row);
        }
        TokenCmd::Revoke { id } => {
            let t = c.admin_token_revoke(&id).await?;
            print_one(&t, json, &TOKEN_HEADER, token_row);
        }
        // Handled by `run`, which reads the initial token itself.
        TokenCmd::ReplaceInitial { .. } => {}
    }
    Ok(())
}

/// Mints the admin's own token with the initial one, then revokes the
/// initial token and deletes its file. The new token is shown (or written)
/// before the initial one goes, so a failure on the way never leaves the
/// admin without a working token.
async fn replace_initial(
    url: &str,
    path: &Path,
    name: &str,
    lifetime: Option<u64>,
    out: Option<&Path>,
    json: bool,
) -> ExitCode {
    let initial = match std::fs::read_to_string(path) {
        Ok(t) if !t.trim().is_empty() => SecretString::from(t.trim()),
        Ok(_) => {
            eprintln!("muster admin: {} is empty", path.display());
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!(
                "muster admin: cannot read the initial token file {}: {e}",
                path.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let run = async {
        let c = Client::new(url, Auth::Bearer(initial))?;
        let spec = AdminTokenSpec {
            name: name.to_owned(),
            lifetime_seconds: lifetime,
        };
        let t = c.admin_token_create(&spec).await?;
        if let Err(e) = show_new_token(&t, out, json) {
            // Not shown, so of no use: do not leave it behind.
            let _ = c.admin_token_revoke(&t.token.id).await;
            return Err(e);
        }
        c.admin_token_revoke(CURRENT_TOKEN).await?;
        std::fs::remove_file(path).map_err(|e| {
            ClientError::Io(std::io::Error::new(
                e.kind(),
                format!(
                    "the initial token is revoked, but {} stays: {e}",
                    path.display()
                ),
            ))
        })?;
        if !json {
            eprintln!(
                "the initial token is revoked and {} deleted",
                path.display()
            );
        }
        Ok::<(), ClientError>(())
    };
    match run.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report_error("muster admin", &e);
            ExitCode::FAILURE
        }
    }
}

/// Tells on stderr how to get the next page, if there is one.
fn more<T>(page: &Page<T>, json: bool) {
    if let (Some(cursor), false) = (&page.next_cursor, json) {
        eprintln!("(more: --after {cursor})");
    }
}

async fn tenant_cmd(c: &Client, cmd: TenantCmd, json: bool) -> Result<(), ClientError> {
    match cmd {
        TenantCmd::Create { id, name } => {
            let t = c.tenant_create(&TenantSpec { id, name }).await?;
            if json {
                print_json(&t);
            } else {
                println!("tenant:      {}", t.tenant.id);
                println!("admin token: {}", t.admin_token);
                println!("(the token is shown once and will not be shown again; store it now)");
            }
        }
        TenantCmd::List => {
            let l = c.tenant_list().await?;
            print_list(&l, json, &["ID", "NAME", "CREATED"], |t| {
                vec![t.id.clone(), t.name.clone(), time(&t.created_at)]
            });
        }
    }
    Ok(())
}

const CLIENT_HEADER: [&str; 7] = [
    "CLIENT_ID",
    "ROLE",
    "TOKENS",
    "TTL",
    "STATUS",
    "MAY_WRITE",
    "MAY_GRANT",
];

fn client_row(c: &ClientInfo) -> Vec<String> {
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_owned()
        } else {
            v.join(",")
        }
    };
    vec![
        c.client_id.clone(),
        c.role.clone(),
        c.token_policy.as_str().to_owned(),
        format!("{}s", c.token_ttl_seconds),
        if c.disabled { "disabled" } else { "enabled" }.to_owned(),
        list(&c.write_policy.attributes),
        list(&c.write_policy.roles),
    ]
}

/// An event list as a read policy keeps it: `*` (or nothing) is all, kept
/// as the empty list.
fn all_is_none(events: Vec<String>) -> Vec<String> {
    if events.iter().any(|e| e == "*") {
        Vec::new()
    } else {
        events
    }
}

async fn client_cmd(c: &Client, cmd: ClientCmd, json: bool) -> Result<(), ClientError> {
    let show = |info: &ClientInfo| print_one(info, json, &CLIENT_HEADER, client_row);
    match cmd {
        ClientCmd::Create {
            role,
            id,
            name,
            token_policy,
            ttl,
            attributes,
            grant_roles,
            read_attributes,
            read_events,
        } => {
            let read_policy = (!read_attributes.is_empty() || !read_events.is_empty()).then(|| {
                let default = ReadPolicyInfo::default();
                ReadPolicyInfo {
                    attributes: if read_attributes.is_empty() {
                        default.attributes
                    } else {
                        read_attributes
                    },
                    events: all_is_none(read_events),
                }
            });
            let spec = ClientSpec {
                client_id: id,
                name,
                role,
                token_policy: token_policy.into(),
                token_ttl_seconds: ttl,
                write_policy: WritePolicyInfo {
                    attributes,
                    roles: grant_roles,
                },
                read_policy,
            };
            let created = c.client_create(&spec).await?;
            if json {
                print_json(&created);
            } else {
                println!("client_id:     {}", created.client.client_id);
                println!("client_secret: {}", created.client_secret);
                println!("(the secret is shown once and will not be shown again; store it now)");
            }
        }
        ClientCmd::List => {
            let l = c.client_list().await?;
            print_list(&l, json, &CLIENT_HEADER, client_row);
        }
        ClientCmd::Show { id } => show(&c.client_get(&id).await?),
        ClientCmd::Disable { id } => show(&c.client_disable(&id).await?),
        ClientCmd::Enable { id } => show(&c.client_enable(&id).await?),
        ClientCmd::Key(cmd) => client_key_cmd(c, cmd, json).await?,
        ClientCmd::ReadPolicy {
            id,
            attributes,
            events,
        } => {
            let mut p = c.read_policy_get(&id).await?;
            if attributes.is_some() || events.is_some() {
                if let Some(a) = attributes {
                    p.attributes = a;
                }
                if let Some(e) = events {
                    p.events = all_is_none(e);
                }
                p = c.read_policy_put(&id, &p).await?;
            }
            if json {
                print_json(&p);
            } else {
                println!("attributes: {}", p.attributes.join(","));
                println!(
                    "events:     {}",
                    if p.events.is_empty() {
                        "*".to_owned()
                    } else {
                        p.events.join(",")
                    }
                );
            }
        }
        ClientCmd::IntakePolicy {
            id,
            require_encryption,
            require_signed_by,
        } => {
            let mut p = c.intake_policy_get(&id).await?;
            if require_encryption.is_some() || require_signed_by.is_some() {
                if let Some(r) = require_encryption {
                    p.require_encryption = r;
                }
                if let Some(k) = require_signed_by {
                    p.require_signed_by = (k != "none").then_some(k);
                }
                p = c.intake_policy_put(&id, &p).await?;
            }
            if json {
                print_json(&p);
            } else {
                println!("require_encryption: {}", p.require_encryption);
                println!("require_signed_by:  {}", opt(&p.require_signed_by));
            }
        }
        ClientCmd::Rotate { id, overlap } => {
            let req = RotateSecretRequest {
                overlap_seconds: overlap,
            };
            let r = c.client_rotate_secret(&id, &req).await?;
            if json {
                print_json(&r);
            } else {
                println!("client_id:     {}", r.client_id);
                println!("client_secret: {}", r.client_secret);
                match r.previous_secret_expires_at {
                    Some(t) => println!("the previous secret works until {}", time(&t)),
                    None => println!("the previous secret no longer works"),
                }
                println!("(the secret is shown once and will not be shown again; store it now)");
            }
        }
        ClientCmd::ScimToken { id, key, overlap } => {
            let req = muster_proto::ScimTokenRequest {
                overlap_seconds: overlap,
                key,
            };
            let r = c.client_scim_token(&id, &req).await?;
            if json {
                print_json(&r);
            } else {
                println!("client_id:  {}", r.client_id);
                println!("scim_token: {}", r.token);
                println!("key:        {}", r.key);
                println!(
                    "earlier SCIM tokens work until {}",
                    time(&r.previous_tokens_expire_at)
                );
                println!("(the token is shown once and will not be shown again; store it now)");
            }
        }
    }
    Ok(())
}

const ISSUER_HEADER: [&str; 6] = [
    "NAME",
    "ISSUER",
    "AUDIENCE",
    "ALGORITHMS",
    "KEYS",
    "MAPPING",
];

fn issuer_row(i: &IssuerInfo) -> Vec<String> {
    let keys = match (&i.jwks_url, &i.jwks) {
        (Some(u), _) => u.clone(),
        (None, Some(_)) => "uploaded JWKS".to_owned(),
        (None, None) => "-".to_owned(),
    };
    vec![
        i.name.clone(),
        i.issuer.clone(),
        i.audience.clone(),
        i.algorithms.join(","),
        keys,
        i.mapping.clone(),
    ]
}

fn read_file(path: &Path) -> Result<String, ClientError> {
    std::fs::read_to_string(path).map_err(|e| {
        ClientError::Io(std::io::Error::new(
            e.kind(),
            format!("{}: {e}", path.display()),
        ))
    })
}

async fn issuer_cmd(c: &Client, cmd: IssuerCmd, json: bool) -> Result<(), ClientError> {
    let show = |i: &IssuerInfo| print_one(i, json, &ISSUER_HEADER, issuer_row);
    match cmd {
        IssuerCmd::Create {
            name,
            issuer,
            audience,
            mapping,
            jwks_file,
            jwks_url,
            jwks_cache,
            algorithms,
            hs256_secret_file,
            clock_skew,
            roles_claim,
            attributes,
            grant_roles,
        } => {
            let jwks = match jwks_file {
                None => None,
                Some(f) => Some(serde_json::from_str(&read_file(&f)?).map_err(|_| {
                    ClientError::InvalidInput(format!("{}: not JSON", f.display()))
                })?),
            };
            let hs256_secret = match hs256_secret_file {
                None => None,
                Some(f) => Some(read_file(&f)?.trim_end_matches(['\r', '\n']).to_owned()),
            };
            let spec = IssuerSpec {
                name,
                issuer,
                audience,
                algorithms: (!algorithms.is_empty()).then_some(algorithms),
                clock_skew_seconds: clock_skew,
                jwks,
                jwks_url,
                jwks_cache_seconds: jwks_cache,
                hs256_secret,
                mapping,
                roles_claim,
                write_policy: WritePolicyInfo {
                    attributes,
                    roles: grant_roles,
                },
            };
            show(&c.issuer_create(&spec).await?);
        }
        IssuerCmd::List => {
            let l = c.issuer_list().await?;
            print_list(&l, json, &ISSUER_HEADER, issuer_row);
        }
        IssuerCmd::Show { name } => {
            let i = c.issuer_get(&name).await?;
            if json {
                print_json(&i);
            } else {
                table(&ISSUER_HEADER, &[issuer_row(&i)]);
                println!("principal:     {}", i.principal);
                println!("clock skew:    {}s", i.clock_skew_seconds);
                println!("roles claim:   {}", opt(&i.roles_claim));
                println!("hs256 secret:  {}", if i.hs256 { "sealed" } else { "none" });
                println!("may write:     {}", i.write_policy.attributes.join(","));
                println!("may grant:     {}", i.write_policy.roles.join(","));
            }
        }
        IssuerCmd::Delete { name } => {
            c.issuer_delete(&name).await?;
            if !json {
                println!("issuer {name} deleted");
            }
        }
    }
    Ok(())
}

const MAPPING_HEADER: [&str; 5] = ["NAME", "VERSION", "CREATED", "BY", "ATTRIBUTES"];

fn mapping_row(m: &MappingInfo) -> Vec<String> {
    vec![
        m.name.clone(),
        m.version.to_string(),
        time(&m.created_at),
        m.created_by.clone(),
        m.attributes.join(","),
    ]
}

async fn mapping_cmd(c: &Client, cmd: MappingCmd, json: bool) -> Result<(), ClientError> {
    match cmd {
        MappingCmd::Put { name, file } => {
            let format = MappingFormat::from_path(&file).ok_or_else(|| {
                ClientError::InvalidInput(format!(
                    "{}: a mapping file must end in .toml or .json",
                    file.display()
                ))
            })?;
            let text = std::fs::read_to_string(&file).map_err(|e| {
                ClientError::Io(std::io::Error::new(
                    e.kind(),
                    format!("{}: {e}", file.display()),
                ))
            })?;
            let m = c.mapping_put(&name, format, text).await?;
            if json {
                print_json(&m);
            } else {
                println!(
                    "mapping {} is now at version {} (writes {})",
                    m.name,
                    m.version,
                    m.attributes.join(", ")
                );
            }
        }
        MappingCmd::Show { name, version } => {
            let m = c.mapping_get(&name, version).await?;
            if json {
                print_json(&m);
            } else {
                println!("mapping {} version {}", m.name, m.version);
                println!("created {} by {}", time(&m.created_at), m.created_by);
                println!("writes  {}", m.attributes.join(", "));
                print_json(&m.document);
            }
        }
        MappingCmd::List => {
            let l = c.mapping_list().await?;
            print_list(&l, json, &MAPPING_HEADER, mapping_row);
        }
        MappingCmd::Versions { name } => {
            let l = c.mapping_versions(&name).await?;
            print_list(&l, json, &MAPPING_HEADER, mapping_row);
        }
    }
    Ok(())
}

async fn import_cmd(c: &Client, cmd: ImportCmd, json: bool) -> Result<(), ClientError> {
    match cmd {
        ImportCmd::List {
            state,
            limit,
            after,
        } => {
            let p = c.import_list(state, limit, after.as_deref()).await?;
            if json {
                print_json(&p);
            } else {
                let rows: Vec<_> = p.items.iter().map(import_row).collect();
                table(&IMPORT_HEADER, &rows);
            }
            more(&p, json);
        }
        ImportCmd::Show { id } => {
            let i = c.import_get(&id).await?;
            if json {
                print_json(&i);
            } else {
                println!("id        {}", i.id);
                println!(
                    "state     {}{}",
                    i.state.as_str(),
                    if i.dry_run { " (dry run)" } else { "" }
                );
                println!("client    {}", i.client_id);
                if let Some(o) = &i.on_behalf_of {
                    println!("for       {o}");
                }
                println!("mapping   {} version {}", i.mapping, i.mapping_version);
                println!("mode      {}, {}, {} bytes", i.mode, i.format, i.bytes);
                println!("created   {}", time(&i.created_at));
                if let Some(f) = &i.finished_at {
                    println!("finished  {}", time(f));
                }
                println!("counts    {}", counts_line(&i.counts));
                if let Some(e) = &i.error {
                    println!("error     {}: {}", e.code, e.message);
                }
            }
        }
        ImportCmd::Errors { id, limit, after } => {
            let p = c.import_errors(&id, limit, after.as_deref()).await?;
            if json {
                print_json(&p);
            } else {
                print_row_errors(&p.items);
            }
            more(&p, json);
        }
    }
    Ok(())
}

/// A JSON attribute value as a person reads it: strings without quotes.
fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

fn print_person(p: &PersonInfo) {
    println!("external_id   {}", p.external_id);
    println!("version       {}", p.version);
    println!("updated       {} by {}", time(&p.updated_at), p.updated_by);
    if let Some(o) = &p.on_behalf_of {
        println!("on behalf of  {o}");
    }
    println!("source        {}", p.source);
    println!(
        "roles         {}",
        if p.roles.is_empty() {
            "-".to_owned()
        } else {
            p.roles.join(", ")
        }
    );
    let width = p.attributes.keys().map(|k| k.len()).max().unwrap_or(0);
    for (k, v) in &p.attributes {
        println!("  {k:<width$}  {}", value_text(v));
    }
}

async fn person_cmd(c: &Client, cmd: PersonCmd, json: bool) -> Result<(), ClientError> {
    match cmd {
        PersonCmd::Show { id } => {
            let p = c.person_get(&id).await?;
            if json {
                print_json(&p);
            } else {
                print_person(&p);
            }
        }
        PersonCmd::List { limit, after } => {
            let p = c.person_list(limit, after.as_deref()).await?;
            if json {
                print_json(&p);
            } else {
                let rows: Vec<_> = p
                    .items
                    .iter()
                    .map(|p| {
                        let a = |k: &str| p.attributes.get(k).map(value_text).unwrap_or_default();
                        vec![
                            p.external_id.clone(),
                            a("display_name"),
                            a("employment_status"),
                            p.version.to_string(),
                            time(&p.updated_at),
                            p.updated_by.clone(),
                        ]
                    })
                    .collect();
                table(
                    &["EXTERNAL_ID", "NAME", "STATUS", "VERSION", "UPDATED", "BY"],
                    &rows,
                );
            }
            more(&p, json);
        }
    }
    Ok(())
}

async fn audit_cmd(c: &Client, cmd: AuditCmd, json: bool) -> Result<ExitCode, ClientError> {
    match cmd {
        AuditCmd::List { after, limit } => {
            let p = c.audit_list(after, limit).await?;
            if json {
                print_json(&p);
            } else {
                let rows: Vec<_> = p
                    .items
                    .iter()
                    .map(|e| {
                        vec![
                            e.seq.to_string(),
                            e.at.clone(),
                            e.principal.clone(),
                            opt(&e.on_behalf_of),
                            e.source.clone(),
                            e.action.clone(),
                            opt(&e.person),
                        ]
                    })
                    .collect();
                table(
                    &[
                        "SEQ",
                        "AT",
                        "PRINCIPAL",
                        "ON_BEHALF_OF",
                        "SOURCE",
                        "ACTION",
                        "PERSON",
                    ],
                    &rows,
                );
            }
            more(&p, json);
            Ok(ExitCode::SUCCESS)
        }
        AuditCmd::Verify => {
            let v = c.audit_verify().await?;
            if json {
                print_json(&v);
            } else if v.ok {
                println!("ok, {} entries", v.entries_verified);
            } else {
                println!(
                    "BROKEN at entry {}: {}",
                    v.first_bad_seq.map_or("?".to_owned(), |s| s.to_string()),
                    v.problem.as_deref().unwrap_or("unknown problem")
                );
            }
            Ok(if v.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

const KEY_HEADER: [&str; 6] = ["ID", "KIND", "ALGORITHM", "PURPOSE", "STATE", "CREATED"];

fn key_row(k: &KeyInfo) -> Vec<String> {
    vec![
        k.id.clone(),
        k.kind.clone(),
        k.algorithm.clone(),
        k.purpose.clone(),
        k.state.clone(),
        time(&k.created_at),
    ]
}

fn show_key(k: &KeyInfo, json: bool) {
    if json {
        print_json(k);
        return;
    }
    println!("key:       {}", k.id);
    println!("kind:      {} {}", k.kind, k.algorithm);
    println!("purpose:   {}", k.purpose);
    println!("state:     {}", k.state);
    println!("key ids:   {}", k.key_ids.join(", "));
    println!("{}", k.public_key.trim_end());
}

fn read_key_file(file: &Path) -> Result<String, ClientError> {
    std::fs::read_to_string(file).map_err(|e| {
        ClientError::Io(std::io::Error::new(
            e.kind(),
            format!("{}: {e}", file.display()),
        ))
    })
}

async fn key_cmd(c: &Client, cmd: KeyCmd, json: bool) -> Result<(), ClientError> {
    match cmd {
        KeyCmd::Create { algorithm } => {
            let (kind, alg) = match algorithm {
                KeyAlgorithm::Curve25519 => ("openpgp", "curve25519"),
                KeyAlgorithm::Rsa3072 => ("openpgp", "rsa3072"),
                KeyAlgorithm::Rsa4096 => ("openpgp", "rsa4096"),
                KeyAlgorithm::Age => ("age", "x25519"),
            };
            let spec = KeySpec {
                kind: Some(kind.into()),
                algorithm: Some(alg.into()),
                ..KeySpec::default()
            };
            show_key(&c.key_create(&spec).await?, json);
        }
        KeyCmd::Import { file } => {
            let spec = KeySpec {
                secret_key: Some(read_key_file(&file)?),
                ..KeySpec::default()
            };
            show_key(&c.key_create(&spec).await?, json);
        }
        KeyCmd::AddSender { file } => {
            let spec = KeySpec {
                purpose: Some("sender_verification".into()),
                public_key: Some(read_key_file(&file)?),
                ..KeySpec::default()
            };
            show_key(&c.key_create(&spec).await?, json);
        }
        KeyCmd::List => {
            let l = c.key_list().await?;
            print_list(&l, json, &KEY_HEADER, key_row);
        }
        KeyCmd::Show { id } => show_key(&c.key_get(&id).await?, json),
        KeyCmd::Rotate { id } => show_key(&c.key_rotate(&id).await?, json),
        KeyCmd::Revoke { id } => show_key(&c.key_revoke(&id).await?, json),
    }
    Ok(())
}

fn show_client_keys(k: &ClientKeysInfo, json: bool) {
    if json {
        print_json(k);
        return;
    }
    println!("client:   {}", k.client_id);
    println!("hmac:     {}", if k.hmac { "set" } else { "-" });
    println!("ed25519:  {}", opt(&k.ed25519_public_key));
    println!(
        "jwt keys: {}",
        if k.jwt_keys.is_some() { "set" } else { "-" }
    );
}

async fn client_key_cmd(c: &Client, cmd: ClientKeyCmd, json: bool) -> Result<(), ClientError> {
    match cmd {
        ClientKeyCmd::Show { id } => show_client_keys(&c.client_keys(&id).await?, json),
        ClientKeyCmd::Hmac { id } => {
            let k = c.client_hmac_issue(&id).await?;
            if json {
                print_json(&k);
            } else {
                println!("client_id: {}", k.client_id);
                println!("alg:       {}", k.alg);
                println!("hmac_key:  {}", k.hmac_key);
                println!("(the key is shown once and will not be shown again; store it now)");
            }
        }
        ClientKeyCmd::Ed25519 { id, file } => {
            let public_key = read_key_file(&file)?.trim().to_owned();
            let k = c
                .client_ed25519_set(&id, &Ed25519KeyRequest { public_key })
                .await?;
            show_client_keys(&k, json);
        }
        ClientKeyCmd::Jwt { id, file } => {
            let text = read_key_file(&file)?;
            let req = if text.trim_start().starts_with("-----BEGIN") {
                JwtKeysRequest {
                    jwks: None,
                    public_key_pem: Some(text),
                }
            } else {
                let v = serde_json::from_str(&text).map_err(|e| {
                    ClientError::InvalidInput(format!(
                        "{}: neither PEM nor JSON ({e})",
                        file.display()
                    ))
                })?;
                JwtKeysRequest {
                    jwks: Some(v),
                    public_key_pem: None,
                }
            };
            show_client_keys(&c.client_jwt_keys_set(&id, &req).await?, json);
        }
        ClientKeyCmd::Remove { id, kind } => {
            show_client_keys(&c.client_key_remove(&id, &kind).await?, json)
        }
    }
    Ok(())
}

/// One item as the API's JSON (`--json`) or as a one-row table.
fn print_one<T: serde::Serialize>(
    item: &T,
    json: bool,
    header: &[&str],
    row: fn(&T) -> Vec<String>,
) {
    if json {
        print_json(item);
    } else {
        table(header, &[row(item)]);
    }
}

/// A list as the API's JSON (`--json`) or as a table, one row an item.
fn print_list<T: serde::Serialize>(
    items: &[T],
    json: bool,
    header: &[&str],
    row: fn(&T) -> Vec<String>,
) {
    if json {
        print_json(&items);
    } else {
        let rows: Vec<_> = items.iter().map(row).collect();
        table(header, &rows);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    fn files(files: &[(&str, &str)]) -> impl Fn(&Path) -> std::io::Result<String> {
        let m: HashMap<PathBuf, String> = files
            .iter()
            .map(|(k, v)| (PathBuf::from(k), v.to_string()))
            .collect();
        move |p| {
            m.get(p)
                .cloned()
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
        }
    }

    #[test]
    fn the_admin_token_comes_from_the_file_flag_then_the_environment_then_the_data_dir() {
        let fs = files(&[
            ("t.txt", "mat_file\n"),
            ("muster-data/initial-admin-token", "mat_initial\n"),
            ("/srv/m/initial-admin-token", "mat_srv\n"),
        ]);
        let e = env(&[("MUSTER_ADMIN_TOKEN", "mat_env")]);
        let t = admin_token(Some(Path::new("t.txt")), &e, &fs).unwrap();
        assert_eq!(t.expose_secret(), "mat_file");
        let t = admin_token(None, &e, &fs).unwrap();
        assert_eq!(t.expose_secret(), "mat_env");
        let t = admin_token(None, env(&[]), &fs).unwrap();
        assert_eq!(t.expose_secret(), "mat_initial");
        let t = admin_token(None, env(&[("MUSTER_DATA_DIR", "/srv/m")]), &fs).unwrap();
        assert_eq!(t.expose_secret(), "mat_srv");
    }

    #[test]
    fn a_missing_or_empty_admin_token_is_explained() {
        let e = admin_token(None, env(&[]), files(&[])).unwrap_err();
        assert!(
            e.contains("MUSTER_ADMIN_TOKEN") && e.contains("--token-file"),
            "{e}"
        );
        let e = admin_token(None, env(&[("MUSTER_ADMIN_TOKEN", " ")]), files(&[])).unwrap_err();
        assert!(e.contains("empty"), "{e}");
        let e = admin_token(Some(Path::new("nope")), env(&[]), files(&[])).unwrap_err();
        assert!(e.contains("cannot read nope"), "{e}");
    }

    #[test]
    fn attribute_values_print_without_json_quotes() {
        assert_eq!(value_text(&serde_json::json!("Ops")), "Ops");
        assert_eq!(value_text(&serde_json::json!(true)), "true");
        assert_eq!(value_text(&serde_json::Value::Null), "-");
    }
}
