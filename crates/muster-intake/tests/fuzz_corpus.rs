//! Replays the committed fuzz corpora of this crate's targets
//! (`fuzz/corpus/csv_mapping`, `fuzz/corpus/decrypt`) through the same entry
//! points the fuzz targets call, so every crash ever found stays fixed
//! without libFuzzer. See `docs/fuzzing.md`.
// Fixture helpers outside #[test] functions panic on broken fixtures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use muster_core::mapping::{MappingDoc, MappingFormat};
use muster_intake::decrypt::{decrypt_reader, DecryptionKey, Limits, SignerKey};
use muster_intake::fuzz::{self, DecryptKeys};
use std::io::Read;
use std::path::PathBuf;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Every file of `fuzz/corpus/<target>`, sorted by name.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = fuzz_dir().join("corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

fn key_text(name: &str) -> String {
    std::fs::read_to_string(fuzz_dir().join("keys").join(name)).unwrap()
}

fn keys() -> DecryptKeys {
    DecryptKeys {
        keys: vec![
            DecryptionKey::parse(&key_text("openpgp-secret.asc")).unwrap(),
            DecryptionKey::parse(&key_text("age-identity.txt")).unwrap(),
        ],
        signer: Some(SignerKey::from_armored(&key_text("openpgp-public.asc")).unwrap()),
    }
}

fn example_mapping() -> MappingDoc {
    let text = std::fs::read_to_string(fuzz_dir().join("../examples/hr/mapping.toml")).unwrap();
    MappingDoc::parse(&text, MappingFormat::Toml).unwrap()
}

#[test]
fn every_csv_mapping_corpus_entry_is_read_without_a_panic() {
    let doc = example_mapping();
    for (name, data) in corpus("csv_mapping") {
        eprintln!("csv_mapping/{name}");
        fuzz::csv_mapping(&data, &doc);
    }
}

#[test]
fn every_decrypt_corpus_entry_is_read_without_a_panic() {
    let keys = keys();
    for (name, data) in corpus("decrypt") {
        eprintln!("decrypt/{name}");
        fuzz::decrypt(&data, &keys);
    }
}

/// The seeds reach past the framing: a GnuPG message and an age file made
/// for the test keys decrypt to the CSV they hold.
#[test]
fn the_decrypt_seeds_made_for_the_test_keys_decrypt() {
    let keys = keys();
    for seed in ["seed-gpg-binary.gpg", "seed-age-binary.age"] {
        let data = std::fs::read(fuzz_dir().join("corpus/decrypt").join(seed)).unwrap();
        let mut out = Vec::new();
        decrypt_reader(&data[..], &keys.keys, &Limits::default(), None)
            .unwrap_or_else(|e| panic!("{seed}: {e}"))
            .read_to_end(&mut out)
            .unwrap_or_else(|e| panic!("{seed}: {e}"));
        assert!(out.starts_with(b"Employee ID,"), "{seed}");
    }
}
