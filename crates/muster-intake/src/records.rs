//! Streaming CSV (RFC 4180) and JSON-lines readers: they turn the bytes of
//! an (unsealed) upload into raw records and row problems one at a time, so
//! memory stays bounded whatever the file's size.
//!
//! Two kinds of trouble are kept apart. A [`RowProblem`] spoils one row
//! (a ragged row, a field that is not UTF-8, a line that is not a JSON
//! object) and reading goes on. A [`FormatError`] spoils the file (no
//! header, a duplicate column, a line past the size limit) and nothing of
//! it may be applied.
//!
//! Rows are numbered as a person looking at the file counts them. In CSV
//! the header is row 1 and each further record one more row, whatever line
//! breaks its quoted fields hold; blank lines are skipped and not counted.
//! In JSON lines the row is the physical line number (1-based).
//!
//! Memory is bounded by [`Limits::max_line_bytes`]: a guard beneath the
//! parsers follows line breaks (and, for CSV, quoting, so a quoted field
//! that never closes counts as one long record) and stops reading at the
//! first block that takes a line or record past the limit, before the
//! parser would buffer it.
//!
//! No message ever quotes a cell or a line, which may hold personnel data:
//! they name rows, columns and limits only.
use muster_proto::ErrorCode;
use std::io::{self, BufRead, BufReader, Read};

/// The syntax of an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// RFC 4180 CSV with this field delimiter (`b','`, `b';'`, `b'\t'`..).
    Csv { delimiter: u8 },
    /// One JSON object per line.
    JsonLines,
    /// A SCIM BulkRequest or ListResponse: each operation (or resource)
    /// is a row (see [`crate::scim_bulk`]).
    Scim,
}

/// Bounds on what one line or record may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest physical line, and longest CSV record (quoted line breaks
    /// included), in bytes.
    pub max_line_bytes: usize,
    /// Most fields in a CSV record.
    pub max_fields: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_line_bytes: 1024 * 1024,
            max_fields: 1000,
        }
    }
}

/// One raw record, before any mapping.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A CSV record with as many fields as the header has columns.
    Fields { row: u64, fields: Vec<String> },
    /// A JSON-lines object.
    Object {
        row: u64,
        object: serde_json::Map<String, serde_json::Value>,
    },
}

impl Record {
    /// The record's row number.
    pub fn row(&self) -> u64 {
        match self {
            Record::Fields { row, .. } | Record::Object { row, .. } => *row,
        }
    }
}

/// A problem confined to one row; reading goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem {
    pub row: u64,
    /// The header name of the column at fault, when there is one.
    pub column: Option<String>,
    /// Stable machine-readable code: `ragged_row`, `invalid_utf8`,
    /// `invalid_json` or `not_an_object`.
    pub code: ErrorCode,
    /// For people; never quotes the data.
    pub message: String,
}

/// What [`RecordReader::next_item`] yields.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Record(Record),
    Problem(RowProblem),
}

