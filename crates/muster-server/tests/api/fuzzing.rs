//! Replays the committed corpus of the `upload_params` fuzz target
//! (`fuzz/corpus/`) through the entry point it calls, so every crash ever
//! found stays fixed without libFuzzer. No server is needed: these are the
//! pure parsing functions of the upload request. The `jwt` corpus is
//! replayed by `muster-jose`'s tests. See `docs/fuzzing.md`.
use std::path::PathBuf;

/// Every file of `fuzz/corpus/<target>`, sorted by name.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files
        .into_iter()
        .map(|p| {
            let data = std::fs::read(&p).unwrap();
            (p, data)
        })
        .collect()
}

#[test]
fn every_upload_params_corpus_entry_is_parsed_without_a_panic() {
    for (path, data) in corpus("upload_params") {
        eprintln!("{}", path.display());
        muster_server::fuzz::upload_params(&data);
    }
}
