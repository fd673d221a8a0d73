//! Counting and limiting around the decryptors: [`CountingReader`] counts
//! the ciphertext bytes taken from the upload (and remembers whether the
//! upload itself failed, to tell an I/O error from a bad file), and
//! [`LimitReader`] stops the plaintext stream at the first read that takes
//! it past [`Limits`], so a decompression bomb is refused while streaming,
//! long before it could fill memory or the database.
use super::{BombLimit, DecryptError, Limits};
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// What the decryptors and the limit share about the input.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    consumed: AtomicU64,
    input_failed: AtomicBool,
}

impl Progress {
    /// Ciphertext bytes read from the upload so far.
    pub(crate) fn consumed(&self) -> u64 {
        self.consumed.load(Ordering::Relaxed)
    }

    /// Whether reading the upload itself failed (rather than decrypting it).
    pub(crate) fn input_failed(&self) -> bool {
        self.input_failed.load(Ordering::Relaxed)
    }
}

/// The upload, counted.
pub(crate) struct CountingReader<R> {
    inner: R,
    progress: Arc<Progress>,
}

impl<R> CountingReader<R> {
    pub(crate) fn new(inner: R) -> (Self, Arc<Progress>) {
        let progress = Arc::new(Progress::default());
        (
            Self {
                inner,
                progress: progress.clone(),
            },
            progress,
        )
    }
}

// rpgp wants a `Debug` source; the upload's reader need not be one.
impl<R> std::fmt::Debug for CountingReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountingReader")
            .field("consumed", &self.progress.consumed())
            .finish()
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.progress
                    .consumed
                    .fetch_add(n as u64, Ordering::Relaxed);
                Ok(n)
            }
            Err(e) => {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.progress.input_failed.store(true, Ordering::Relaxed);
                }
                Err(e)
            }
        }
    }
}

/// Plaintext, limited.
pub(crate) struct LimitReader<R> {
    inner: R,
    limits: Limits,
    progress: Arc<Progress>,
    produced: u64,
    /// A failure, repeated on every later read.
    failed: Option<BombLimit>,
}

impl<R: Read> LimitReader<R> {
    pub(crate) fn new(inner: R, limits: Limits, progress: Arc<Progress>) -> Self {
        Self {
            inner,
            limits,
            progress,
            produced: 0,
            failed: None,
        }
    }

    fn check(&self) -> Option<BombLimit> {
        if self.produced > self.limits.max_decompressed_bytes {
            return Some(BombLimit::Size {
                limit: self.limits.max_decompressed_bytes,
            });
        }
        let ciphertext = self.progress.consumed().max(1);
        if self.produced > self.limits.ratio_grace_bytes
            && self.produced > self.limits.max_ratio.saturating_mul(ciphertext)
        {
            return Some(BombLimit::Ratio {
                limit: self.limits.max_ratio,
                plaintext: self.produced,
                ciphertext,
            });
        }
        None
    }
}

impl<R: Read> Read for LimitReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(limit) = self.failed {
            return Err(DecryptError::DecompressionBomb(limit).into_io());
        }
        // Never ask for more than one byte past the size limit, so the
        // decompressor does no more work than it takes to prove the bomb.
        let room = self
            .limits
            .max_decompressed_bytes
            .saturating_sub(self.produced)
            .saturating_add(1);
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.produced = self.produced.saturating_add(n as u64);
        if let Some(limit) = self.check() {
            // What this read produced is not handed out.
            self.failed = Some(limit);
            return Err(DecryptError::DecompressionBomb(limit).into_io());
        }
        Ok(n)
    }
}
