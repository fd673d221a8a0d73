//! Uploads sealed at rest: an upload waits on disk before processing and
//! must never be stored as plaintext, so it is written through
//! [`SealWriter`] and read back through [`UnsealReader`].
//!
//! The format is XChaCha20-Poly1305 in the STREAM construction (Hoang,
//! Reyhanitabar, Rogaway and Vizár, "Online Authenticated-Encryption and its
//! Nonce-Reuse Misuse-Resistance", big-endian 32-bit counter flavour): the
//! plaintext is cut into 64 KiB chunks, each sealed on its own with a nonce
//! made of a random per-file prefix, the chunk's position and a "last chunk"
//! flag. Reordering, dropping, appending or altering chunks, and truncating
//! the file, all fail authentication. A caller-given label (the import id)
//! is the associated data of every chunk, so one import's sealed file cannot
//! stand in for another's.
//!
//! Layout: `MSTSEAL1` (8 bytes), the 19-byte nonce prefix, then chunks of
//! 64 KiB plaintext + 16-byte tag; the last chunk holds 0 to 64 KiB of
//! plaintext and is always present, even for an empty body.
use chacha20poly1305::aead::generic_array::GenericArray;
use chacha20poly1305::aead::stream::{
    DecryptorBE32, EncryptorBE32, NewStream, StreamBE32, StreamPrimitive,
};
use chacha20poly1305::aead::{KeyInit, Payload};
use chacha20poly1305::XChaCha20Poly1305;
use rand::RngCore;
use std::io::{self, Read, Write};

/// Format marker at the start of every sealed file.
const MAGIC: &[u8; 8] = b"MSTSEAL1";
/// XChaCha20's 24-byte nonce minus STREAM's 4-byte counter and 1-byte flag.
const NONCE_PREFIX: usize = 19;
const HEADER: usize = MAGIC.len() + NONCE_PREFIX;
/// Plaintext bytes per chunk.
pub const CHUNK: usize = 64 * 1024;
/// Poly1305 tag bytes added to every chunk.
const TAG: usize = 16;

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Seals everything written to it into `inner`. Call [`SealWriter::finish`]
/// at the end: without the final chunk the file reads as truncated.
pub struct SealWriter<W: Write> {
    inner: W,
    enc: EncryptorBE32<XChaCha20Poly1305>,
    aad: Vec<u8>,
    /// Plaintext of the chunk being filled; sealed in place (the tag is
    /// appended), so its capacity is one chunk and one tag.
    buf: Vec<u8>,
}

impl<W: Write> SealWriter<W> {
    /// Writes the header with a fresh random nonce prefix. `aad` is bound
    /// into every chunk and must be given again to unseal.
    pub fn new(mut inner: W, key: &[u8; 32], aad: &[u8]) -> io::Result<Self> {
        let mut prefix = [0u8; NONCE_PREFIX];
        rand::rngs::OsRng.fill_bytes(&mut prefix);
        inner.write_all(MAGIC)?;
        inner.write_all(&prefix)?;
        let aead = XChaCha20Poly1305::new(GenericArray::from_slice(key));
        Ok(Self {
            inner,
            enc: EncryptorBE32::from_aead(aead, GenericArray::from_slice(&prefix)),
            aad: aad.to_vec(),
            buf: Vec::with_capacity(CHUNK + TAG),
        })
    }

    /// Seals the last chunk (possibly empty), flushes, and returns the inner
    /// writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.enc
            .encrypt_last_in_place(&self.aad, &mut self.buf)
            .map_err(|_| io::Error::other("sealing the last chunk failed"))?;
        self.inner.write_all(&self.buf)?;
        self.inner.flush()?;
        Ok(self.inner)
    }

    fn seal_full_chunk(&mut self) -> io::Result<()> {
        self.enc
            .encrypt_next_in_place(&self.aad, &mut self.buf)
            .map_err(|_| io::Error::other("sealing a chunk failed (the stream is too long)"))?;
        self.inner.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }
}

