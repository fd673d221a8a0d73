//! What kind of text an upload is, before the record readers see it:
//! a file that is no text at all (a ZIP archive, an XLSX or XLS workbook,
//! a gzip stream, a PDF) is named and refused; a file in a declared
//! encoding (windows-1252, ISO-8859-1, UTF-16 and every other label of
//! the WHATWG Encoding Standard), or one that starts with a UTF-16 byte
//! order mark, is decoded to UTF-8 as it streams; anything else is read
//! as UTF-8, and a row that is not UTF-8 then spoils the whole file
//! (see [`likely_encoding`]), because per-row errors would quietly drop
//! exactly the people with accented names.
use crate::records::FormatError;
use std::io::{self, Read};

pub use encoding_rs::Encoding;

/// The encoding a label names (`windows-1252`, `latin1`, `iso-8859-1`,
/// `utf-16le`, `shift_jis`, ... in any case), by the WHATWG Encoding
/// Standard. `iso-8859-1` and `latin1` are windows-1252 there, which
/// agrees with ISO-8859-1 on every printable character.
pub fn encoding_for(label: &str) -> Option<&'static Encoding> {
    Encoding::for_label(label.trim().as_bytes())
}

/// The canonical name of the encoding `label` names, in lower case
/// (`latin1` is `windows-1252`), as the gateway records it.
pub fn encoding_name(label: &str) -> Option<String> {
    encoding_for(label).map(|e| e.name().to_ascii_lowercase())
}

/// What a file that is not text is, from its first bytes.
pub fn not_text(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(b"PK\x03\x04") {
        // An XLSX (Office Open XML) workbook is a ZIP whose parts are
        // named `[Content_Types].xml`, `_rels/..`, `xl/..`; the first
        // entry's name is in its local header, right after these bytes.
        let names = &head[30.min(head.len())..];
        let has = |n: &[u8]| names.windows(n.len()).any(|w| w == n);
        return Some(if has(b"xl/") {
            "an Excel workbook (XLSX): save it as CSV (UTF-8) first"
        } else if has(b"[Content_Types].xml") || has(b"_rels/") || has(b"docProps/") {
            "an Office document (likely an XLSX workbook): save it as CSV (UTF-8) first"
        } else {
            "a ZIP archive: unpack it and send the CSV or JSON-lines file inside"
        });
    }
    if head.starts_with(b"PK\x05\x06") || head.starts_with(b"PK\x07\x08") {
        return Some("a ZIP archive: unpack it and send the CSV or JSON-lines file inside");
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        return Some(
            "gzip-compressed: decompress it first (or send it encrypted: OpenPGP and age compress)",
        );
    }
    if head.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        return Some(
            "an Excel 97-2003 workbook (XLS) or another OLE document: save it as CSV (UTF-8) first",
        );
    }
    if head.starts_with(b"%PDF-") {
        return Some("a PDF document, not a data file");
    }
    if head.starts_with(b"BZh") && head.get(3).is_some_and(|b| b.is_ascii_digit()) {
        return Some("bzip2-compressed: decompress it first");
    }
    if head.starts_with(&[0xFD, b'7', b'z', b'X', b'Z', 0x00]) {
        return Some("xz-compressed: decompress it first");
    }
    if head.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]) {
        return Some("zstd-compressed: decompress it first");
    }
    None
}

/// The encoding a byte order mark at the start of `head` names, when it is
/// one of UTF-16's (a UTF-8 mark is skipped by the readers themselves).
pub fn bom_encoding(head: &[u8]) -> Option<&'static Encoding> {
    match head {
        [0xFF, 0xFE, ..] => Some(encoding_rs::UTF_16LE),
        [0xFE, 0xFF, ..] => Some(encoding_rs::UTF_16BE),
        _ => None,
    }
}

/// What text that is not UTF-8 most likely is, for the error that
/// refuses it: NUL bytes between characters are UTF-16 without a byte
/// order mark; anything else an HR system writes is nearly always a
/// Western single-byte encoding.
pub fn likely_encoding(bytes: &[u8]) -> &'static str {
    if bytes.contains(&0) {
        "UTF-16 without a byte order mark (declare encoding=utf-16le or utf-16be)"
    } else {
        "windows-1252 or ISO-8859-1 (Latin-1), as Excel and many HR systems write (declare encoding=windows-1252)"
    }
}

