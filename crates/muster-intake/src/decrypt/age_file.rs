//! age v1 (age-encryption.org/v1) through the `age` crate: the payload is
//! ChaCha20-Poly1305 in 64 KiB chunks with a last-chunk flag, so tampering
//! fails at the chunk it hits and truncation at the end. Only X25519
//! recipients are taken (no passphrases, no plugins).
use super::guard::Progress;
use super::{DecryptError, DecryptionKey, EncryptError};
use age::armor::{ArmoredReader, ArmoredWriter, Format};
use std::io::{self, BufRead, Read, Write};
use std::sync::Arc;

/// Opens the age header with the X25519 identities among `keys`.
pub(crate) fn decrypt<'a, R: BufRead + Send + 'a>(
    input: R,
    keys: &[DecryptionKey],
    progress: Arc<Progress>,
) -> Result<Box<dyn Read + Send + 'a>, DecryptError> {
    // ArmoredReader passes binary files through unchanged.
    let decryptor = age::Decryptor::new_buffered(ArmoredReader::new(input))
        .map_err(|e| header_error(e, &progress))?;
    if decryptor.is_scrypt() {
        return Err(DecryptError::Unsupported(
            "the age file is encrypted with a passphrase; encrypt it to the tenant's age \
             recipient instead"
                .into(),
        ));
    }
    let identities: Vec<&age::x25519::Identity> =
        keys.iter().filter_map(DecryptionKey::as_age).collect();
    let reader = decryptor
        .decrypt(identities.iter().map(|i| *i as &dyn age::Identity))
        .map_err(|e| header_error(e, &progress))?;
    Ok(Box::new(AgeReader {
        inner: reader,
        progress,
    }))
}

fn header_error(e: age::DecryptError, progress: &Progress) -> DecryptError {
    match e {
        // X25519 stanzas do not name their recipient.
        age::DecryptError::NoMatchingKeys => DecryptError::NoMatchingKey {
            recipients: Vec::new(),
        },
        age::DecryptError::Io(e) if progress.input_failed() => DecryptError::Io(e),
        age::DecryptError::InvalidMac => {
            DecryptError::Integrity("the age header's MAC does not verify".into())
        }
        age::DecryptError::UnknownFormat => {
            DecryptError::Unsupported("an age format version other than v1".into())
        }
        other => DecryptError::Malformed {
            format: "age",
            detail: other.to_string(),
        },
    }
}

/// The payload: maps the `age` crate's errors to [`DecryptError`].
struct AgeReader<R> {
    inner: R,
    progress: Arc<Progress>,
}

impl<R: Read> Read for AgeReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            if self.progress.input_failed() {
                return e;
            }
            // The age crate reports a chunk that fails authentication, a
            // missing last chunk, and bad armor as InvalidData; the text is
            // the crate's own (no plaintext).
            DecryptError::Integrity(format!("age payload: {e}")).into_io()
        })
    }
}

/// age encryption to one X25519 recipient, optionally armored.
pub(crate) struct AgeWriter<W: Write> {
    inner: age::stream::StreamWriter<ArmoredWriter<W>>,
}

impl<W: Write> AgeWriter<W> {
    pub(crate) fn new(
        output: W,
        recipient: &age::x25519::Recipient,
        armor: bool,
    ) -> Result<Self, EncryptError> {
        let format = if armor {
            Format::AsciiArmor
        } else {
            Format::Binary
        };
        let encryptor =
            age::Encryptor::with_recipients(std::iter::once(recipient as &dyn age::Recipient))
                .map_err(|e| EncryptError::Failed(format!("age: {e}")))?;
        let inner = encryptor.wrap_output(ArmoredWriter::wrap_output(output, format)?)?;
        Ok(Self { inner })
    }

    pub(crate) fn finish(self) -> Result<W, EncryptError> {
        Ok(self.inner.finish()?.finish()?)
    }
}

impl<W: Write> Write for AgeWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