impl<W: Write> Write for SealWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut rest = data;
        while !rest.is_empty() {
            // A full chunk is sealed only when more data arrives: the chunk
            // that `finish` seals as last then always holds the tail, and a
            // body of exactly N chunks does not need an empty extra chunk.
            if self.buf.len() == CHUNK {
                self.seal_full_chunk()?;
            }
            let take = (CHUNK - self.buf.len()).min(rest.len());
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
        }
        Ok(data.len())
    }

    /// Flushes the inner writer; the chunk being filled stays buffered until
    /// it is full or [`SealWriter::finish`] is called.
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads and authenticates a file made by [`SealWriter`]. Plaintext is
/// handed out one chunk at a time and only after that chunk's tag checked,
/// so a wrong key, a wrong label, tampering or truncation is an
/// [`io::ErrorKind::InvalidData`] error, never garbage plaintext.
pub struct UnsealReader<R: Read> {
    inner: R,
    /// `None` once the last chunk was opened (or opening failed).
    dec: Option<DecryptorBE32<XChaCha20Poly1305>>,
    /// The same key and nonce prefix, used only to explain a failure.
    probe: StreamBE32<XChaCha20Poly1305>,
    aad: Vec<u8>,
    /// Chunks opened so far (the STREAM position of the next one).
    position: u32,
    /// Holds a chunk's ciphertext, then (decrypted in place) its plaintext.
    buf: Vec<u8>,
    /// Handed-out bytes of `buf`.
    pos: usize,
    /// One byte read past a full chunk: its presence says that chunk is not
    /// the last.
    lookahead: Option<u8>,
    /// A failure, repeated on every later read.
    failed: Option<(io::ErrorKind, String)>,
}

impl<R: Read> UnsealReader<R> {
    /// Reads and checks the header. The key and `aad` must be those given
    /// to [`SealWriter::new`].
    pub fn new(mut inner: R, key: &[u8; 32], aad: &[u8]) -> io::Result<Self> {
        let mut head = [0u8; HEADER];
        if read_full(&mut inner, &mut head)? < HEADER {
            return Err(invalid(
                "the sealed upload is truncated: its header is incomplete".into(),
            ));
        }
        if &head[..MAGIC.len()] != MAGIC {
            return Err(invalid(
                "the file is not a sealed upload (unknown format marker)".into(),
            ));
        }
        let prefix = GenericArray::from_slice(&head[MAGIC.len()..]);
        let aead = XChaCha20Poly1305::new(GenericArray::from_slice(key));
        Ok(Self {
            inner,
            dec: Some(DecryptorBE32::from_aead(aead.clone(), prefix)),
            probe: StreamBE32::from_aead(aead, prefix),
            aad: aad.to_vec(),
            position: 0,
            buf: Vec::with_capacity(CHUNK + TAG + 1),
            pos: 0,
            lookahead: None,
            failed: None,
        })
    }