/// A reader that decodes `inner` from `encoding` to UTF-8 as it is read,
/// a buffer at a time; a byte order mark is taken off (and wins over
/// `encoding`), and a byte sequence the encoding does not define becomes
/// U+FFFD.
pub struct Decoded<R> {
    inner: R,
    decoder: encoding_rs::Decoder,
    input: Box<[u8]>,
    in_start: usize,
    in_end: usize,
    eof: bool,
    output: Box<[u8]>,
    out_start: usize,
    out_end: usize,
    finished: bool,
}

const BUF: usize = 64 * 1024;

impl<R: Read> Decoded<R> {
    pub fn new(inner: R, encoding: &'static Encoding) -> Self {
        Self {
            inner,
            decoder: encoding.new_decoder(),
            input: vec![0; BUF].into_boxed_slice(),
            in_start: 0,
            in_end: 0,
            eof: false,
            // Room for the worst case of one input buffer.
            output: vec![0; 3 * BUF + 16].into_boxed_slice(),
            out_start: 0,
            out_end: 0,
            finished: false,
        }
    }

    /// Decodes the next stretch of input into `output`.
    fn refill(&mut self) -> io::Result<()> {
        while self.out_start == self.out_end && !self.finished {
            if self.in_start == self.in_end && !self.eof {
                let n = self.inner.read(&mut self.input)?;
                self.in_start = 0;
                self.in_end = n;
                self.eof = n == 0;
            }
            let (_, read, written, _) = self.decoder.decode_to_utf8(
                &self.input[self.in_start..self.in_end],
                &mut self.output,
                self.eof,
            );
            self.in_start += read;
            self.out_start = 0;
            self.out_end = written;
            if self.eof && self.in_start == self.in_end {
                self.finished = true;
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for Decoded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.refill()?;
        let n = (self.out_end - self.out_start).min(buf.len());
        buf[..n].copy_from_slice(&self.output[self.out_start..self.out_start + n]);
        self.out_start += n;
        Ok(n)
    }
}

/// Prepares an upload's plaintext for the record readers: refuses a file
/// that is not text ([`FormatError::NotText`]), and decodes the `declared`
/// encoding, or UTF-16 marked by its byte order mark, to UTF-8. Returns the
/// text and whether it is to be read as strict UTF-8 (nothing declared,
/// no mark: see [`crate::records::RecordReader::refuse_invalid_utf8`]).
pub fn open(
    mut r: Box<dyn Read + Send>,
    declared: Option<&'static Encoding>,
) -> Result<(Box<dyn Read + Send>, bool), FormatError> {
    let head = read_head(&mut r)?;
    if let Some(what) = not_text(&head) {
        return Err(FormatError::NotText { what });
    }
    let encoding = match (declared, bom_encoding(&head)) {
        // A byte order mark wins over a declaration, as WHATWG decoding does.
        (_, Some(marked)) => Some(marked),
        (Some(e), None) if e != encoding_rs::UTF_8 => Some(e),
        _ => None,
    };
    let strict = declared.is_none() && encoding.is_none();
    let whole: Box<dyn Read + Send> = Box::new(io::Cursor::new(head).chain(r));
    Ok(match encoding {
        Some(e) => (Box::new(Decoded::new(whole, e)), false),
        None => (whole, strict),
    })
}

/// How many leading bytes [`not_text`] and [`bom_encoding`] look at.
pub const SNIFF: usize = 512;

/// Reads up to [`SNIFF`] bytes of `r` (fewer only at its end).
pub fn read_head(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(SNIFF);
    r.by_ref().take(SNIFF as u64).read_to_end(&mut head)?;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8], e: &'static Encoding, chunk: usize) -> String {
        /// Hands out at most `chunk` bytes per read.
        struct Trickle<'a>(&'a [u8], usize);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(self.1).min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut out = String::new();
        Decoded::new(Trickle(bytes, chunk), e)
            .read_to_string(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn windows_1252_and_latin1_decode_to_utf8_whatever_the_read_sizes() {
        let bytes = b"id,name\nE1,Zo\xEB \x80\x93 J\xF6rg\n";
        for label in ["windows-1252", "ISO-8859-1", "latin1", "cp1252"] {
            let e = encoding_for(label).unwrap();
            for chunk in [1, 2, 7, 4096] {
                assert_eq!(
                    decode(bytes, e, chunk),
                    "id,name\nE1,Zoë €“ Jörg\n",
                    "{label}"
                );
            }
        }
        assert!(encoding_for("klingon").is_none());
    }

    #[test]
    fn utf16_is_decoded_without_its_byte_order_mark() {
        let mut le = vec![0xFF, 0xFE];
        for u in "id\tname\nE1\tZoë\n".encode_utf16() {
            le.extend_from_slice(&u.to_le_bytes());
        }
        assert_eq!(bom_encoding(&le), Some(encoding_rs::UTF_16LE));
        for chunk in [1, 3, 4096] {
            assert_eq!(
                decode(&le, encoding_rs::UTF_16LE, chunk),
                "id\tname\nE1\tZoë\n"
            );
        }
        assert_eq!(bom_encoding(b"id,name"), None);
    }

    #[test]
    fn files_that_are_not_text_are_named() {
        let mut xlsx = b"PK\x03\x04".to_vec();
        xlsx.extend_from_slice(&[0; 26]);
        xlsx.extend_from_slice(b"[Content_Types].xml");
        let mut xlsx_sheet = b"PK\x03\x04".to_vec();
        xlsx_sheet.extend_from_slice(&[0; 26]);
        xlsx_sheet.extend_from_slice(b"xl/worksheets/sheet1.xml");
        let mut zip = b"PK\x03\x04".to_vec();
        zip.extend_from_slice(&[0; 26]);
        zip.extend_from_slice(b"employees.csv");
        for (head, what) in [
            (&xlsx_sheet[..], "Excel workbook (XLSX)"),
            (&xlsx[..], "Office document"),
            (&zip[..], "ZIP archive"),
            (&[0x1f, 0x8b, 8, 0][..], "gzip"),
            (&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1][..], "XLS"),
            (b"%PDF-1.7", "PDF"),
            (b"BZh91AY", "bzip2"),
            (&[0xFD, b'7', b'z', b'X', b'Z', 0][..], "xz"),
            (&[0x28, 0xB5, 0x2F, 0xFD][..], "zstd"),
        ] {
            assert!(not_text(head).is_some_and(|w| w.contains(what)), "{what}");
        }
        for text in [
            &b"id,name\n"[..],
            b"{\"id\": 1}",
            b"PK,name\n",
            b"",
            b"\xEF\xBB\xBFid",
        ] {
            assert_eq!(not_text(text), None);
        }
    }

