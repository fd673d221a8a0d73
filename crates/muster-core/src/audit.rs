//! The tamper-evident audit chain. Each entry's hash covers its content and
//! the previous entry's hash (per tenant), so changing, removing or
//! reordering any entry breaks every hash after it.
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `prev_hash` of a tenant's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit entry as hashed and stored. Every field is kept as the exact
/// text that was hashed (`at` as RFC 3339, `detail` as JSON text), so a
/// round trip through a database cannot change what verification sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub tenant: String,
    pub seq: i64,
    pub at: String,
    /// Who acted: `client:<client_id>`, `admin:<name>`, `system`.
    pub principal: String,
    pub on_behalf_of: Option<String>,
    /// Where the change came from: `import:<id>`, `api`, `scim`, `login-sync`, `admin`.
    pub source: String,
    /// `person.created`, `person.updated`, `client.created`, `auth.failed`, ...
    pub action: String,
    /// The person's external id, when the entry is about a person.
    pub person: Option<String>,
    /// Field-level before/after changes, or other details of the action,
    /// as JSON text.
    pub detail: String,
    pub prev_hash: String,
}

/// An entry's fields, borrowed: what the hash covers.
#[derive(Debug, Clone, Copy)]
pub struct AuditFields<'a> {
    pub prev_hash: &'a str,
    pub tenant: &'a str,
    pub seq: i64,
    pub at: &'a str,
    pub principal: &'a str,
    pub on_behalf_of: Option<&'a str>,
    pub source: &'a str,
    pub action: &'a str,
    pub person: Option<&'a str>,
    pub detail: &'a str,
}

impl AuditFields<'_> {
    /// SHA-256 over every field, each length-prefixed (so no two entries
    /// encode alike; an absent field differs from an empty one), hex encoded.
    pub fn hash(&self) -> String {
        digest_hex(&self.digest())
    }

    /// The hash as its 32 bytes.
    pub fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"muster-audit-v1");
        let mut field = |b: Option<&[u8]>| match b {
            Some(b) => {
                h.update([1]);
                h.update((b.len() as u64).to_be_bytes());
                h.update(b);
            }
            None => h.update([0]),
        };
        field(Some(self.prev_hash.as_bytes()));
        field(Some(self.tenant.as_bytes()));
        field(Some(&self.seq.to_be_bytes()));
        field(Some(self.at.as_bytes()));
        field(Some(self.principal.as_bytes()));
        field(self.on_behalf_of.map(str::as_bytes));
        field(Some(self.source.as_bytes()));
        field(Some(self.action.as_bytes()));
        field(self.person.map(str::as_bytes));
        field(Some(self.detail.as_bytes()));
        h.finalize().into()
    }
}

impl AuditEntry {
    pub fn fields(&self) -> AuditFields<'_> {
        AuditFields {
            prev_hash: &self.prev_hash,
            tenant: &self.tenant,
            seq: self.seq,
            at: &self.at,
            principal: &self.principal,
            on_behalf_of: self.on_behalf_of.as_deref(),
            source: &self.source,
            action: &self.action,
            person: self.person.as_deref(),
            detail: &self.detail,
        }
    }

    pub fn compute_hash(&self) -> String {
        self.fields().hash()
    }
}

/// A digest as lowercase hex text, written in one go (an import's writer
/// does this for every entry it appends).
pub fn digest_hex(digest: &[u8; 32]) -> String {
    let mut text = [0u8; 64];
    // Neither can fail: the buffer is twice the digest's length, and hex
    // digits are ASCII.
    let _ = hex::encode_to_slice(digest, &mut text);
    std::str::from_utf8(&text)
        .map(str::to_owned)
        .unwrap_or_default()
}

/// Where and how a chain stops being valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("entry {seq}: its content does not match its hash (changed)")]
    Changed { seq: i64 },
    #[error(
        "entry {seq}: expected sequence number {expected} (an entry was removed or reordered)"
    )]
    Sequence { seq: i64, expected: i64 },
    #[error("entry {seq}: does not follow the previous entry's hash (removed or reordered)")]
    Link { seq: i64 },
}

/// Checks a chain one entry at a time, so a caller can stream entries from
/// storage without holding them all.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    prev: String,
    expected: i64,
    verified: u64,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self {
            prev: GENESIS.to_owned(),
            expected: 1,
            verified: 0,
        }
    }
}

impl ChainVerifier {
    pub fn push(&mut self, entry: &AuditEntry, stored_hash: &str) -> Result<(), ChainBreak> {
        if entry.seq != self.expected {
            return Err(ChainBreak::Sequence {
                seq: entry.seq,
                expected: self.expected,
            });
        }
        if entry.prev_hash != self.prev {
            return Err(ChainBreak::Link { seq: entry.seq });
        }
        if entry.compute_hash() != stored_hash {
            return Err(ChainBreak::Changed { seq: entry.seq });
        }
        self.prev = stored_hash.to_owned();
        self.expected += 1;
        self.verified += 1;
        Ok(())
    }
    pub fn verified(&self) -> u64 {
        self.verified
    }
}

impl ChainBreak {
    pub fn seq(&self) -> i64 {
        match self {
            ChainBreak::Changed { seq }
            | ChainBreak::Sequence { seq, .. }
            | ChainBreak::Link { seq } => *seq,
        }
    }
}

/// Walks one tenant's entries in stored order. Returns how many verified.
pub fn verify_chain<I>(entries: I) -> Result<u64, ChainBreak>
where
    I: IntoIterator<Item = (AuditEntry, String)>,
{
    let mut v = ChainVerifier::default();
    for (entry, hash) in entries {
        v.push(&entry, &hash)?;
    }
    Ok(v.verified())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_reads_as_the_hex_crate_writes_it() {
        let d: [u8; 32] = std::array::from_fn(|i| (i * 37 + 5) as u8);
        assert_eq!(digest_hex(&d), hex::encode(d));
    }

    fn chain(n: i64) -> Vec<(AuditEntry, String)> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let e = AuditEntry {
                    tenant: "default".into(),
                    seq,
                    at: "2026-01-01T00:00:00.000000Z".into(),
                    principal: "client:c".into(),
                    on_behalf_of: None,
                    source: "api".into(),
                    action: "person.updated".into(),
                    person: Some(format!("E{seq}")),
                    detail: format!("[{{\"attribute\":\"x\",\"after\":{seq}}}]"),
                    prev_hash: prev.clone(),
                };
                let h = e.compute_hash();
                prev = h.clone();
                (e, h)
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(verify_chain(chain(5)), Ok(5));
    }
    #[test]
    fn an_edited_entry_is_named() {
        let mut c = chain(5);
        c[2].0.person = Some("E99".into());
        assert_eq!(verify_chain(c), Err(ChainBreak::Changed { seq: 3 }));
    }
    #[test]
    fn a_removed_or_reordered_entry_is_named() {
        let mut c = chain(5);
        c.remove(1);
        assert_eq!(
            verify_chain(c),
            Err(ChainBreak::Sequence {
                seq: 3,
                expected: 2
            })
        );
        let mut c = chain(5);
        c.swap(1, 2);
        assert!(verify_chain(c).is_err());
    }
}
