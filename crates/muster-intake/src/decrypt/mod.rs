//! Streaming decryption of uploads (docs/intake.md#encrypted-uploads): an upload may arrive
//! encrypted with OpenPGP (RFC 4880 / RFC 9580, as GnuPG makes it, armored
//! or binary) or with age (v1, binary or armored). [`detect`] tells which
//! from the first bytes, and [`decrypt_reader`] turns the ciphertext into a
//! plaintext [`Read`] with memory bounded whatever the file's size; nothing
//! is written to disk.
//!
//! # Integrity failures surface at the end of the stream
//!
//! Both formats authenticate the plaintext, but a streaming reader hands
//! plaintext out before it has seen all of the ciphertext. An OpenPGP
//! SEIPDv1 message is checked only by its final MDC packet, a signature only
//! once all signed data was hashed, and an age file is checked chunk by chunk
//! (64 KiB) with truncation detected at the last chunk. So a truncated or
//! altered file can yield plaintext first and an error only at the end:
//! the reader then returns an [`io::Error`] of kind
//! [`io::ErrorKind::InvalidData`] wrapping a [`DecryptError`]
//! (see [`DecryptError::from_io`]). **The caller must treat everything it
//! read as unauthenticated until the reader returned `Ok(0)`, and abort the
//! whole import on any error** (as the gateway does anyway, docs/intake.md#encrypted-uploads:
//! a decryption failure rejects the whole import with nothing applied).
//!
//! # Refusals
//!
//! Each is its own [`DecryptError`] variant and none of their messages
//! carries plaintext or key material: a message encrypted to none of the
//! given keys (naming the key ids it was encrypted to), an integrity
//! failure, legacy OpenPGP encryption without integrity protection (SED
//! packets), a decompression bomb (checked while streaming against
//! [`Limits`]), and a missing or foreign signature when one is required.
//!
//! The client side, [`encrypt_writer`], encrypts to an OpenPGP public key or
//! an age recipient, also streaming.
use std::io::{self, Read, Write};

mod age_file;
mod guard;
mod keys;
mod openpgp;

pub use keys::{DecryptionKey, OpenPgpKeyKind, PublicRecipient, SignerKey};

/// How an upload is encrypted, as told by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encryption {
    /// Not encrypted (or not in a format we know).
    None,
    /// An OpenPGP message; `armored` for ASCII armor (RFC 9580 section 6).
    OpenPgp { armored: bool },
    /// An age v1 file; `armored` for the PEM-like armor.
    Age { armored: bool },
}

/// How many bytes [`detect`] wants to see to be sure (it works with fewer).
pub const DETECT_BYTES: usize = 64;

const AGE_HEADER: &[u8] = b"age-encryption.org/v1\n";
const AGE_ARMOR: &[u8] = b"-----BEGIN AGE ENCRYPTED FILE-----";
const PGP_ARMOR: &[u8] = b"-----BEGIN PGP MESSAGE-----";

/// Tells the encryption of an upload from its first bytes (at least
/// [`DETECT_BYTES`] of them when the file is that long).
pub fn detect(first_bytes: &[u8]) -> Encryption {
    if first_bytes.starts_with(AGE_HEADER) {
        return Encryption::Age { armored: false };
    }
    // Armor may follow a UTF-8 byte order mark or blank lines.
    let text = first_bytes
        .strip_prefix(b"\xEF\xBB\xBF")
        .unwrap_or(first_bytes);
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(text.len());
    let text = &text[start..];
    if text.starts_with(AGE_ARMOR) {
        return Encryption::Age { armored: true };
    }
    if text.starts_with(PGP_ARMOR) {
        return Encryption::OpenPgp { armored: true };
    }
    if openpgp::looks_like_binary_encrypted(first_bytes) {
        return Encryption::OpenPgp { armored: false };
    }
    Encryption::None
}

/// Bounds on what decryption may produce, enforced while streaming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most plaintext bytes one upload may decrypt (and decompress) to.
    pub max_decompressed_bytes: u64,
    /// Most plaintext bytes per ciphertext byte read. Checked only past
    /// [`Limits::ratio_grace_bytes`] of plaintext, so that small files that
    /// compress well are not refused.
    pub max_ratio: u64,
    /// Plaintext bytes produced before [`Limits::max_ratio`] applies.
    pub ratio_grace_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_decompressed_bytes: 4 * 1024 * 1024 * 1024,
            // CSV exports compress 5 to 20 times; a run of zeros, 1000 times
            // (zlib) to a million times (bzip2).
            max_ratio: 100,
            ratio_grace_bytes: 8 * 1024 * 1024,
        }
    }
}

