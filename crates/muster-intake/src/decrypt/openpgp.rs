//! OpenPGP (RFC 4880 / RFC 9580) through rPGP, the pure-Rust `pgp` crate.
//!
//! Decryption streams: SEIPDv1 is read in rPGP's `Streaming` mode (its
//! default, `CheckFirst`, buffers the whole message, up to 1 GiB, to check
//! the MDC before releasing plaintext), so the MDC is checked when the
//! stream ends and a failure is the reader's last error (see the parent
//! module). SEIPDv2 and GnuPG's OCB packet (tag 20) are chunked AEAD and
//! fail at the chunk that was altered. Legacy SED packets (tag 9, no
//! integrity protection, RFC 9580 section 5.7) are refused before any key
//! is used. Compression (ZIP, ZLIB, BZip2) is undone inside rPGP, as
//! it streams; [`super::guard::LimitReader`] bounds what comes out.
use super::guard::Progress;
use super::keys::{hex_fpr, hex_id};
use super::{DecryptError, DecryptionKey, EncryptError, SignerKey};
use pgp::composed::{
    ArmorOptions, DecryptionOptions, Edata, Esk, Message, MessageBuilder, SignedPublicKey,
    SignedSecretKey, TheRing,
};
use pgp::crypto::sym::SymmetricKeyAlgorithm;
use pgp::errors::Error as PgpError;
use pgp::types::{KeyDetails, Password, Seipdv1ReadMode, Tag};
use std::io::{self, BufRead, Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Packet tags an encrypted message may start with (RFC 9580 section 5):
/// PKESK, SKESK, SED, Marker, SEIPD, and GnuPG's OCB-encrypted data.
const ENCRYPTED_TAGS: [u8; 6] = [1, 3, 9, 10, 18, 20];

/// Whether `bytes` start like a binary OpenPGP encrypted message: a packet
/// header (either format) with an encryption tag, and for the packets that
/// carry one, a known version octet, so that a CSV that happens to start
/// with a byte of 0x80 or more is not taken for OpenPGP.
pub(crate) fn looks_like_binary_encrypted(bytes: &[u8]) -> bool {
    let Some(&first) = bytes.first() else {
        return false;
    };
    if first & 0x80 == 0 {
        return false;
    }
    let (tag, body_at) = if first & 0x40 != 0 {
        // New format (RFC 9580 section 4.2.1): the length's first octet
        // tells how many follow.
        let Some(&l) = bytes.get(1) else {
            return false;
        };
        let len_octets = match l {
            0..=191 => 1,
            192..=223 => 2,
            224..=254 => 1, // partial body length
            255 => 5,
        };
        (first & 0x3f, 1 + len_octets)
    } else {
        // Legacy format: the length type is the low two bits.
        let len_octets = match first & 0x03 {
            0 => 1,
            1 => 2,
            2 => 4,
            _ => 0,
        };
        ((first >> 2) & 0x0f, 1 + len_octets)
    };
    if !ENCRYPTED_TAGS.contains(&tag) {
        return false;
    }
    let version = bytes.get(body_at).copied();
    match (tag, version) {
        (1, Some(v)) => v == 3 || v == 6,
        (3, Some(v)) => (4..=6).contains(&v),
        (18, Some(v)) => v == 1 || v == 2,
        (10, _) => bytes.get(body_at..body_at + 3).is_none_or(|m| m == b"PGP"),
        _ => true,
    }
}

fn malformed(e: PgpError, progress: &Progress) -> DecryptError {
    if progress.input_failed() {
        return DecryptError::Io(io::Error::other("the upload could not be read to the end"));
    }
    DecryptError::Malformed {
        format: "OpenPGP",
        detail: super::clipped(e, 200),
    }
}

/// Message ids a PKESK names: `None` for an anonymous ("wildcard") one.
fn recipient_of(esk: &Esk) -> Option<Option<String>> {
    let Esk::PublicKeyEncryptedSessionKey(p) = esk else {
        return None;
    };
    if let Ok(id) = p.id() {
        return Some((!id.is_wildcard()).then(|| hex_id(id)));
    }
    match p.fingerprint() {
        Ok(Some(f)) => Some(Some(hex_fpr(f))),
        _ => Some(None),
    }
}

pub(crate) fn decrypt<'a, R: BufRead + std::fmt::Debug + Send + 'a>(
    input: R,
    keys: &[DecryptionKey],
    verify: Option<&SignerKey>,
    progress: Arc<Progress>,
) -> Result<Box<dyn Read + Send + 'a>, DecryptError> {
    let (msg, _headers) = Message::from_reader(input).map_err(|e| malformed(e, &progress))?;
    let Message::Encrypted { esk, edata, .. } = &msg else {
        return Err(DecryptError::NotEncrypted);
    };
    // Refused whatever the keys: plaintext from a SED packet can be altered
    // undetectably (RFC 9580 section 5.7, "Efail").
    if matches!(edata, Edata::SymEncryptedData { .. }) || edata.tag() == Tag::SymEncryptedData {
        return Err(DecryptError::LegacyUnprotected);
    }
    let named: Vec<Option<String>> = esk.iter().filter_map(recipient_of).collect();
    if named.is_empty() {
        return Err(DecryptError::Unsupported(
            "the OpenPGP message is encrypted with a passphrase only; encrypt it to the \
             tenant's public key instead"
                .into(),
        ));
    }
    let secret_keys: Vec<&SignedSecretKey> =
        keys.iter().filter_map(DecryptionKey::as_openpgp).collect();
    let ours = |id: &str| {
        keys.iter()
            .filter(|k| k.as_openpgp().is_some())
            .any(|k| k.matches(id))
    };
    let recipients: Vec<String> = named.iter().flatten().cloned().collect();
    let anonymous = named.iter().any(Option::is_none);
    if !anonymous && !recipients.iter().any(|r| ours(r)) {
        return Err(DecryptError::NoMatchingKey { recipients });
    }

    let no_password = Password::empty();
    let ring = TheRing {
        secret_keys,
        key_passwords: vec![&no_password],
        decrypt_options: DecryptionOptions::new()
            .enable_gnupg_aead()
            .set_seipdv1_read_mode(Seipdv1ReadMode::Streaming),
        ..Default::default()
    };
    let mut msg = match msg.decrypt_the_ring(ring, true) {
        Ok((msg, _)) => msg,
        Err(PgpError::MissingKey) => return Err(DecryptError::NoMatchingKey { recipients }),
        Err(e) if progress.input_failed() => return Err(malformed(e, &progress)),
        // The session key opened but what follows does not parse, or the
        // session key itself did not decrypt: both mean altered bytes.
        Err(_) => {
            return Err(DecryptError::Integrity(
                "the session key or the start of the encrypted data does not decrypt".into(),
            ))
        }
    };
    while msg.is_compressed() {
        msg = msg.decompress().map_err(|_| {
            DecryptError::Integrity("the compressed data does not start correctly".into())
        })?;
    }
    if let Some(signer) = verify {
        if !msg.is_signed() {
            return Err(DecryptError::SignatureMissing {
                expected: signer.key_id(),
            });
        }
    }
    Ok(Box::new(PgpReader {
        msg,
        verify: verify.cloned(),
        progress,
        checked: false,
        failed: None,
    }))
}