/// A problem with the whole file: nothing of it may be applied.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("the file is empty: it has no header row and no records")]
    Empty,
    /// The header is not UTF-8 and no encoding was declared; `likely`
    /// says what it looks like.
    #[error("the header row is not valid UTF-8 text; the file looks like {likely}")]
    HeaderNotUtf8 { likely: &'static str },
    /// A row is not UTF-8 and no encoding was declared: the file is in
    /// another encoding, and reading on would drop exactly the rows with
    /// accented names.
    #[error("row {row} is not valid UTF-8 text, so the file is in another encoding; it looks like {likely}")]
    NotUtf8 { row: u64, likely: &'static str },
    /// Not a text file at all (see [`crate::text::not_text`]).
    #[error("the file is not a CSV or JSON-lines text file: it is {what}")]
    NotText { what: &'static str },
    #[error("column {position} of the header has no name")]
    EmptyHeaderName { position: usize },
    #[error("the header names the column '{name}' more than once")]
    DuplicateHeader { name: String },
    /// A physical line, or a CSV record with quoted line breaks, is too
    /// long; `line` is where that line (or record) starts.
    #[error("line {line} (or the record starting there) is longer than the limit of {max} bytes")]
    LineTooLong { line: u64, max: usize },
    #[error("row {row} has more than {max} fields")]
    TooManyFields { row: u64, max: usize },
    #[error("the file is not valid CSV near line {line}")]
    Csv { line: u64 },
    #[error("the CSV delimiter must be an ASCII character other than a quote or a line break")]
    InvalidDelimiter,
    /// A SCIM file whose document is not a BulkRequest or ListResponse.
    #[error("the file is not a SCIM BulkRequest or ListResponse (line {line}): {why}")]
    NotScim { line: u64, why: String },
    /// An operation (or resource) of a SCIM file is too long.
    #[error("element {row} of the SCIM file is longer than the limit of {max} bytes")]
    ElementTooLong { row: u64, max: usize },
    /// Reading failed, including an unseal failure (`InvalidData`).
    #[error("reading the file failed: {0}")]
    Io(#[from] io::Error),
}

/// A guarded reader: counts bytes, skips a leading UTF-8 BOM, and fails as
/// soon as a line (JSON lines) or a record (CSV, quoted line breaks
/// included) passes the limit, so that a file without line breaks, or a
/// quoted field that never closes, is never buffered whole by the parsers
/// above it. It checks each block before handing it on, so at most one
/// block past the limit is ever read.
struct Guard<R> {
    inner: R,
    max: usize,
    /// The first bytes, read ahead to look for a BOM, not yet handed out.
    head: [u8; 3],
    head_pos: usize,
    head_len: usize,
    started: bool,
    /// Raw bytes taken from `inner`, for progress.
    bytes: u64,
    /// Physical line at the start of the next block, 1-based.
    line: u64,
    /// The last byte seen was a CR.
    after_cr: bool,
    /// Bytes of the current line (JSON lines) or record (CSV) in earlier
    /// blocks.
    carried: usize,
    /// CSV only: the parser's position in its grammar.
    csv: Option<CsvTrack>,
    /// Set when the limit was passed: the line to report. Sticky.
    too_long: Option<u64>,
}

/// Follows `csv-core`'s grammar under the settings used here (`"` quotes,
/// doubled quotes, CR, LF or CRLF ends a record, blank lines skipped, no
/// comments, no escape), just enough to know where records start and end.
struct CsvTrack {
    delimiter: u8,
    state: u8,
    /// The last byte of the previous block.
    last: u8,
    /// The current record's first line, once known.
    start_line: u64,
}

/// Parser state: between records (blank lines are skipped here).
const S_RECORD: u8 = 0;
/// Parser state: at the start of a field.
const S_FIELD: u8 = 1;
/// Parser state: in an unquoted field.
const S_PLAIN: u8 = 2;
/// Parser state: in a quoted field.
const S_QUOTED: u8 = 3;
/// Parser state: after a quote in a quoted field (closing, or the first of
/// a doubled pair).
const S_QUOTE: u8 = 4;
// Byte classes.
const C_OTHER: u8 = 0;
const C_DELIM: u8 = 1;
const C_QUOTE: u8 = 2;
const C_TERM: u8 = 3;
/// `NEXT[state * 4 + class]`. A record starts on the first byte that leaves
/// `S_RECORD` and ends on the terminator that returns to it.
const NEXT: [u8; 20] = [
    // other    delim    quote     term
    S_PLAIN, S_FIELD, S_QUOTED, S_RECORD, // S_RECORD
    S_PLAIN, S_FIELD, S_QUOTED, S_RECORD, // S_FIELD
    S_PLAIN, S_FIELD, S_PLAIN, S_RECORD, // S_PLAIN
    S_QUOTED, S_QUOTED, S_QUOTE, S_QUOTED, // S_QUOTED
    S_PLAIN, S_FIELD, S_QUOTED, S_RECORD, // S_QUOTE
];

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

const LO: u64 = 0x0101_0101_0101_0101;
const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;

/// Eight bytes as one little-endian word: byte `k` is bits `8k..8k+8`.
fn word(bytes: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(bytes);
    u64::from_le_bytes(w)
}

/// Bit 7 of every byte of `w` that equals `x` set, all other bits clear.
fn eq_mask(w: u64, x: u8) -> u64 {
    let v = w ^ (LO * u64::from(x));
    // A byte's bit 7 ends up set iff the byte is non-zero; no carries
    // cross bytes, so every byte's answer is exact.
    !(((v & LOW7).wrapping_add(LOW7)) | v | LOW7)
}

/// The first position in `hay` of any of `needles`, a word at a time.
fn find<const N: usize>(hay: &[u8], needles: [u8; N]) -> Option<usize> {
    let mut words = hay.chunks_exact(8);
    let mut at = 0;
    for w in words.by_ref() {
        let w = word(w);
        let hits = needles.iter().fold(0, |acc, &n| acc | eq_mask(w, n));
        if hits != 0 {
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    words
        .remainder()
        .iter()
        .position(|b| needles.contains(b))
        .map(|p| at + p)
}

/// Line breaks in `data` (CR, LF and CRLF each count once); `after_cr`
/// says whether the byte before `data` was a CR.
fn line_breaks(data: &[u8], mut after_cr: bool) -> u64 {
    let mut n = 0;
    let mut words = data.chunks_exact(8);
    for w in words.by_ref() {
        let w = word(w);
        let (cr, lf) = (eq_mask(w, b'\r'), eq_mask(w, b'\n'));
        // An LF right after a CR ends the same line as the CR.
        let joined = lf & ((cr << 8) | if after_cr { 0x80 } else { 0 });
        n += u64::from(cr.count_ones() + lf.count_ones() - joined.count_ones());
        after_cr = cr >> 63 != 0;
    }
    for &b in words.remainder() {
        n += u64::from(b == b'\r' || (b == b'\n' && !after_cr));
        after_cr = b == b'\r';
    }
    n
}

impl<R: Read> Guard<R> {
    fn new(inner: R, max: usize, csv_delimiter: Option<u8>) -> Self {
        Self {
            inner,
            max,
            head: [0; 3],
            head_pos: 0,
            head_len: 0,
            started: false,
            bytes: 0,
            line: 1,
            after_cr: false,
            carried: 0,
            csv: csv_delimiter.map(|delimiter| CsvTrack {
                delimiter,
                state: S_RECORD,
                last: b'\n',
                start_line: 1,
            }),
            too_long: None,
        }
    }

    fn fail(&mut self, line: u64) -> io::Error {
        self.too_long = Some(line);
        io::Error::other("a line or record is longer than the limit")
    }

    /// Checks a block of CSV: every record must fit the limit.
    fn scan_csv(&mut self, data: &[u8]) -> io::Result<()> {
        let Some(t) = self.csv.as_mut() else {
            return Ok(());
        };
        let mut state = t.state;
        // Where the current record started in this block, if it did.
        let mut start: Option<usize> = None;
        let mut too_long = None;
        let mut i = 0;
        while i < data.len() {
            // Inside a field only a few bytes matter, and they are found a
            // word at a time. In an unquoted field a quote matters only right
            // after a delimiter (it opens a quoted field), so delimiters need
            // not be looked at one by one.
            let (at, next) = match state {
                S_PLAIN => {
                    let Some(p) = find(&data[i..], [b'"', b'\n', b'\r']) else {
                        break;
                    };
                    let at = i + p;
                    let next = if data[at] != b'"' {
                        S_RECORD
                    } else if at.checked_sub(1).map_or(t.last, |j| data[j]) == t.delimiter {
                        S_QUOTED
                    } else {
                        S_PLAIN
                    };
                    (at, next)
                }
                S_QUOTED => {
                    let Some(p) = find(&data[i..], [b'"']) else {
                        break;
                    };
                    (i + p, S_QUOTE)
                }
                _ => {
                    let b = data[i];
                    let class = if b == b'"' {
                        C_QUOTE
                    } else if b == t.delimiter {
                        C_DELIM
                    } else if b == b'\n' || b == b'\r' {
                        C_TERM
                    } else {
                        C_OTHER
                    };
                    (i, NEXT[usize::from(state) * 4 + usize::from(class)])
                }
            };
            if state == S_RECORD && next != S_RECORD {
                start = Some(at);
                self.carried = 0;
            } else if next == S_RECORD && state != S_RECORD {
                if self.carried + at - start.unwrap_or(0) > self.max {
                    too_long = Some(start);
                    break;
                }
                start = None;
                self.carried = 0;
            }
            state = next;
            i = at + 1;
        }
        t.state = state;
        t.last = data.last().copied().unwrap_or(t.last);
        if too_long.is_none() && state != S_RECORD {
            self.carried += data.len() - start.unwrap_or(0);
            if self.carried > self.max {
                too_long = Some(start);
            }
        }
        // The record's first line is worked out once per record and block.
        if let Some(s) = start {
            t.start_line = self.line + line_breaks(&data[..s], self.after_cr);
        }
        if too_long.is_some() {
            let line = t.start_line;
            return Err(self.fail(line));
        }
        self.line += line_breaks(data, self.after_cr);
        self.after_cr = data.last().map_or(self.after_cr, |&b| b == b'\r');
        Ok(())
    }

    /// Checks a block of JSON lines: only LF ends a line, and a CR just
    /// before it is not counted.
    fn scan_lines(&mut self, data: &[u8]) -> io::Result<()> {
        let mut rest = data;
        while let Some(p) = find(rest, [b'\n']) {
            let cr = if p == 0 {
                self.after_cr
            } else {
                rest[p - 1] == b'\r'
            };
            if self.carried + p - usize::from(cr) > self.max {
                return Err(self.fail(self.line));
            }
            self.line += 1;
            self.carried = 0;
            self.after_cr = false;
            rest = &rest[p + 1..];
        }
        self.carried += rest.len();
        self.after_cr = rest.last().map_or(self.after_cr, |&b| b == b'\r');
        if self.carried - usize::from(self.after_cr) > self.max {
            return Err(self.fail(self.line));
        }
        Ok(())
    }

    fn read_head(&mut self) -> io::Result<()> {
        self.started = true;
        while self.head_len < 3 {
            match self.inner.read(&mut self.head[self.head_len..]) {
                Ok(0) => break,
                Ok(n) => self.head_len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.bytes += self.head_len as u64;
        if self.head_len == 3 && self.head == BOM {
            self.head_pos = 3;
        }
        Ok(())
    }
}

impl<R: Read> Read for Guard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(line) = self.too_long {
            return Err(self.fail(line));
        }
        if !self.started {
            self.read_head()?;
        }
        let n = if self.head_pos < self.head_len {
            let n = (self.head_len - self.head_pos).min(buf.len());
            buf[..n].copy_from_slice(&self.head[self.head_pos..self.head_pos + n]);
            self.head_pos += n;
            n
        } else {
            let n = self.inner.read(buf)?;
            self.bytes += n as u64;
            n
        };
        if self.csv.is_some() {
            self.scan_csv(&buf[..n])?;
        } else {
            self.scan_lines(&buf[..n])?;
        }
        Ok(n)
    }
}

enum Inner<R: Read> {
    Csv {
        reader: csv::Reader<Guard<R>>,
        header: Vec<String>,
        /// Reused for every record: no allocation per record but the output.
        record: csv::ByteRecord,
        row: u64,
    },
    Json {
        reader: BufReader<Guard<R>>,
        /// Reused for every line.
        line: Vec<u8>,
        row: u64,
        /// The first record, read ahead by `new` to tell an empty file.
        first: Option<Item>,
    },
    Scim {
        reader: BufReader<Guard<R>>,
        bulk: crate::scim_bulk::BulkReader,
        first: Option<Item>,
    },
}

/// Reads records from an upload one at a time. See the module docs.
pub struct RecordReader<R: Read> {
    inner: Inner<R>,
    limits: Limits,
    /// No encoding was declared: a row that is not UTF-8 spoils the file
    /// ([`FormatError::NotUtf8`]) instead of only its row.
    strict_utf8: bool,
    /// CSV: a record may end with one delimiter too many (an empty last
    /// field past the header's columns), as some exports write.
    trailing_delimiter: bool,
    /// A fatal error already returned: every later call returns it again
    /// (the csv reader would otherwise report a clean end of file).
    failed: Option<Failed>,
}

/// A copy of a fatal [`FormatError`] (which is not `Clone`).
#[derive(Debug, Clone)]
enum Failed {
    LineTooLong { line: u64, max: usize },
    TooManyFields { row: u64, max: usize },
    Csv { line: u64 },
    NotScim { line: u64, why: String },
    ElementTooLong { row: u64, max: usize },
    NotUtf8 { row: u64, likely: &'static str },
    Io(io::ErrorKind, String),
}

impl Failed {
    fn of(e: &FormatError) -> Self {
        match e {
            FormatError::LineTooLong { line, max } => Failed::LineTooLong {
                line: *line,
                max: *max,
            },
            FormatError::TooManyFields { row, max } => Failed::TooManyFields {
                row: *row,
                max: *max,
            },
            FormatError::Csv { line } => Failed::Csv { line: *line },
            FormatError::NotScim { line, why } => Failed::NotScim {
                line: *line,
                why: why.clone(),
            },
            FormatError::ElementTooLong { row, max } => Failed::ElementTooLong {
                row: *row,
                max: *max,
            },
            FormatError::NotUtf8 { row, likely } => Failed::NotUtf8 { row: *row, likely },
            FormatError::Io(io) => Failed::Io(io.kind(), io.to_string()),
            other => Failed::Io(io::ErrorKind::Other, other.to_string()),
        }
    }

    fn replay(&self) -> FormatError {
        match self {
            Failed::LineTooLong { line, max } => FormatError::LineTooLong {
                line: *line,
                max: *max,
            },
            Failed::TooManyFields { row, max } => FormatError::TooManyFields {
                row: *row,
                max: *max,
            },
            Failed::Csv { line } => FormatError::Csv { line: *line },
            Failed::NotScim { line, why } => FormatError::NotScim {
                line: *line,
                why: why.clone(),
            },
            Failed::ElementTooLong { row, max } => FormatError::ElementTooLong {
                row: *row,
                max: *max,
            },
            Failed::NotUtf8 { row, likely } => FormatError::NotUtf8 { row: *row, likely },
            Failed::Io(kind, msg) => FormatError::Io(io::Error::new(*kind, msg.clone())),
        }
    }
}

impl<R: Read> RecordReader<R> {
    /// Opens a reader. For CSV it reads and checks the header now; for JSON
    /// lines it reads up to the first non-blank line. A file with nothing but
    /// a BOM and blank lines is [`FormatError::Empty`].
    pub fn new(inner: R, format: Format, limits: Limits) -> Result<Self, FormatError> {
        Self::with_trailing_delimiter(inner, format, limits, false)
    }

    /// [`RecordReader::new`], tolerating, when `trailing` is set, one
    /// delimiter too many at the end of the CSV header and of each record.
    pub fn with_trailing_delimiter(
        inner: R,
        format: Format,
        limits: Limits,
        trailing: bool,
    ) -> Result<Self, FormatError> {
        let mut me = match format {
            Format::Csv { delimiter } => {
                if !delimiter.is_ascii() || matches!(delimiter, b'"' | b'\r' | b'\n') {
                    return Err(FormatError::InvalidDelimiter);
                }
                let guard = Guard::new(inner, limits.max_line_bytes, Some(delimiter));
                let reader = csv::ReaderBuilder::new()
                    .delimiter(delimiter)
                    .has_headers(false)
                    .flexible(true)
                    .buffer_capacity(64 * 1024)
                    .from_reader(guard);
                Self {
                    inner: Inner::Csv {
                        reader,
                        header: Vec::new(),
                        record: csv::ByteRecord::new(),
                        row: 1,
                    },
                    limits,
                    strict_utf8: false,
                    trailing_delimiter: false,
                    failed: None,
                }
            }
            Format::JsonLines => Self {
                inner: Inner::Json {
                    reader: BufReader::with_capacity(
                        64 * 1024,
                        Guard::new(inner, limits.max_line_bytes, None),
                    ),
                    line: Vec::new(),
                    row: 0,
                    first: None,
                },
                limits,
                strict_utf8: false,
                trailing_delimiter: false,
                failed: None,
            },
            // The document may well be one long line: the bulk reader
            // bounds each element instead of the guard each line.
            Format::Scim => Self {
                inner: Inner::Scim {
                    reader: BufReader::with_capacity(
                        64 * 1024,
                        Guard::new(inner, usize::MAX, None),
                    ),
                    bulk: crate::scim_bulk::BulkReader::new(limits.max_line_bytes),
                    first: None,
                },
                limits,
                strict_utf8: false,
                trailing_delimiter: false,
                failed: None,
            },
        };
        me.trailing_delimiter = trailing;
        match &mut me.inner {
            Inner::Csv {
                reader,
                header,
                record,
                ..
            } => *header = read_header(reader, record, &limits, trailing)?,
            Inner::Json { .. } => {
                let first = me.next_json()?.ok_or(FormatError::Empty)?;
                if let Inner::Json { first: slot, .. } = &mut me.inner {
                    *slot = Some(first);
                }
            }
            Inner::Scim {
                reader,
                bulk,
                first,
            } => *first = Some(bulk.next(reader)?.ok_or(FormatError::Empty)?),
        }
        Ok(me)
    }

    /// The bytes of the record (or line) read last.
    fn last_bytes(&self) -> &[u8] {
        match &self.inner {
            Inner::Csv { record, .. } => record.as_slice(),
            Inner::Json { line, .. } => line,
            Inner::Scim { .. } => &[],
        }
    }

    /// Makes a row that is not UTF-8 a [`FormatError::NotUtf8`], for a
    /// file whose encoding was not declared (see [`crate::text`]).
    pub fn refuse_invalid_utf8(mut self) -> Self {
        self.strict_utf8 = true;
        self
    }

    /// The CSV header's column names, trimmed; `None` for JSON lines.
    pub fn header(&self) -> Option<&[String]> {
        match &self.inner {
            Inner::Csv { header, .. } => Some(header),
            Inner::Json { .. } | Inner::Scim { .. } => None,
        }
    }

    /// Bytes taken from the underlying reader so far (read-ahead included),
    /// for progress.
    pub fn bytes_read(&self) -> u64 {
        match &self.inner {
            Inner::Csv { reader, .. } => reader.get_ref().bytes,
            Inner::Json { reader, .. } | Inner::Scim { reader, .. } => reader.get_ref().bytes,
        }
    }

    /// The next record or row problem; `None` at the end of the file.
    /// After a fatal error, every later call returns that error again.
    pub fn next_item(&mut self) -> Result<Option<Item>, FormatError> {
        if let Some(f) = &self.failed {
            return Err(f.replay());
        }
        let next = match &mut self.inner {
            Inner::Csv { .. } => self.next_csv(),
            Inner::Json { first, .. } => match first.take() {
                Some(item) => Ok(Some(item)),
                None => self.next_json(),
            },
            Inner::Scim {
                reader,
                bulk,
                first,
            } => match first.take() {
                Some(item) => Ok(Some(item)),
                None => bulk.next(reader),
            },
        };
        let next = match next {
            Ok(Some(Item::Problem(p))) if self.strict_utf8 && p.code == ErrorCode::InvalidUtf8 => {
                Err(FormatError::NotUtf8 {
                    row: p.row,
                    likely: crate::text::likely_encoding(self.last_bytes()),
                })
            }
            other => other,
        };
        if let Err(e) = &next {
            self.failed = Some(Failed::of(e));
        }
        next
    }

    fn next_csv(&mut self) -> Result<Option<Item>, FormatError> {
        let Limits {
            max_line_bytes,
            max_fields,
        } = self.limits;
        let Inner::Csv {
            reader,
            header,
            record,
            row,
        } = &mut self.inner
        else {
            return Ok(None);
        };
        if !reader
            .read_byte_record(record)
            .map_err(|e| csv_error(e, reader.get_ref(), max_line_bytes))?
        {
            return Ok(None);
        }
        *row += 1;
        let row = *row;
        // The guard already bounds records; this only backs it up.
        if record.as_slice().len() > max_line_bytes {
            let line = record.position().map_or(0, |p| p.line());
            return Err(FormatError::LineTooLong {
                line,
                max: max_line_bytes,
            });
        }
        if record.len() > max_fields {
            return Err(FormatError::TooManyFields {
                row,
                max: max_fields,
            });
        }
        let extra_empty = self.trailing_delimiter
            && record.len() == header.len() + 1
            && record
                .get(header.len())
                .is_some_and(|f| f.trim_ascii().is_empty());
        if record.len() != header.len() && !extra_empty {
            return Ok(Some(Item::Problem(RowProblem {
                row,
                column: None,
                code: ErrorCode::RaggedRow,
                message: format!(
                    "the row has {} fields where the header has {}",
                    record.len(),
                    header.len()
                ),
            })));
        }
        // One UTF-8 check for the whole record; field boundaries that split a
        // character fail `get`, like a bad field would.
        let bad_column = |i: usize| {
            Item::Problem(RowProblem {
                row,
                column: header.get(i).cloned(),
                code: ErrorCode::InvalidUtf8,
                message: "the field is not valid UTF-8 text".to_owned(),
            })
        };
        let Ok(text) = std::str::from_utf8(record.as_slice()) else {
            let i = record
                .iter()
                .position(|f| std::str::from_utf8(f).is_err())
                .unwrap_or(0);
            return Ok(Some(bad_column(i)));
        };
        let mut fields = Vec::with_capacity(header.len());
        for i in 0..header.len() {
            match record.range(i).and_then(|r| text.get(r)) {
                Some(s) => fields.push(s.to_owned()),
                None => return Ok(Some(bad_column(i))),
            }
        }
        Ok(Some(Item::Record(Record::Fields { row, fields })))
    }

    fn next_json(&mut self) -> Result<Option<Item>, FormatError> {
        let max = self.limits.max_line_bytes;
        let Inner::Json {
            reader, line, row, ..
        } = &mut self.inner
        else {
            return Ok(None);
        };
        loop {
            line.clear();
            match reader.read_until(b'\n', line) {
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(e) => {
                    return Err(match reader.get_ref().too_long {
                        Some(line) => FormatError::LineTooLong { line, max },
                        None => FormatError::Io(e),
                    })
                }
            }
            *row += 1;
            let text = line.trim_ascii();
            if text.is_empty() {
                continue;
            }
            return Ok(Some(json_item(*row, text)));
        }
    }
}

/// Reads the first record as the header and checks its names.
fn read_header<R: Read>(
    reader: &mut csv::Reader<Guard<R>>,
    record: &mut csv::ByteRecord,
    limits: &Limits,
    trailing: bool,
) -> Result<Vec<String>, FormatError> {
    let got = reader
        .read_byte_record(record)
        .map_err(|e| csv_error(e, reader.get_ref(), limits.max_line_bytes))?;
    // A line of spaces is as blank as an empty one.
    if !got || (record.len() == 1 && record[0].trim_ascii().is_empty()) {
        return Err(FormatError::Empty);
    }
    if record.len() > limits.max_fields {
        return Err(FormatError::TooManyFields {
            row: 1,
            max: limits.max_fields,
        });
    }
    let mut header: Vec<String> = Vec::with_capacity(record.len());
    let columns = match record.iter().next_back() {
        Some(last) if trailing && record.len() > 1 && last.trim_ascii().is_empty() => {
            record.len() - 1
        }
        _ => record.len(),
    };
    for (i, cell) in record.iter().take(columns).enumerate() {
        let name = std::str::from_utf8(cell)
            .map_err(|_| FormatError::HeaderNotUtf8 {
                likely: crate::text::likely_encoding(record.as_slice()),
            })?
            .trim();
        if name.is_empty() {
            return Err(FormatError::EmptyHeaderName { position: i + 1 });
        }
        // Headers are short; a linear scan beats hashing here.
        if header.iter().any(|h| h == name) {
            return Err(FormatError::DuplicateHeader {
                name: name.to_owned(),
            });
        }
        header.push(name.to_owned());
    }
    Ok(header)
}

/// Classifies one non-blank JSON line.
fn json_item(row: u64, text: &[u8]) -> Item {
    let problem = |code: ErrorCode, message: &str| {
        Item::Problem(RowProblem {
            row,
            column: None,
            code,
            message: message.to_owned(),
        })
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return problem(ErrorCode::InvalidUtf8, "the line is not valid UTF-8 text");
    };
    // Objects, the common case, parse straight into a map.
    if text.starts_with('{') {
        return match serde_json::from_str(text) {
            Ok(object) => Item::Record(Record::Object { row, object }),
            Err(_) => problem(ErrorCode::InvalidJson, "the line is not valid JSON"),
        };
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(_) => problem(ErrorCode::NotAnObject, "the line is JSON but not an object"),
        Err(_) => problem(ErrorCode::InvalidJson, "the line is not valid JSON"),
    }
}

/// Maps a csv error, preferring the guard's own verdict.
fn csv_error<R>(e: csv::Error, guard: &Guard<R>, max: usize) -> FormatError {
    if let Some(line) = guard.too_long {
        return FormatError::LineTooLong { line, max };
    }
    let line = e.position().map_or(0, |p| p.line());
    match e.into_kind() {
        csv::ErrorKind::Io(io) => FormatError::Io(io),
        // Byte records in flexible mode raise no other error; should a csv
        // upgrade add one, it is reported without the data it may carry.
        _ => FormatError::Csv { line },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parsed = (Vec<String>, Vec<Item>);

    fn csv(bytes: &[u8]) -> Result<Parsed, FormatError> {
        csv_with(bytes, Limits::default(), b',')
    }

    fn csv_with(bytes: &[u8], limits: Limits, d: u8) -> Result<Parsed, FormatError> {
        let mut r = RecordReader::new(bytes, Format::Csv { delimiter: d }, limits)?;
        let header = r.header().unwrap().to_vec();
        let mut items = Vec::new();
        while let Some(i) = r.next_item()? {
            items.push(i);
        }
        Ok((header, items))
    }

    fn jsonl(bytes: &[u8]) -> Result<Vec<Item>, FormatError> {
        let mut r = RecordReader::new(bytes, Format::JsonLines, Limits::default())?;
        assert!(r.header().is_none());
        let mut items = Vec::new();
        while let Some(i) = r.next_item()? {
            items.push(i);
        }
        Ok(items)
    }

    fn fields(i: &Item) -> (u64, Vec<&str>) {
        match i {
            Item::Record(Record::Fields { row, fields }) => {
                (*row, fields.iter().map(String::as_str).collect())
            }
            other => panic!("not a record: {other:?}"),
        }
    }

    fn problem(i: &Item) -> &RowProblem {
        match i {
            Item::Problem(p) => p,
            other => panic!("not a problem: {other:?}"),
        }
    }

    fn small(max_line_bytes: usize) -> Limits {
        Limits {
            max_line_bytes,
            max_fields: 10,
        }
    }

    #[test]
    fn one_trailing_delimiter_is_tolerated_only_when_asked() {
        let data = b"id,name,\n1,Ada,\n2,Bob\n3,Cy,x\n";
        let mut r = RecordReader::with_trailing_delimiter(
            &data[..],
            Format::Csv { delimiter: b',' },
            Limits::default(),
            true,
        )
        .unwrap();
        assert_eq!(r.header().unwrap(), ["id", "name"]);
        let mut items = Vec::new();
        while let Some(i) = r.next_item().unwrap() {
            items.push(i);
        }
        assert_eq!(fields(&items[0]), (2, vec!["1", "Ada"]));
        assert_eq!(fields(&items[1]), (3, vec!["2", "Bob"]));
        // A third field with a value is not a trailing delimiter.
        assert!(matches!(&items[2], Item::Problem(p) if p.code == ErrorCode::RaggedRow));
        // Without the setting the header's empty last name is refused.
        assert!(matches!(
            csv(data),
            Err(FormatError::EmptyHeaderName { position: 3 })
        ));
    }

    #[test]
    fn a_bom_is_skipped_and_header_names_are_trimmed() {
        let (h, items) = csv(b"\xEF\xBB\xBF id , name\n1,Ada\n").unwrap();
        assert_eq!(h, ["id", "name"]);
        assert_eq!(fields(&items[0]), (2, vec!["1", "Ada"]));
        // Files shorter than a BOM, and starts that only look like one.
        assert_eq!(csv(b"a").unwrap().0, ["a"]);
        assert_eq!(csv(b"\xEF\xBB\xBFa").unwrap().0, ["a"]);
        assert!(matches!(
            csv(b"\xEF\xBBx\n"),
            Err(FormatError::HeaderNotUtf8 { .. })
        ));
    }

    #[test]
    fn crlf_bare_cr_and_lf_line_endings_all_work() {
        for data in [
            &b"id,name\r\n1,Ada\r\n2,Bob\r\n"[..],
            b"id,name\r1,Ada\r2,Bob\r",
            b"id,name\n1,Ada\n2,Bob",
            b"id,name\r\n1,Ada\r2,Bob\n",
        ] {
            let (h, items) = csv(data).unwrap();
            assert_eq!(h, ["id", "name"]);
            assert_eq!(fields(&items[0]), (2, vec!["1", "Ada"]));
            assert_eq!(fields(&items[1]), (3, vec!["2", "Bob"]));
            assert_eq!(items.len(), 2);
        }
    }

    #[test]
    fn quoted_line_breaks_and_doubled_quotes_keep_row_numbers_right() {
        let data = b"id,name,note\n1,\"Ada\r\nLovelace\",\"say \"\"hi\"\"\"\n2,\"a\nb\nc\",\"\"\n3,Bob,\"x,y\"\n";
        let (_, items) = csv(data).unwrap();
        assert_eq!(
            fields(&items[0]),
            (2, vec!["1", "Ada\r\nLovelace", "say \"hi\""])
        );
        assert_eq!(fields(&items[1]), (3, vec!["2", "a\nb\nc", ""]));
        assert_eq!(fields(&items[2]), (4, vec!["3", "Bob", "x,y"]));
    }

    #[test]
    fn blank_lines_are_skipped() {
        let (_, items) = csv(b"\n\nid,name\n\n1,Ada\r\n\r\n\n2,Bob\n\n").unwrap();
        assert_eq!(fields(&items[0]), (2, vec!["1", "Ada"]));
        assert_eq!(fields(&items[1]), (3, vec!["2", "Bob"]));
        assert_eq!(items.len(), 2);
    }

    #[test]
    fn ragged_rows_and_invalid_utf8_are_row_problems_and_reading_goes_on() {
        let (_, items) = csv(b"id,name\n1\n2,B\xffd\n3,ok\n4,a,b\n5,\xc3\n6,end\n").unwrap();
        let p = problem(&items[0]);
        assert_eq!(
            (p.row, p.code, p.column.as_deref()),
            (2, ErrorCode::RaggedRow, None)
        );
        assert!(p.message.contains('1') && p.message.contains('2'));
        let p = problem(&items[1]);
        assert_eq!(
            (p.row, p.code, p.column.as_deref()),
            (3, ErrorCode::InvalidUtf8, Some("name"))
        );
        assert_eq!(fields(&items[2]), (4, vec!["3", "ok"]));
        let p = problem(&items[3]);
        assert_eq!((p.row, p.code), (5, ErrorCode::RaggedRow));
        assert!(p.message.contains('3') && p.message.contains('2'));
        assert_eq!(problem(&items[4]).column.as_deref(), Some("name"));
        assert_eq!(fields(&items[5]), (7, vec!["6", "end"]));
        // A character split across two fields is caught too: "\xc3" ends
        // field one and "\xa9" starts field two; together they are "é".
        let (_, items) = csv(b"a,b\n\xc3,\xa9\n").unwrap();
        assert_eq!(problem(&items[0]).column.as_deref(), Some("a"));
    }

    #[test]
    fn empty_files_and_bad_headers_are_format_errors() {
        for empty in [
            &b""[..],
            b"\xEF\xBB\xBF",
            b"\n\n",
            b"\xEF\xBB\xBF\r\n\r\n",
            b"   \n",
        ] {
            assert!(matches!(csv(empty), Err(FormatError::Empty)), "{empty:?}");
        }
        assert!(matches!(
            csv(b"id, id\n"),
            Err(FormatError::DuplicateHeader { name }) if name == "id"
        ));
        assert!(matches!(
            csv(b"id,\xff\n"),
            Err(FormatError::HeaderNotUtf8 { .. })
        ));
        assert!(matches!(
            csv(b"id,,x\n"),
            Err(FormatError::EmptyHeaderName { position: 2 })
        ));
        assert!(matches!(
            csv_with(
                b"a,b,c\n",
                Limits {
                    max_line_bytes: 100,
                    max_fields: 2
                },
                b','
            ),
            Err(FormatError::TooManyFields { row: 1, max: 2 })
        ));
        assert!(matches!(
            csv_with(
                b"a,b\n1,2,3\n",
                Limits {
                    max_line_bytes: 100,
                    max_fields: 2
                },
                b','
            ),
            Err(FormatError::TooManyFields { row: 2, max: 2 })
        ));
        for d in [b'"', b'\n', b'\r', 0xC3] {
            assert!(matches!(
                csv_with(b"a\n", Limits::default(), d),
                Err(FormatError::InvalidDelimiter)
            ));
        }
    }

    #[test]
    fn a_header_only_file_has_no_records() {
        let (h, items) = csv(b"\xEF\xBB\xBFid,name\r\n").unwrap();
        assert_eq!(h, ["id", "name"]);
        assert!(items.is_empty());
        let (_, items) = csv(b"id,name").unwrap();
        assert!(items.is_empty());
    }

    #[test]
    fn a_semicolon_or_tab_delimiter() {
        let (h, items) = csv_with(b"id;name\n1;\"Smith; Jr.\"\n", Limits::default(), b';').unwrap();
        assert_eq!(h, ["id", "name"]);
        assert_eq!(fields(&items[0]).1, ["1", "Smith; Jr."]);
        let (_, items) = csv_with(b"id\tname\n1\tA,B\n", Limits::default(), b'\t').unwrap();
        assert_eq!(fields(&items[0]).1, ["1", "A,B"]);
    }

    /// Yields `n` bytes of `pattern`, repeated, without ever holding them.
    struct Endless {
        left: u64,
        pattern: &'static [u8],
        at: usize,
    }

    impl Endless {
        fn new(left: u64, pattern: &'static [u8]) -> Self {
            Self {
                left,
                pattern,
                at: 0,
            }
        }
    }

    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = (buf.len() as u64).min(self.left) as usize;
            for b in &mut buf[..n] {
                *b = self.pattern[self.at];
                self.at = (self.at + 1) % self.pattern.len();
            }
            self.left -= n as u64;
            Ok(n)
        }
    }

    const HUNDRED_MIB: u64 = 100 << 20;

    #[test]
    fn an_oversized_line_is_fatal_and_names_its_line() {
        let data = [b"id,name\n1,ok\n2,".as_slice(), &[b'x'; 2000], b"\n"].concat();
        assert!(matches!(
            csv_with(&data, small(1000), b','),
            Err(FormatError::LineTooLong { line: 3, max: 1000 })
        ));
        // Exactly at the limit is fine, whatever the line ending.
        let row = [b"1,".as_slice(), &[b'x'; 998]].concat();
        for end in [&b"\n"[..], b"\r\n", b"\r"] {
            let data = [b"id,name".as_slice(), end, &row, end, &row].concat();
            let (_, items) = csv_with(&data, small(1000), b',').unwrap();
            assert_eq!(items.len(), 2);
        }
        let j = [br#"{"a":""#.as_slice(), &[b'x'; 992], b"\"}\r\n"].concat();
        assert_eq!(j.len(), 1002);
        let mut r = RecordReader::new(&j[..], Format::JsonLines, small(1000)).unwrap();
        assert!(matches!(r.next_item(), Ok(Some(Item::Record(_)))));
    }

    #[test]
    fn a_hundred_mib_line_fails_fast_without_being_buffered() {
        let started = std::time::Instant::now();
        let head = io::Cursor::new(b"id,name\n1,".to_vec()).chain(Endless::new(HUNDRED_MIB, b"a"));
        let mut r =
            RecordReader::new(head, Format::Csv { delimiter: b',' }, Limits::default()).unwrap();
        assert!(matches!(
            r.next_item(),
            Err(FormatError::LineTooLong { line: 2, .. })
        ));
        // The failure sticks.
        let again = r.next_item();
        assert!(
            matches!(again, Err(FormatError::LineTooLong { .. })),
            "{again:?}"
        );
        assert!(r.bytes_read() < 4 << 20, "{}", r.bytes_read());
        // In the header too.
        let e = RecordReader::new(
            Endless::new(HUNDRED_MIB, b"a"),
            Format::Csv { delimiter: b',' },
            Limits::default(),
        )
        .err();
        assert!(matches!(e, Some(FormatError::LineTooLong { line: 1, .. })));
        // JSON lines: the constructor already looks for the first record.
        let e = RecordReader::new(
            Endless::new(HUNDRED_MIB, b"a"),
            Format::JsonLines,
            Limits::default(),
        )
        .err();
        assert!(matches!(e, Some(FormatError::LineTooLong { line: 1, .. })));
        // Bare CRs do not end JSON lines, so they do not reset the count.
        let e = RecordReader::new(
            Endless::new(HUNDRED_MIB, b"a\r"),
            Format::JsonLines,
            Limits::default(),
        )
        .err();
        assert!(matches!(e, Some(FormatError::LineTooLong { line: 1, .. })));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn a_quoted_field_that_never_closes_is_bounded_too() {
        // Short physical lines, but one endless record.
        let head = io::Cursor::new(b"id,name\n1,ok\n2,\"".to_vec())
            .chain(Endless::new(HUNDRED_MIB, b"line\r\n"));
        let mut r =
            RecordReader::new(head, Format::Csv { delimiter: b',' }, Limits::default()).unwrap();
        assert!(matches!(r.next_item(), Ok(Some(Item::Record(_)))));
        assert!(matches!(
            r.next_item(),
            Err(FormatError::LineTooLong { line: 3, .. })
        ));
        assert!(r.bytes_read() < 4 << 20);
    }

    #[test]
    fn quotes_inside_unquoted_fields_do_not_join_records() {
        // `5" screen` quotes nothing in RFC 4180 terms; a tracker that
        // thought otherwise would see one long record here.
        let mut data = b"id,item\n".to_vec();
        for _ in 0..100 {
            data.extend_from_slice(b"1,5\" screen\n2,\"a \"\"b\"\" c\"\n3,\"x\"y\n");
        }
        let (_, items) = csv_with(&data, small(40), b',').unwrap();
        assert_eq!(items.len(), 300);
        assert_eq!(fields(&items[0]).1, ["1", "5\" screen"]);
        assert_eq!(fields(&items[1]).1, ["2", "a \"b\" c"]);
        assert_eq!(fields(&items[2]).1, ["3", "xy"]);
    }

    #[test]
    fn json_lines_good_and_bad() {
        let data = b"\xEF\xBB\xBF{\"id\": 1}\r\n\nnot json\n[1]\n{\"id\": \"\xff\"}\n  \n{\"id\": 2}\n\"s\"\n{\"a\":1} x\n{\"id\": 3}";
        let items = jsonl(data).unwrap();
        let Item::Record(Record::Object { row: 1, object }) = &items[0] else {
            panic!("{:?}", items[0]);
        };
        assert_eq!(object["id"], 1);
        let codes: Vec<(u64, &str)> = items[1..]
            .iter()
            .map(|i| match i {
                Item::Problem(p) => (p.row, p.code.as_str()),
                Item::Record(r) => (r.row(), "ok"),
            })
            .collect();
        assert_eq!(
            codes,
            [
                (3, "invalid_json"),
                (4, "not_an_object"),
                (5, "invalid_utf8"),
                (7, "ok"),
                (8, "not_an_object"),
                (9, "invalid_json"),
                (10, "ok"),
            ]
        );
        for empty in [&b""[..], b"\n \n", b"\xEF\xBB\xBF\r\n"] {
            assert!(matches!(jsonl(empty), Err(FormatError::Empty)));
        }
        // Leading blank lines still count for row numbers.
        let items = jsonl(b"\n\n{\"a\":1}\n").unwrap();
        assert_eq!(items.len(), 1);
        assert!(matches!(&items[0], Item::Record(r) if r.row() == 3));
    }

    #[test]
    fn bytes_read_reports_progress() {
        let data = b"\xEF\xBB\xBFid,name\n1,Ada\n";
        let mut r = RecordReader::new(
            &data[..],
            Format::Csv { delimiter: b',' },
            Limits::default(),
        )
        .unwrap();
        while r.next_item().unwrap().is_some() {}
        assert_eq!(r.bytes_read(), data.len() as u64);
    }

    #[test]
    fn messages_never_quote_content() {
        let (_, items) = csv(b"id,name\nSECRET\n1,SECRET\xff\n").unwrap();
        for i in &items {
            assert!(!problem(i).message.contains("SECRET"));
        }
        let items = jsonl(b"SECRET\n[\"SECRET\"]\n").unwrap();
        for i in &items {
            assert!(!problem(i).message.contains("SECRET"));
        }
        let e = csv_with(b"id,name\n1,SECRETSECRET\n", small(8), b',').unwrap_err();
        assert!(!e.to_string().contains("SECRET"));
    }

    /// Hands out its bytes in blocks of varying, sometimes tiny, sizes.
    struct Blocks<'a> {
        data: &'a [u8],
        sizes: std::iter::Cycle<std::slice::Iter<'static, usize>>,
    }

    impl Read for Blocks<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.sizes.next().copied().unwrap_or(1);
            let n = n.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn blocks(data: &[u8]) -> Blocks<'_> {
        Blocks {
            data,
            sizes: [1usize, 7, 3, 64, 2, 9, 1, 1, 33].iter().cycle(),
        }
    }

    /// Pseudo-random bytes drawn from `alphabet` (xorshift; fixed seed).
    fn noise(len: usize, alphabet: &[u8], x: &mut u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                *x ^= *x << 13;
                *x ^= *x >> 7;
                *x ^= *x << 17;
                alphabet[(*x % alphabet.len() as u64) as usize]
            })
            .collect()
    }

    #[test]
    fn word_at_a_time_searches_agree_with_plain_ones() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for len in 0..300 {
            let data = noise(len, b"ab\r\n\"\x80\xff\x0d\x0a,", &mut x);
            let naive_breaks = data
                .iter()
                .enumerate()
                .filter(|&(i, &b)| b == b'\r' || (b == b'\n' && (i == 0 || data[i - 1] != b'\r')))
                .count() as u64;
            assert_eq!(line_breaks(&data, false), naive_breaks);
            let starts_joined = u64::from(data.first() == Some(&b'\n'));
            assert_eq!(line_breaks(&data, true), naive_breaks - starts_joined);
            for split in [0, len / 3, len / 2] {
                let (a, b) = data.split_at(split);
                let after = a.last() == Some(&b'\r');
                assert_eq!(line_breaks(a, false) + line_breaks(b, after), naive_breaks);
            }
            assert_eq!(find(&data, [b'"']), data.iter().position(|&b| b == b'"'));
            assert_eq!(
                find(&data, [b'"', b'\n', b'\r']),
                data.iter().position(|b| b"\"\n\r".contains(b))
            );
        }
    }

    /// Raw lengths of the records in `data`, one byte at a time through
    /// the parser table: the reference for the word-at-a-time guard.
    fn record_lengths(data: &[u8], delimiter: u8) -> Vec<usize> {
        let (mut state, mut len, mut out) = (S_RECORD, 0, Vec::new());
        for &b in data {
            let class = match b {
                b'"' => C_QUOTE,
                b'\r' | b'\n' => C_TERM,
                b if b == delimiter => C_DELIM,
                _ => C_OTHER,
            };
            let next = NEXT[usize::from(state) * 4 + usize::from(class)];
            if next == S_RECORD && state != S_RECORD {
                out.push(len);
            }
            len = if next == S_RECORD { 0 } else { len + 1 };
            state = next;
        }
        if state != S_RECORD {
            out.push(len);
        }
        out
    }

    #[test]
    fn the_guard_bounds_exactly_the_records_the_csv_parser_sees() {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for round in 0..400 {
            let d = if round % 2 == 0 { b',' } else { b';' };
            let data = noise(round % 120, b"aa,;\"\"\r\n\n ", &mut x);
            let lengths = record_lengths(&data, d);
            let parsed = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .delimiter(d)
                .from_reader(&data[..])
                .byte_records()
                .count();
            assert_eq!(
                lengths.len(),
                parsed,
                "{:?}",
                String::from_utf8_lossy(&data)
            );
            let longest = lengths.iter().copied().max().unwrap_or(0);
            let verdict = |max: usize| {
                let mut g = Guard::new(blocks(&data), max, Some(d));
                let mut sink = Vec::new();
                g.read_to_end(&mut sink).map(|_| sink)
            };
            assert_eq!(verdict(longest).unwrap(), data);
            if longest > 0 {
                assert!(verdict(longest - 1).is_err());
            }
        }
    }

    #[test]
    fn limits_hold_across_block_boundaries() {
        let limits = small(10);
        let csv_at = |data: &[u8]| -> Result<usize, FormatError> {
            let mut r = RecordReader::new(blocks(data), Format::Csv { delimiter: b',' }, limits)?;
            let mut n = 0;
            while r.next_item()?.is_some() {
                n += 1;
            }
            Ok(n)
        };
        assert_eq!(csv_at(b"a\r\n0123456789\r\n\"0123\r\n67\"\r\n").unwrap(), 2);
        assert!(matches!(
            csv_at(b"a\r\n0123456789\r\n\r\n\"012345\r\n67\"\r\n"),
            Err(FormatError::LineTooLong { line: 4, .. })
        ));
        let json_at = |data: &[u8]| -> Result<usize, FormatError> {
            let mut r = RecordReader::new(blocks(data), Format::JsonLines, limits)?;
            let mut n = 0;
            while r.next_item()?.is_some() {
                n += 1;
            }
            Ok(n)
        };
        assert_eq!(json_at(b"{\"a\":\"12\"}\r\n{\"a\":\"\"}\r\n").unwrap(), 2);
        // Ten bare CRs are ten bytes of (blank) content, the CR before LF
        // none.
        assert_eq!(json_at(b"{}\n\r\r\r\r\r\r\r\r\r\r\r\n{}").unwrap(), 2);
        assert!(matches!(
            json_at(b"{}\r\n{\"a\":\"123\"}\r\n"),
            Err(FormatError::LineTooLong { line: 2, .. })
        ));
        assert!(matches!(
            json_at(b"{}\n\r\r\r\r\r\r\r\r\r\r\r\r\n"),
            Err(FormatError::LineTooLong { line: 2, .. })
        ));
    }

    #[test]
    fn a_failing_upload_stays_failed() {
        use crate::seal::{SealWriter, UnsealReader};
        use std::io::Write;
        let key = [3u8; 32];
        let mut w = SealWriter::new(Vec::new(), &key, b"imp").unwrap();
        w.write_all(&b"id,name\n1,Ada\n".repeat(20_000)).unwrap();
        let mut sealed = w.finish().unwrap();
        let n = sealed.len();
        sealed[n - 100] ^= 1;
        let unsealed = UnsealReader::new(&sealed[..], &key, b"imp").unwrap();
        let mut r = RecordReader::new(unsealed, Format::Csv { delimiter: b',' }, Limits::default())
            .unwrap();
        let mut records = 0;
        let e = loop {
            match r.next_item() {
                Ok(Some(_)) => records += 1,
                Ok(None) => panic!("a tampered upload read to its end"),
                Err(e) => break e,
            }
        };
        assert!(matches!(&e, FormatError::Io(io) if io.kind() == io::ErrorKind::InvalidData));
        assert!(records > 0 && records < 40_000, "{records}");
        // Asking again does not turn the failure into a clean end.
        assert!(matches!(r.next_item(), Err(FormatError::Io(_))));
    }

    #[test]
    fn readers_can_move_to_a_worker_thread() {
        fn send<T: Send>() {}
        send::<RecordReader<crate::seal::UnsealReader<std::fs::File>>>();
        send::<crate::seal::SealWriter<std::fs::File>>();
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A fixed pseudo-random walk over bytes that matter to the parsers.
        let alphabet = b"a,;\"\r\n{}[]: \xff\xc3\xa9\xEF\xBB\xBF1";
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for len in 0..400usize {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    alphabet[(x % alphabet.len() as u64) as usize]
                })
                .collect();
            for format in [Format::Csv { delimiter: b',' }, Format::JsonLines] {
                if let Ok(mut r) = RecordReader::new(&data[..], format, small(16)) {
                    while let Ok(Some(_)) = r.next_item() {}
                }
            }
        }
    }
}