    /// Reads and opens the next chunk into `buf`.
    fn open_next(&mut self) -> io::Result<()> {
        let Some(dec) = self.dec.as_mut() else {
            return Ok(());
        };
        self.buf.clear();
        self.pos = 0;
        self.buf.extend(self.lookahead.take());
        let start = self.buf.len();
        // One byte more than a chunk: if it arrives, this chunk is not the last.
        self.buf.resize(CHUNK + TAG + 1, 0);
        let n = match read_full(&mut self.inner, &mut self.buf[start..]) {
            Ok(n) => n,
            // Part of a chunk may be gone: the stream cannot be resumed.
            Err(e) => return Err(self.fail(e.kind(), e.to_string())),
        };
        self.buf.truncate(start + n);
        if self.buf.len() == CHUNK + TAG + 1 {
            self.lookahead = self.buf.pop();
        }
        if self.lookahead.is_some() {
            if dec.decrypt_next_in_place(&self.aad, &mut self.buf).is_err() {
                return Err(self.fail(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the sealed upload failed its integrity check at chunk {}: \
                     the key or the import label is wrong, or the file was altered",
                        self.position + 1
                    ),
                ));
            }
            self.position = self.position.saturating_add(1);
            return Ok(());
        }
        let Some(dec) = self.dec.take() else {
            return Ok(());
        };
        let ciphertext = self.buf.clone();
        if dec.decrypt_last_in_place(&self.aad, &mut self.buf).is_ok() {
            return Ok(());
        }
        self.buf.clear();
        let msg = if ciphertext.len() < TAG {
            "the sealed upload is truncated: its last chunk is incomplete".to_owned()
        } else if self
            .probe
            .decrypt(
                self.position,
                false,
                Payload {
                    msg: &ciphertext,
                    aad: &self.aad,
                },
            )
            .is_ok()
        {
            // The chunk is genuine but not marked last: the rest was cut off.
            format!(
                "the sealed upload is truncated: it ends after chunk {} without its final chunk",
                self.position + 1
            )
        } else {
            format!(
                "the sealed upload failed its integrity check at its last chunk ({}): it was \
                 truncated or altered, or the key or the import label is wrong",
                self.position + 1
            )
        };
        Err(self.fail(io::ErrorKind::InvalidData, msg))
    }

    /// Ends the stream with an error that every later read repeats.
    fn fail(&mut self, kind: io::ErrorKind, msg: String) -> io::Error {
        // Whatever `buf` holds now is not authenticated plaintext.
        self.buf.clear();
        self.pos = 0;
        self.dec = None;
        self.failed = Some((kind, msg.clone()));
        io::Error::new(kind, msg)
    }
}