/// The decrypted literal data, with the signature check at its end.
struct PgpReader<'a> {
    msg: Message<'a>,
    verify: Option<SignerKey>,
    progress: Arc<Progress>,
    /// The end-of-stream checks passed.
    checked: bool,
    /// A failure, repeated on every later read.
    failed: Option<String>,
}

impl PgpReader<'_> {
    fn fail(&mut self, detail: &str) -> io::Error {
        self.failed = Some(detail.to_owned());
        DecryptError::Integrity(detail.to_owned()).into_io()
    }

    /// Checks the signature once all signed data was hashed.
    fn check_signature(&self) -> Result<(), DecryptError> {
        let Some(signer) = &self.verify else {
            return Ok(());
        };
        let expected = signer.key_id();
        let Message::Signed { reader, .. } = &self.msg else {
            return Err(DecryptError::SignatureMissing { expected });
        };
        let mut found = Vec::new();
        let mut candidates = Vec::new();
        for i in 0..reader.num_signatures() {
            let Some(sig) = reader.signature(i) else {
                continue;
            };
            let ids = sig.issuer_key_id();
            let fprs = sig.issuer_fingerprint();
            if ids.iter().any(|id| signer.has_key_id(id))
                || fprs.iter().any(|f| signer.has_fingerprint(f))
            {
                candidates.push(i);
            } else {
                found.extend(ids.iter().map(|id| hex_id(id)));
                found.extend(fprs.iter().map(|f| hex_fpr(f)));
            }
        }
        if candidates.is_empty() {
            if found.is_empty() {
                found.push("an unnamed key".into());
            }
            return Err(DecryptError::SignatureWrongKey { expected, found });
        }
        let key: &SignedPublicKey = &signer.0;
        for i in candidates {
            if self.msg.verify_nested_explicit(i, key).is_ok()
                || key
                    .public_subkeys
                    .iter()
                    .any(|s| self.msg.verify_nested_explicit(i, s).is_ok())
            {
                return Ok(());
            }
        }
        Err(DecryptError::SignatureInvalid(expected))
    }
}