/// Which bound of [`Limits`] a decompression bomb crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BombLimit {
    /// [`Limits::max_decompressed_bytes`].
    Size { limit: u64 },
    /// [`Limits::max_ratio`]; `ciphertext` bytes had been read when
    /// `plaintext` bytes came out.
    Ratio {
        limit: u64,
        plaintext: u64,
        ciphertext: u64,
    },
}

/// Why an upload could not be decrypted. Messages name formats, key ids and
/// limits only: never plaintext, never key material.
#[derive(Debug, thiserror::Error)]
pub enum DecryptError {
    #[error("the upload is not encrypted (no OpenPGP or age header found)")]
    NotEncrypted,
    #[error("{}", no_matching_key_message(.recipients))]
    NoMatchingKey {
        /// Key ids the message names as its recipients (OpenPGP: 16 hex
        /// digits; empty for age, whose recipients are anonymous).
        recipients: Vec<String>,
    },
    #[error(
        "the upload failed its integrity check: it was truncated or altered ({0}); \
         nothing of it may be used"
    )]
    Integrity(String),
    #[error(
        "the upload uses legacy OpenPGP encryption without integrity protection \
         (Symmetrically Encrypted Data packet, no MDC); re-encrypt it with a current \
         OpenPGP implementation"
    )]
    LegacyUnprotected,
    #[error("{}", bomb_message(.0))]
    DecompressionBomb(BombLimit),
    #[error("a signature by key {expected} is required but the upload is not signed")]
    SignatureMissing { expected: String },
    #[error(
        "a signature by key {expected} is required but the upload is signed by {}",
        .found.join(", ")
    )]
    SignatureWrongKey {
        expected: String,
        found: Vec<String>,
    },
    #[error("the upload's signature by key {0} does not verify: it was altered")]
    SignatureInvalid(String),
    #[error("the upload is not a well-formed {format} message ({detail})")]
    Malformed {
        format: &'static str,
        detail: String,
    },
    #[error("unsupported encryption: {0}")]
    Unsupported(String),
    #[error("invalid key: {0}")]
    InvalidKey(String),
    #[error("decryption failed: {0}")]
    Failed(String),
    #[error("reading the upload failed: {0}")]
    Io(#[source] io::Error),
}

fn no_matching_key_message(recipients: &[String]) -> String {
    if recipients.is_empty() {
        "the upload is not encrypted to any of the given keys".to_owned()
    } else {
        format!(
            "the upload is not encrypted to any of the given keys; it is encrypted to {}",
            recipients.join(", ")
        )
    }
}

fn bomb_message(limit: &BombLimit) -> String {
    match limit {
        BombLimit::Size { limit } => format!(
            "the upload decompresses to more than {limit} bytes (the limit): refused as a \
             decompression bomb"
        ),
        BombLimit::Ratio {
            limit,
            plaintext,
            ciphertext,
        } => format!(
            "the upload decompresses more than {limit} times ({plaintext} bytes out of \
             {ciphertext}): refused as a decompression bomb"
        ),
    }
}

/// A library's error text cut to at most `max` bytes, at a character
/// boundary: the text may quote parts of the message in any script, and
/// `String::truncate` panics inside a character.
pub(crate) fn clipped(e: impl std::fmt::Display, max: usize) -> String {
    let mut s = e.to_string();
    if s.len() > max {
        let mut at = max;
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
    }
    s
}

impl DecryptError {
    /// The [`DecryptError`] inside an error returned by the reader of
    /// [`decrypt_reader`], if it is one (an error of the underlying input
    /// is returned as it came).
    pub fn from_io(err: &io::Error) -> Option<&DecryptError> {
        err.get_ref()?.downcast_ref::<DecryptError>()
    }

