//! Entry points of the fuzz targets in `fuzz/` (see `docs/fuzzing.md`),
//! also run over the committed corpus by this crate's
//! `tests/fuzz_corpus.rs`. Each takes arbitrary bytes, drives the same code
//! an upload goes through, and returns; a panic is a bug.
use crate::decrypt::{self, DecryptError, DecryptionKey, SignerKey};
use crate::records::{Format, FormatError, Item, Limits, Record, RecordReader};
use muster_core::mapping::{MappingDoc, MappingFormat};
use std::collections::BTreeMap;
use std::io::Read;

/// Separates a mapping document from the file in a `csv_mapping` input.
pub const MAPPING_SEPARATOR: u8 = 0;

/// The CSV reader with a mapping, as an import's validation pass runs them.
///
/// Input layout: the first byte picks the format (`,` `;` tab `|`
/// delimited CSV, JSON lines, or a SCIM BulkRequest or ListResponse); then either `MAPPING \0 FILE`, where
/// MAPPING is a TOML (or JSON) mapping document, or just `FILE`, read with
/// `default_mapping` (the example Workday mapping in the targets).
pub fn csv_mapping(data: &[u8], default_mapping: &MappingDoc) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let format = match selector % 6 {
        0 => Format::Csv { delimiter: b',' },
        1 => Format::Csv { delimiter: b';' },
        2 => Format::Csv { delimiter: b'\t' },
        3 => Format::Csv { delimiter: b'|' },
        4 => Format::JsonLines,
        _ => Format::Scim,
    };
    let parsed;
    let (doc, file) = match rest.iter().position(|&b| b == MAPPING_SEPARATOR) {
        Some(at) => {
            let Ok(text) = std::str::from_utf8(&rest[..at]) else {
                return;
            };
            parsed = match MappingDoc::parse(text, MappingFormat::Toml) {
                Ok(d) => d,
                Err(_) => match MappingDoc::parse(text, MappingFormat::Json) {
                    Ok(d) => d,
                    Err(_) => return,
                },
            };
            (&parsed, &rest[at + 1..])
        }
        None => (default_mapping, rest),
    };
    // Small limits, so that short inputs reach the limit checks too.
    let limits = Limits {
        max_line_bytes: 512,
        max_fields: 32,
    };
    let Ok(mut reader) = RecordReader::new(file, format, limits) else {
        return;
    };
    let compiled = match reader.header() {
        Some(h) => {
            let cols: Vec<&str> = h.iter().map(String::as_str).collect();
            doc.compile(&cols, &BTreeMap::new())
        }
        None => doc.compile_named(&BTreeMap::new()),
    };
    let Ok(compiled) = compiled else {
        return;
    };
    let mut last_row = 0;
    loop {
        match reader.next_item() {
            Ok(None) => break,
            Ok(Some(Item::Problem(p))) => {
                assert!(p.row > last_row, "rows are numbered in order");
                last_row = p.row;
            }
            Ok(Some(Item::Record(r))) => {
                assert!(r.row() > last_row, "rows are numbered in order");
                last_row = r.row();
                match &r {
                    Record::Fields { fields, .. } => {
                        let f: Vec<&str> = fields.iter().map(String::as_str).collect();
                        let _ = compiled.row_key(&f);
                        let _ = compiled.map_row(&f);
                    }
                    Record::Object { object, .. } => {
                        let _ = compiled.object_key(object);
                        let _ = compiled.map_object(object);
                    }
                }
            }
            Err(first) => {
                // A fatal error is sticky: the reader never goes on after it.
                let again = reader.next_item();
                assert!(
                    matches!(again, Err(ref e) if e.to_string() == first.to_string()),
                    "a fatal error was not repeated"
                );
                break;
            }
        }
    }
}

/// The keys the `decrypt` target decrypts with: the test keys under
/// `fuzz/keys/` (never keys of a real tenant).
pub struct DecryptKeys {
    pub keys: Vec<DecryptionKey>,
    /// The OpenPGP key's public half, as a required sender.
    pub signer: Option<SignerKey>,
}

/// OpenPGP / age framing: [`decrypt::detect`] and
/// [`decrypt::decrypt_reader`] over arbitrary bytes, read to the end with
/// small bounds, once without and once with a required signature.
pub fn decrypt(data: &[u8], keys: &DecryptKeys) {
    let _ = decrypt::detect(&data[..data.len().min(decrypt::DETECT_BYTES)]);
    let limits = decrypt::Limits {
        max_decompressed_bytes: 1024 * 1024,
        max_ratio: 100,
        ratio_grace_bytes: 64 * 1024,
    };
    for signer in [None, keys.signer.as_ref()] {
        let Ok(mut reader) = decrypt::decrypt_reader(data, &keys.keys, &limits, signer) else {
            continue;
        };
        let mut buf = [0u8; 8192];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    // The worker tells a bad upload from a broken spool by
                    // this: every refusal of the stream is a DecryptError.
                    assert!(
                        DecryptError::from_io(&e).is_some(),
                        "the decrypted stream failed without a DecryptError: {e}"
                    );
                    break;
                }
            }
        }
    }
}

/// Whether a CSV reader accepts `delimiter` (for the upload parameter
/// target, which checks that a delimiter the API takes is one the reader
/// takes).
pub fn delimiter_accepted(delimiter: u8) -> bool {
    !matches!(
        RecordReader::new(&b"a\n"[..], Format::Csv { delimiter }, Limits::default()),
        Err(FormatError::InvalidDelimiter)
    )
}
