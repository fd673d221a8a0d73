//! Options of uploads and mappings, with the media types and query
//! parameters they become.
use muster_proto::{ImportProgress, ImportState};
use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

/// The format of an uploaded file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    Csv,
    Jsonl,
    /// A SCIM BulkRequest or ListResponse of Users, read by the SCIM User
    /// mapping (no stored mapping).
    Scim,
}

impl ImportFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ImportFormat::Csv => "csv",
            ImportFormat::Jsonl => "jsonl",
            ImportFormat::Scim => "scim",
        }
    }

    /// The `Content-Type` of the upload.
    pub fn content_type(self) -> &'static str {
        match self {
            ImportFormat::Csv => "text/csv",
            ImportFormat::Jsonl => "application/x-ndjson",
            ImportFormat::Scim => "application/scim+json",
        }
    }

    /// From the file name: `.csv`, `.jsonl` or `.ndjson` (any case), also
    /// under an encryption suffix (`.gpg`, `.pgp`, `.asc`, `.age`:
    /// `employees.csv.gpg` is CSV, encrypted); a SCIM file is named with
    /// `--format scim`.
    pub fn from_path(path: &Path) -> Option<Self> {
        let mut ext = path.extension()?.to_str()?.to_ascii_lowercase();
        if ["gpg", "pgp", "asc", "age"].contains(&ext.as_str()) {
            ext = Path::new(path.file_stem()?)
                .extension()?
                .to_str()?
                .to_ascii_lowercase();
        }
        match ext.as_str() {
            "csv" => Some(ImportFormat::Csv),
            "jsonl" | "ndjson" => Some(ImportFormat::Jsonl),
            _ => None,
        }
    }
}

impl FromStr for ImportFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "csv" => Ok(ImportFormat::Csv),
            "jsonl" | "ndjson" => Ok(ImportFormat::Jsonl),
            "scim" => Ok(ImportFormat::Scim),
            _ => Err(format!("'{s}' is not a format: use csv, jsonl or scim")),
        }
    }
}

pub use muster_proto::ImportMode;

/// Options of an upload (`POST /api/v1/imports`).
#[derive(Debug, Clone, Default)]
pub struct ImportParams {
    /// The stored mapping to apply (none for a SCIM file).
    pub mapping: String,
    /// The gateway's default (upsert) when `None`.
    pub mode: Option<ImportMode>,
    /// Report what would change without writing.
    pub dry_run: bool,
    /// Let the gateway hold the answer until the import is final or this
    /// many seconds passed.
    pub wait_seconds: Option<u64>,
    /// From the file's extension when `None`.
    pub format: Option<ImportFormat>,
    /// The CSV delimiter (`\t` is sent as `tab`).
    pub delimiter: Option<char>,
    /// Mapping column name -> column name in this file, for this import
    /// only.
    pub header_map: BTreeMap<String, String>,
    /// The same key returns the same import: a retried upload cannot
    /// import twice.
    pub idempotency_key: Option<String>,
    /// Recorded in the audit trail; never used for authorisation.
    pub on_behalf_of: Option<String>,
    /// Encrypt the file while it streams out, to this tenant key.
    pub encrypt_to: Option<EncryptTo>,
    /// The file's text encoding label (`windows-1252`, `utf-16le`, ...);
    /// the gateway reads UTF-8, strictly, when `None`.
    pub encoding: Option<String>,
}

/// A tenant key to encrypt an upload to, as `GET /api/v1/keys` lists it.
#[derive(Debug, Clone)]
pub struct EncryptTo {
    /// The key's id, sent as `encryption_key_id`.
    pub key_id: String,
    /// `openpgp` or `age`.
    pub kind: String,
    /// Armored OpenPGP public key, or the age recipient.
    pub public_key: String,
}

impl EncryptTo {
    pub fn from_key(k: &muster_proto::KeyInfo) -> Self {
        Self {
            key_id: k.id.clone(),
            kind: k.kind.clone(),
            public_key: k.public_key.clone(),
        }
    }
}

impl ImportParams {
    /// A plain upsert with the given mapping.
    pub fn new(mapping: impl Into<String>) -> Self {
        Self {
            mapping: mapping.into(),
            ..Self::default()
        }
    }