impl Read for PgpReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(detail) = &self.failed {
            return Err(DecryptError::Integrity(detail.clone()).into_io());
        }
        if buf.is_empty() {
            return Ok(0);
        }
        match self.msg.read(buf) {
            Ok(0) => {
                if !self.checked {
                    if let Err(e) = self.check_signature() {
                        self.failed = Some("the signature check failed".into());
                        return Err(e.into_io());
                    }
                    self.checked = true;
                }
                Ok(0)
            }
            Ok(n) => Ok(n),
            Err(e) if self.progress.input_failed() => {
                self.failed = Some("reading the upload failed".into());
                Err(e)
            }
            Err(e) => {
                // rPGP's text may describe packet contents: keep only what
                // kind of failure it was.
                let text = e.to_string().to_ascii_lowercase();
                let detail = if text.contains("mdc") || text.contains("modification") {
                    "the modification detection code (MDC) does not match"
                } else if e.kind() == io::ErrorKind::UnexpectedEof || text.contains("eof") {
                    "the message ends early"
                } else if text.contains("tag") && text.contains("aead") {
                    "an AEAD chunk does not authenticate"
                } else {
                    "the decrypted data does not parse"
                };
                Err(self.fail(detail))
            }
        }
    }
}

/// The encryption subkey of `key` (or its primary key if it has no such
/// subkey and can encrypt).
fn encryption_target(key: &SignedPublicKey) -> Result<EncryptTo, EncryptError> {
    let usable = key.public_subkeys.iter().find(|s| {
        s.key.algorithm().can_encrypt()
            && s.signatures.iter().any(|sig| {
                let flags = sig.key_flags();
                flags.encrypt_comms() || flags.encrypt_storage()
            })
    });
    if let Some(s) = usable {
        return Ok(EncryptTo::Subkey(Box::new(s.clone())));
    }
    if key.primary_key.algorithm().can_encrypt() {
        return Ok(EncryptTo::Primary(Box::new(key.clone())));
    }
    Err(EncryptError::UnusableKey(format!(
        "the OpenPGP key {} has no encryption subkey",
        hex_fpr(&key.fingerprint())
    )))
}

enum EncryptTo {
    Subkey(Box<pgp::composed::SignedPublicSubKey>),
    Primary(Box<SignedPublicKey>),
}

/// Size of the pieces handed to the encoder thread.
const PIECE: usize = 64 * 1024;

/// OpenPGP encryption. rPGP's encoder pulls from a `Read`, so it runs on a
/// thread that reads what [`PgpWriter`] sends through a bounded channel.
pub(crate) struct PgpWriter<W: Write + Send + 'static> {
    /// `Some` carries plaintext, `None` marks its end: a writer dropped
    /// without [`PgpWriter::finish`] closes the channel without it, and the
    /// encoder then fails rather than emit a valid message of a prefix.
    tx: Option<SyncSender<Option<Vec<u8>>>>,
    handle: Option<JoinHandle<Result<W, EncryptError>>>,
    buf: Vec<u8>,
}