    pub(crate) fn into_io(self) -> io::Error {
        match self {
            DecryptError::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

/// Error of [`encrypt_writer`] and of key generation.
#[derive(Debug, thiserror::Error)]
pub enum EncryptError {
    #[error("the recipient key cannot encrypt: {0}")]
    UnusableKey(String),
    #[error("encryption failed: {0}")]
    Failed(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Plaintext of an encrypted upload, read as it is decrypted. See the
/// module docs: an error, possibly at the very end, means the whole upload
/// must be discarded.
pub struct DecryptReader<'a> {
    inner: Box<dyn Read + Send + 'a>,
}

impl std::fmt::Debug for DecryptReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DecryptReader")
    }
}

impl Read for DecryptReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

/// Decrypts `input` (OpenPGP or age, armored or binary, told from its
/// content) with whichever of `keys` it was encrypted to.
///
/// Errors found before any plaintext (not encrypted to these keys, legacy
/// encryption, a header that does not parse, a required signature that is
/// missing) are returned here; later ones by the reader (see the module
/// docs). With `verify`, the OpenPGP message must carry a valid signature
/// by that key, checked at the end of the stream; age files carry no
/// signatures and are then refused.
pub fn decrypt_reader<'a, R: Read + Send + 'a>(
    input: R,
    keys: &[DecryptionKey],
    limits: &Limits,
    verify: Option<&SignerKey>,
) -> Result<DecryptReader<'a>, DecryptError> {
    let (counted, progress) = guard::CountingReader::new(input);
    let mut input = io::BufReader::with_capacity(64 * 1024, counted);
    let head = {
        use io::BufRead;
        // One fill is enough for detection: BufReader reads up to its
        // capacity, and a short first read only weakens binary detection.
        let buf = input.fill_buf().map_err(DecryptError::Io)?;
        detect(&buf[..buf.len().min(DETECT_BYTES)])
    };
    let plain: Box<dyn Read + Send + 'a> = match head {
        Encryption::None => return Err(DecryptError::NotEncrypted),
        Encryption::Age { .. } => {
            if let Some(signer) = verify {
                return Err(DecryptError::SignatureMissing {
                    expected: signer.key_id(),
                });
            }
            age_file::decrypt(input, keys, progress.clone())?
        }
        Encryption::OpenPgp { .. } => openpgp::decrypt(input, keys, verify, progress.clone())?,
    };
    Ok(DecryptReader {
        inner: Box::new(guard::LimitReader::new(plain, *limits, progress)),
    })
}

/// Encrypts everything written to it for one recipient. Call
/// [`EncryptWriter::finish`] at the end: without it the output is
/// truncated and will not decrypt.
pub struct EncryptWriter<W: Write + Send + 'static> {
    inner: EncryptInner<W>,
}

enum EncryptInner<W: Write + Send + 'static> {
    Age(age_file::AgeWriter<W>),
    OpenPgp(openpgp::PgpWriter<W>),
}

impl<W: Write + Send + 'static> EncryptWriter<W> {
    /// Writes the end of the message and returns the output writer.
    pub fn finish(self) -> Result<W, EncryptError> {
        match self.inner {
            EncryptInner::Age(w) => w.finish(),
            EncryptInner::OpenPgp(w) => w.finish(),
        }
    }
}

impl<W: Write + Send + 'static> Write for EncryptWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            EncryptInner::Age(w) => w.write(buf),
            EncryptInner::OpenPgp(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            EncryptInner::Age(w) => w.flush(),
            EncryptInner::OpenPgp(w) => w.flush(),
        }
    }
}

/// Starts encrypting to `recipient` into `output`, ASCII-armored if
/// `armor`. OpenPGP output is a SEIPDv1 (MDC) message under AES-256, which
/// GnuPG 2.2 and later read; age output is age v1.
///
/// The OpenPGP encoder pulls its input, so it runs on a helper thread fed
/// through a bounded channel: memory stays bounded, and `output` moves to
/// that thread until [`EncryptWriter::finish`] gives it back.
pub fn encrypt_writer<W: Write + Send + 'static>(
    output: W,
    recipient: &PublicRecipient,
    armor: bool,
) -> Result<EncryptWriter<W>, EncryptError> {
    let inner = match recipient {
        PublicRecipient::Age(r) => EncryptInner::Age(age_file::AgeWriter::new(output, r, armor)?),
        PublicRecipient::OpenPgp(key) => {
            EncryptInner::OpenPgp(openpgp::PgpWriter::new(output, key, armor)?)
        }
    };
    Ok(EncryptWriter { inner })
}

#[cfg(test)]
mod tests;
