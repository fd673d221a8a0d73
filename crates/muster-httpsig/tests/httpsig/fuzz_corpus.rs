//! Replays the committed corpus of the `httpsig` fuzz target
//! (`fuzz/corpus/httpsig`) through the entry point it calls, so every
//! crash ever found stays fixed without libFuzzer. See `docs/fuzzing.md`.
use muster_httpsig::fuzz::signature_headers;
use std::path::PathBuf;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/httpsig")
}

#[test]
fn every_httpsig_corpus_entry_is_verified_without_a_panic() {
    let mut files: Vec<_> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for path in files {
        eprintln!("{}", path.display());
        signature_headers(&std::fs::read(&path).unwrap());
    }
}