    fn read_all(
        bytes: &'static [u8],
        declared: Option<&'static Encoding>,
    ) -> Result<Vec<crate::records::Item>, FormatError> {
        use crate::records::{Format, Limits, RecordReader};
        let (text, strict) = open(Box::new(bytes), declared)?;
        let mut r = RecordReader::new(
            io::BufReader::new(text),
            Format::Csv { delimiter: b',' },
            Limits::default(),
        )?;
        if strict {
            r = r.refuse_invalid_utf8();
        }
        let mut items = Vec::new();
        while let Some(i) = r.next_item()? {
            items.push(i);
        }
        Ok(items)
    }

    #[test]
    fn undeclared_text_that_is_not_utf8_spoils_the_file_and_declared_text_is_decoded() {
        const FILE: &[u8] = b"id,name\nE1,Ada\nE2,Zo\xEB\nE3,Bob\n";
        match read_all(FILE, None) {
            Err(FormatError::NotUtf8 { row: 3, likely }) => {
                assert!(likely.contains("windows-1252"))
            }
            other => panic!("{other:?}"),
        }
        let items = read_all(FILE, encoding_for("windows-1252")).unwrap();
        assert_eq!(items.len(), 3);
        assert!(matches!(
            &items[1],
            crate::records::Item::Record(crate::records::Record::Fields { fields, .. })
                if fields[1] == "Zoë"
        ));
        // Declared UTF-8: the bad row is that row's problem only.
        let items = read_all(FILE, encoding_for("utf-8")).unwrap();
        assert!(matches!(&items[1], crate::records::Item::Problem(p) if p.row == 3));
        assert_eq!(items.len(), 3);
        assert!(matches!(
            read_all(b"PK\x03\x04\0\0", None),
            Err(FormatError::NotText { .. })
        ));
        // A header that is not UTF-8 names the likely encoding too.
        match read_all(b"id,n\xE4me\nE1,A\n", None) {
            Err(e @ FormatError::HeaderNotUtf8 { .. }) => {
                assert!(e.to_string().contains("windows-1252"), "{e}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_likely_encoding_of_text_that_is_not_utf8() {
        assert!(likely_encoding(b"Zo\xEB").contains("windows-1252"));
        assert!(likely_encoding(b"i\0d\0").contains("UTF-16"));
    }
}
