//! Helpers: tool detection, a GnuPG home per test, and reading a
//! decrypted stream to its end into a `DecryptError`.
use muster_intake::decrypt::{decrypt_reader, DecryptError, DecryptionKey, Limits, SignerKey};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Whether `tool` runs. Missing: a failure under `CI=true`, else a skip.
pub fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{tool} is not installed and CI=true requires the interop tests: run scripts/install-test-tools");
    }
    // Straight to the process's stderr: libtest captures `eprintln!` of
    // passing tests, and a skip must not go unnoticed.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {tool} not installed (run scripts/install-test-tools)"
    );
    false
}

/// A CSV export of `rows` people, large enough to span many packets.
pub fn csv(rows: usize) -> Vec<u8> {
    let mut out = b"Employee ID,First Name,Last Name,Email,Department\n".to_vec();
    for i in 0..rows {
        out.extend_from_slice(
            format!(
                "E{i:06},Grace,Hopper,grace{i}@example.test,Engineering {}\n",
                i % 17
            )
            .as_bytes(),
        );
    }
    out
}

/// Decrypts to the end; an error of the reader comes back as the
/// `DecryptError` it wraps.
pub fn decrypt_all(
    cipher: &[u8],
    keys: &[DecryptionKey],
    limits: &Limits,
    verify: Option<&SignerKey>,
) -> Result<Vec<u8>, DecryptError> {
    let mut r = decrypt_reader(cipher, keys, limits, verify)?;
    let mut out = Vec::new();
    match r.read_to_end(&mut out) {
        Ok(_) => Ok(out),
        Err(e) => {
            assert!(
                DecryptError::from_io(&e).is_some(),
                "not a DecryptError: {e}"
            );
            Err(*e.into_inner().unwrap().downcast::<DecryptError>().unwrap())
        }
    }
}

pub fn decrypt_ok(cipher: &[u8], keys: &[DecryptionKey]) -> Vec<u8> {
    decrypt_all(cipher, keys, &Limits::default(), None).unwrap_or_else(|e| panic!("{e}"))
}

pub fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The kinds of key GnuPG makes here.
#[derive(Debug, Clone, Copy)]
pub enum GpgKind {
    Rsa3072,
    Curve25519,
}

/// A GnuPG home of its own (GNUPGHOME), removed at the end.
pub struct Gpg {
    pub dir: tempfile::TempDir,
}

impl Gpg {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        Self { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new("gpg")
            .env("GNUPGHOME", self.dir.path())
            .args([
                "--batch",
                "--yes",
                "--no-tty",
                "--quiet",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                "--trust-model",
                "always",
            ])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> Vec<u8> {
        let out = self.run(args);
        assert_success(&out, &format!("gpg {args:?}"));
        out.stdout
    }

    /// Generates a key (primary certifies and signs, subkey encrypts);
    /// returns the primary fingerprint.
    pub fn gen_key(&self, kind: GpgKind, email: &str) -> String {
        let uid = format!("Test <{email}>");
        let (primary, sub) = match kind {
            GpgKind::Rsa3072 => ("rsa3072", "rsa3072"),
            GpgKind::Curve25519 => ("ed25519", "cv25519"),
        };
        self.ok(&["--quick-gen-key", &uid, primary, "sign,cert", "never"]);
        let fpr = self.fingerprint(email);
        self.ok(&["--quick-add-key", &fpr, sub, "encr", "never"]);
        fpr
    }

    pub fn fingerprint(&self, email: &str) -> String {
        self.key_lines(email, "fpr")[0].clone()
    }

    /// Field 10 (`fpr`) or 5 (`sub`/`pub` key id) of `--with-colons`.
    pub fn key_lines(&self, email: &str, record: &str) -> Vec<String> {
        let out = self.ok(&["--with-colons", "--list-keys", email]);
        let field = if record == "fpr" { 9 } else { 4 };
        String::from_utf8(out)
            .unwrap()
            .lines()
            .filter(|l| l.starts_with(&format!("{record}:")))
            .map(|l| l.split(':').nth(field).unwrap().to_owned())
            .collect()
    }

    pub fn secret_key(&self, fpr: &str) -> DecryptionKey {
        let text = self.ok(&["--armor", "--export-secret-keys", fpr]);
        DecryptionKey::parse(std::str::from_utf8(&text).unwrap()).unwrap()
    }

    pub fn public_key(&self, fpr: &str) -> String {
        String::from_utf8(self.ok(&["--armor", "--export", fpr])).unwrap()
    }

    pub fn import(&self, text: &str) {
        let file = self.path("import.asc");
        std::fs::write(&file, text).unwrap();
        if !text.contains("PRIVATE KEY BLOCK") {
            self.ok(&["--import", file.to_str().unwrap()]);
            return;
        }
        // gpg hands secret keys to gpg-agent; on a loaded machine the
        // agent can miss one while `--import` still exits 0 (seen in CI as
        // "No secret key" on the next decrypt). It can take the primary key
        // and miss the encryption subkey, so import until every secret key
        // of the file (primary and subkeys) is listed.
        // A `sec`/`ssb` record whose field 15 is `#` is a stub: gpg knows
        // the key but the agent holds no secret for it.
        let secrets = |out: &[u8]| {
            String::from_utf8_lossy(out)
                .lines()
                .filter(|l| l.starts_with("sec:") || l.starts_with("ssb:"))
                .filter(|l| l.split(':').nth(14) != Some("#"))
                .count()
        };
        let listed = || secrets(&self.ok(&["--list-secret-keys", "--with-colons"]));
        // The keys of the file, primary and subkeys (listed as `sec`/`ssb`
        // or as `pub`/`sub`, as the gpg version shows a secret key file).
        let shown = self.ok(&["--with-colons", "--show-keys", file.to_str().unwrap()]);
        let wanted = String::from_utf8_lossy(&shown)
            .lines()
            .filter(|l| {
                ["sec:", "ssb:", "pub:", "sub:"]
                    .iter()
                    .any(|r| l.starts_with(r))
            })
            .count();
        assert!(wanted > 0, "the key file holds no key");
        let before = listed();
        for _ in 0..5 {
            self.ok(&["--import", file.to_str().unwrap()]);
            if listed() >= before + wanted {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        panic!("gpg-agent did not take every imported secret key");
    }

    /// Encrypts `plain` with `args` (recipients, options); returns the file.
    pub fn encrypt(&self, plain: &[u8], args: &[&str]) -> Vec<u8> {
        let input = self.path("plain.csv");
        let output = self.path("cipher.gpg");
        std::fs::write(&input, plain).unwrap();
        let mut all: Vec<&str> = args.to_vec();
        all.extend([
            "-o",
            output.to_str().unwrap(),
            "--encrypt",
            input.to_str().unwrap(),
        ]);
        self.ok(&all);
        std::fs::read(&output).unwrap()
    }

    /// `gpg --decrypt` of `cipher`.
    pub fn decrypt(&self, cipher: &[u8]) -> Output {
        let input = self.path("in.gpg");
        std::fs::write(&input, cipher).unwrap();
        self.run(&["--decrypt", input.to_str().unwrap()])
    }
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}