    /// The query string pairs, with the format already settled.
    pub(crate) fn query(&self, format: Option<ImportFormat>) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if !self.mapping.is_empty() {
            q.push(("mapping", self.mapping.clone()));
        }
        if let Some(m) = self.mode {
            q.push(("mode", m.as_str().to_owned()));
        }
        if self.dry_run {
            q.push(("dry_run", "true".to_owned()));
        }
        if let Some(w) = self.wait_seconds {
            q.push(("wait", w.to_string()));
        }
        if let Some(f) = format {
            q.push(("format", f.as_str().to_owned()));
        }
        if let Some(d) = self.delimiter {
            let d = if d == '\t' {
                "tab".to_owned()
            } else {
                d.to_string()
            };
            q.push(("delimiter", d));
        }
        if let Some(e) = &self.encoding {
            q.push(("encoding", e.clone()));
        }
        if let Some(e) = &self.encrypt_to {
            let kind = if e.kind == "age" { "age" } else { "pgp" };
            q.push(("encryption", kind.to_owned()));
            q.push(("encryption_key_id", e.key_id.clone()));
        }
        if !self.header_map.is_empty() {
            // A map of strings always serialises.
            if let Ok(json) = serde_json::to_string(&self.header_map) {
                q.push(("header_map", json));
            }
        }
        q
    }
}

/// The language of a mapping document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MappingFormat {
    Toml,
    Json,
}

impl MappingFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            MappingFormat::Toml => "application/toml",
            MappingFormat::Json => "application/json",
        }
    }

    /// From the file name: `.toml` or `.json` (any case).
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "toml" => Some(MappingFormat::Toml),
            "json" => Some(MappingFormat::Json),
            _ => None,
        }
    }
}

/// One Server-Sent Event of `GET /api/v1/imports/{id}/events`.
#[derive(Debug, Clone)]
pub enum ImportEvent {
    /// The import moved (`event: progress`).
    Progress(ImportProgress),
    /// The import is final (`event: done`); the stream ends after it.
    Done(ImportProgress),
}

impl ImportEvent {
    pub fn progress(&self) -> &ImportProgress {
        match self {
            ImportEvent::Progress(p) | ImportEvent::Done(p) => p,
        }
    }

    pub fn state(&self) -> ImportState {
        self.progress().state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_come_from_the_file_name() {
        assert_eq!(
            ImportFormat::from_path(Path::new("a/b.CSV")),
            Some(ImportFormat::Csv)
        );
        assert_eq!(
            ImportFormat::from_path(Path::new("x.ndjson")),
            Some(ImportFormat::Jsonl)
        );
        for (name, format) in [
            ("employees.csv.gpg", Some(ImportFormat::Csv)),
            ("employees.csv.pgp", Some(ImportFormat::Csv)),
            ("employees.CSV.asc", Some(ImportFormat::Csv)),
            ("employees.csv.age", Some(ImportFormat::Csv)),
            ("people.jsonl.age", Some(ImportFormat::Jsonl)),
            ("people.gpg", None),
            ("people.txt.gpg", None),
            ("x.gpg.csv", Some(ImportFormat::Csv)),
        ] {
            assert_eq!(ImportFormat::from_path(Path::new(name)), format, "{name}");
        }
        assert_eq!(
            MappingFormat::from_path(Path::new("m.toml")),
            Some(MappingFormat::Toml)
        );
        assert_eq!(MappingFormat::from_path(Path::new("m")), None);
    }

    #[test]
    fn import_parameters_become_the_query() {
        let p = ImportParams {
            mode: Some(ImportMode::Snapshot),
            dry_run: true,
            wait_seconds: Some(5),
            delimiter: Some('\t'),
            encoding: Some("windows-1252".into()),
            header_map: [("Given".to_string(), "First Name".to_string())].into(),
            ..ImportParams::new("workday")
        };
        let q = p.query(Some(ImportFormat::Csv));
        assert_eq!(
            q,
            vec![
                ("mapping", "workday".to_owned()),
                ("mode", "snapshot".to_owned()),
                ("dry_run", "true".to_owned()),
                ("wait", "5".to_owned()),
                ("format", "csv".to_owned()),
                ("delimiter", "tab".to_owned()),
                ("encoding", "windows-1252".to_owned()),
                ("header_map", r#"{"Given":"First Name"}"#.to_owned()),
            ]
        );
        let plain = ImportParams::new("m").query(None);
        assert_eq!(plain, vec![("mapping", "m".to_owned())]);
    }
}