impl<R: Read> Read for UnsealReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if let Some((kind, msg)) = &self.failed {
            return Err(io::Error::new(*kind, msg.clone()));
        }
        if out.is_empty() {
            return Ok(0);
        }
        while self.pos == self.buf.len() {
            if self.dec.is_none() {
                return Ok(0);
            }
            self.open_next()?;
        }
        let n = (self.buf.len() - self.pos).min(out.len());
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Reads until `buf` is full or the input ends; returns the count read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7u8; 32];

    fn seal(data: &[u8], key: &[u8; 32], aad: &[u8]) -> Vec<u8> {
        let mut w = SealWriter::new(Vec::new(), key, aad).unwrap();
        // Uneven writes exercise the chunk buffering.
        for part in data.chunks(7919) {
            w.write_all(part).unwrap();
        }
        w.finish().unwrap()
    }

    fn unseal(data: &[u8], key: &[u8; 32], aad: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        UnsealReader::new(data, key, aad)?.read_to_end(&mut out)?;
        Ok(out)
    }

    fn unseal_err(data: &[u8], key: &[u8; 32], aad: &[u8]) -> io::Error {
        let e = unseal(data, key, aad).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        e
    }

    fn random(n: usize) -> Vec<u8> {
        let mut data = vec![0u8; n];
        rand::rngs::OsRng.fill_bytes(&mut data);
        data
    }

    #[test]
    fn bodies_of_every_awkward_size_round_trip() {
        for n in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 1 << 20] {
            let data = random(n);
            let sealed = seal(&data, &KEY, b"imp-1");
            let chunks = n.div_ceil(CHUNK).max(1);
            assert_eq!(sealed.len(), HEADER + n + chunks * TAG, "size {n}");
            assert_eq!(unseal(&sealed, &KEY, b"imp-1").unwrap(), data, "size {n}");
        }
    }

    #[test]
    fn the_sealed_file_holds_no_plaintext() {
        let data = b"Employee ID,First Name\nE000001,Ada\n".repeat(5000);
        let sealed = seal(&data, &KEY, b"imp-1");
        assert!(!sealed.windows(11).any(|w| w == b"Employee ID"));
        assert!(!sealed.windows(7).any(|w| w == b"E000001"));
        // Two seals of the same body differ: the nonce prefix is random.
        assert_ne!(seal(&data, &KEY, b"imp-1"), sealed);
    }

    #[test]
    fn reading_one_byte_at_a_time_works() {
        let data = random(CHUNK + 3);
        let sealed = seal(&data, &KEY, b"a");
        let mut r = UnsealReader::new(&sealed[..], &KEY, b"a").unwrap();
        let mut out = Vec::new();
        let mut b = [0u8; 1];
        while r.read(&mut b).unwrap() == 1 {
            out.push(b[0]);
        }
        assert_eq!(out, data);
    }

    #[test]
    fn a_tampered_byte_anywhere_is_detected() {
        let data = random(2 * CHUNK + 10);
        let sealed = seal(&data, &KEY, b"a");
        for at in [
            MAGIC.len(),         // nonce prefix
            HEADER,              // first chunk
            HEADER + CHUNK + 5,  // first chunk's tag
            HEADER + CHUNK + 20, // second chunk
            sealed.len() - 1,    // last chunk's tag
        ] {
            let mut t = sealed.clone();
            t[at] ^= 1;
            let e = unseal_err(&t, &KEY, b"a");
            assert!(e.to_string().contains("integrity check"), "{at}: {e}");
        }
        let mut t = sealed.clone();
        t[0] = b'X';
        assert!(unseal_err(&t, &KEY, b"a")
            .to_string()
            .contains("not a sealed upload"));
    }

    #[test]
    fn truncation_is_detected_and_named() {
        let data = random(3 * CHUNK + 10);
        let sealed = seal(&data, &KEY, b"a");
        for cut in [HEADER + CHUNK + TAG, HEADER + 2 * (CHUNK + TAG)] {
            let e = unseal_err(&sealed[..cut], &KEY, b"a");
            assert!(
                e.to_string().contains("without its final chunk"),
                "cut {cut}: {e}"
            );
        }
        for cut in [sealed.len() - 1, HEADER + 100, HEADER + 3, HEADER, 5, 0] {
            unseal_err(&sealed[..cut], &KEY, b"a");
        }
        // Appending to a complete file is caught too.
        let mut longer = sealed.clone();
        longer.extend_from_slice(&sealed[HEADER..HEADER + 40]);
        unseal_err(&longer, &KEY, b"a");
        // An empty body still has its final chunk; without it, truncated.
        let empty = seal(b"", &KEY, b"a");
        assert_eq!(unseal(&empty, &KEY, b"a").unwrap(), b"");
        unseal_err(&empty[..HEADER], &KEY, b"a");
    }

    /// Fails with an I/O error after `ok` bytes.
    struct Flaky<'a> {
        data: &'a [u8],
        ok: usize,
    }

    impl Read for Flaky<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.ok == 0 {
                return Err(io::Error::new(io::ErrorKind::ConnectionReset, "gone"));
            }
            let n = buf.len().min(self.ok).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            self.ok -= n;
            Ok(n)
        }
    }

    #[test]
    fn an_io_error_mid_chunk_ends_the_stream_without_plaintext() {
        let data = random(3 * CHUNK);
        let sealed = seal(&data, &KEY, b"a");
        let flaky = Flaky {
            data: &sealed,
            ok: HEADER + CHUNK + TAG + 1 + 500,
        };
        let mut r = UnsealReader::new(flaky, &KEY, b"a").unwrap();
        let mut out = vec![0u8; CHUNK];
        r.read_exact(&mut out).unwrap();
        assert_eq!(out, data[..CHUNK]);
        for _ in 0..2 {
            let e = r.read(&mut out).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
        }
    }

    #[test]
    fn a_wrong_key_or_label_is_refused_without_plaintext() {
        let data = random(CHUNK + 10);
        let sealed = seal(&data, &KEY, b"import-1");
        let mut r = UnsealReader::new(&sealed[..], &[8u8; 32], b"import-1").unwrap();
        let mut out = vec![0u8; 1024];
        let e = r.read(&mut out).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("key or the import label"), "{e}");
        // The failure sticks.
        assert!(r.read(&mut out).is_err());
        unseal_err(&sealed, &KEY, b"import-2");
        let small = seal(b"one chunk", &KEY, b"import-1");
        unseal_err(&small, &KEY, b"import-2");
        unseal_err(&small, &[9u8; 32], b"import-1");
    }
}