impl<W: Write + Send + 'static> PgpWriter<W> {
    pub(crate) fn new(output: W, key: &SignedPublicKey, armor: bool) -> Result<Self, EncryptError> {
        let target = encryption_target(key)?;
        let (tx, rx) = sync_channel::<Option<Vec<u8>>>(4);
        let handle = std::thread::Builder::new()
            .name("openpgp-encrypt".into())
            .spawn(move || encode(rx, target, armor, output))?;
        Ok(Self {
            tx: Some(tx),
            handle: Some(handle),
            buf: Vec::with_capacity(PIECE),
        })
    }

    fn send(&mut self) -> io::Result<()> {
        let piece = std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE));
        self.push(Some(piece))
    }

    fn push(&mut self, piece: Option<Vec<u8>>) -> io::Result<()> {
        let sent = self.tx.as_ref().map(|tx| tx.send(piece).is_ok());
        if sent == Some(true) {
            return Ok(());
        }
        // The encoder stopped: its error says why.
        self.tx = None;
        Err(match self.join() {
            Err(EncryptError::Io(e)) => e,
            Err(e) => io::Error::other(e),
            Ok(_) => io::Error::other("the OpenPGP encoder stopped early"),
        })
    }

    fn join(&mut self) -> Result<W, EncryptError> {
        let Some(handle) = self.handle.take() else {
            return Err(EncryptError::Failed(
                "the OpenPGP encoder already stopped".into(),
            ));
        };
        handle
            .join()
            .map_err(|_| EncryptError::Failed("the OpenPGP encoder panicked".into()))?
    }

    pub(crate) fn finish(mut self) -> Result<W, EncryptError> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        self.push(None)?;
        self.tx = None;
        self.join()
    }
}

impl<W: Write + Send + 'static> Write for PgpWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let take = (PIECE - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..take]);
        if self.buf.len() == PIECE {
            self.send()?;
        }
        Ok(take)
    }

    /// Hands buffered bytes to the encoder; it writes them when it has a
    /// full packet chunk.
    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            self.send()
        }
    }
}

/// The encoder thread: plaintext from `rx`, ciphertext to `output`.
fn encode<W: Write>(
    rx: Receiver<Option<Vec<u8>>>,
    target: EncryptTo,
    armor: bool,
    mut output: W,
) -> Result<W, EncryptError> {
    let failed = |e: PgpError| EncryptError::Failed(format!("OpenPGP: {e}"));
    let mut rng = rand::rngs::OsRng;
    let source = ChannelReader {
        rx,
        ended: false,
        piece: Vec::new(),
        pos: 0,
    };
    let mut builder =
        MessageBuilder::from_reader("", source).seipd_v1(&mut rng, SymmetricKeyAlgorithm::AES256);
    match &target {
        EncryptTo::Subkey(s) => builder.encrypt_to_key(&mut rng, &**s),
        EncryptTo::Primary(k) => builder.encrypt_to_key(&mut rng, &**k),
    }
    .map_err(failed)?;
    if armor {
        builder
            .to_armored_writer(rng, ArmorOptions::default(), &mut output)
            .map_err(failed)?;
    } else {
        builder.to_writer(rng, &mut output).map_err(failed)?;
    }
    output.flush()?;
    Ok(output)
}

/// The encoder's input: pieces from the channel, ending when it closes.
struct ChannelReader {
    rx: Receiver<Option<Vec<u8>>>,
    ended: bool,
    piece: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.piece.len() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Some(piece)) => {
                    self.piece = piece;
                    self.pos = 0;
                }
                Ok(None) => self.ended = true,
                Err(_) => {
                    return Err(io::Error::other(
                        "the encryption was abandoned before finish()",
                    ))
                }
            }
        }
        let n = (self.piece.len() - self.pos).min(buf.len());
        buf[..n].copy_from_slice(&self.piece[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_error_text_in_another_script_is_cut_without_a_panic() {
        // One ASCII byte, then two-byte characters: byte 200 falls inside one.
        let e = PgpError::Message {
            message: format!("x{}", "é".repeat(150)),
            backtrace: None,
        };
        let DecryptError::Malformed { detail, .. } = malformed(e, &Progress::default()) else {
            panic!("not Malformed");
        };
        assert_eq!(detail.len(), 199);
    }
}
