//! Replays the committed corpus of the `jwt` fuzz target
//! (`fuzz/corpus/jwt`) through the entry point it calls, so every crash
//! ever found stays fixed without libFuzzer. See `docs/fuzzing.md`.
use std::path::PathBuf;

#[test]
fn the_seed_keys_parse() {
    assert_eq!(muster_jose::fuzz::keys().len(), 3);
}

#[test]
fn every_jwt_corpus_entry_is_parsed_without_a_panic() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/jwt");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    for path in files {
        eprintln!("{}", path.display());
        muster_jose::fuzz::jwt(&std::fs::read(&path).unwrap());
    }
}
