//! `muster push --config FILE`: what a scheduled push needs, in one TOML
//! file an operator deploys next to the secret it names. The command line
//! wins over the environment, which wins over the file; relative paths in
//! the file are read from the file's own directory. The file is refused
//! when others (not its owner or group) may read it, or anyone but its
//! owner may change it: it says where the credentials are and which
//! gateway receives the people. Group read stays allowed, because that is
//! how Kubernetes (`fsGroup`) and systemd credentials hand a file to a
//! service user.
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushConfig {
    pub url: Option<String>,
    pub client_id: Option<String>,
    /// client-secret, private-key-jwt, hmac or ed25519.
    pub auth: Option<String>,
    pub secret_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub key_id: Option<String>,
    pub signing_key_file: Option<PathBuf>,
    pub file: Option<PathBuf>,
    pub mapping: Option<String>,
    pub mode: Option<String>,
    pub format: Option<String>,
    pub delimiter: Option<String>,
    pub encoding: Option<String>,
    #[serde(default)]
    pub header_map: BTreeMap<String, String>,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub encrypt: bool,
    pub encryption: Option<String>,
    pub encrypt_key_id: Option<String>,
    pub on_behalf_of: Option<String>,
    pub wait: Option<u64>,
    pub retries: Option<u32>,
    pub every: Option<String>,
    pub cron: Option<String>,
}

impl PushConfig {
    /// Reads `path`, refusing it when others may read or change it.
    pub fn load(path: &Path) -> Result<PushConfig, String> {
        let shown = path.display();
        let meta = std::fs::metadata(path).map_err(|e| format!("--config {shown}: {e}"))?;
        private(path, &meta)?;
        let text = std::fs::read_to_string(path).map_err(|e| format!("--config {shown}: {e}"))?;
        let mut c: PushConfig =
            toml::from_str(&text).map_err(|e| format!("--config {shown}: {}", e.message()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        for p in [
            &mut c.file,
            &mut c.secret_file,
            &mut c.key_file,
            &mut c.signing_key_file,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
        Ok(c)
    }

    /// The value the file gives for a credential variable of
    /// [`crate::push::credentials_for`]; `env` is the real environment,
    /// which wins: a secret there hides the file's secret file.
    pub fn var(&self, name: &str, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        match name {
            "MUSTER_CLIENT_ID" => self.client_id.clone(),
            "MUSTER_CLIENT_SECRET_FILE" if env("MUSTER_CLIENT_SECRET").is_none() => {
                path(&self.secret_file)
            }
            "MUSTER_CLIENT_KEY_FILE" => path(&self.key_file),
            "MUSTER_CLIENT_KEY_ID" => self.key_id.clone(),
            "MUSTER_CLIENT_SIGNING_KEY_FILE" => path(&self.signing_key_file),
            _ => None,
        }
    }
}

#[cfg(unix)]
fn private(path: &Path, meta: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o027 != 0 {
        return Err(format!(
            "--config {}: others may read it or someone but its owner may change it (mode {mode:04o}); it names the credentials: chmod 600 {} (or 640)",
            path.display(),
            path.display()
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn private(_: &Path, _: &std::fs::Metadata) -> Result<(), String> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(dir: &Path, text: &str, mode: u32) -> PathBuf {
        let p = dir.join("push.toml");
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn a_config_readable_by_others_is_refused() {
        let d = tempfile::tempdir().unwrap();
        for mode in [0o644, 0o604, 0o620, 0o660, 0o602] {
            let p = write(d.path(), "mapping = \"hr\"\n", mode);
            let e = PushConfig::load(&p).unwrap_err();
            assert!(
                e.contains("chmod 600") && e.contains(&format!("{mode:04o}")),
                "{e}"
            );
        }
        // The owner's alone, or read by its group (a Kubernetes fsGroup).
        for mode in [0o600, 0o400, 0o640, 0o440] {
            let p = write(d.path(), "mapping = \"hr\"\n", mode);
            assert_eq!(PushConfig::load(&p).unwrap().mapping.as_deref(), Some("hr"));
        }
    }

    #[test]
    fn relative_paths_are_read_from_the_files_directory_and_unknown_keys_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "file = \"export/employees.csv\"\nsecret_file = \"/run/secret\"\nclient_id = \"hr\"\n",
            0o600,
        );
        let c = PushConfig::load(&p).unwrap();
        assert_eq!(
            c.file.as_deref(),
            Some(d.path().join("export/employees.csv").as_path())
        );
        let none = |_: &str| None;
        assert_eq!(
            c.var("MUSTER_CLIENT_SECRET_FILE", &none).as_deref(),
            Some("/run/secret")
        );
        assert_eq!(c.var("MUSTER_CLIENT_ID", &none).as_deref(), Some("hr"));
        // A secret in the environment hides the file's secret file.
        let env = |k: &str| (k == "MUSTER_CLIENT_SECRET").then(|| "s".to_owned());
        assert_eq!(c.var("MUSTER_CLIENT_SECRET_FILE", &env), None);

        let p = write(d.path(), "client_secret = \"mcs_x\"\n", 0o600);
        let e = PushConfig::load(&p).unwrap_err();
        assert!(e.contains("client_secret") && !e.contains("mcs_x"), "{e}");
    }
}
