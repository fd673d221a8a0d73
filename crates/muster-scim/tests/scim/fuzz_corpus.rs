//! Replays the committed corpora of the `scim_filter` and `scim_patch`
//! fuzz targets (`fuzz/corpus/`) through the entry points they call, so
//! every crash ever found stays fixed without libFuzzer. See
//! `docs/fuzzing.md`.
use std::path::PathBuf;

fn corpus(name: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(name);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files
}

#[test]
fn every_scim_filter_corpus_entry_runs_without_a_panic() {
    for path in corpus("scim_filter") {
        eprintln!("{}", path.display());
        muster_scim::fuzz::filter(&std::fs::read(&path).unwrap());
    }
}

#[test]
fn every_scim_patch_corpus_entry_runs_without_a_panic() {
    for path in corpus("scim_patch") {
        eprintln!("{}", path.display());
        muster_scim::fuzz::patch(&std::fs::read(&path).unwrap());
    }
}

/// The seeds written by hand, not those libFuzzer found (SHA-1 names).
fn is_named(name: &str) -> bool {
    !(name.len() == 40 && name.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[test]
fn the_named_seeds_parse_or_fail_as_their_names_say() {
    for path in corpus("scim_filter") {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if !is_named(&name) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let parsed = muster_scim::Filter::parse(&text);
        if name.starts_with("rfc-") || name.starts_with("entra-") || name.starts_with("okta-") {
            assert!(parsed.is_ok(), "{name}: {:?}", parsed.err());
        }
        if name.starts_with("bad-") || name.starts_with("too-") {
            assert!(parsed.is_err(), "{name}");
        }
    }
    for path in corpus("scim_patch") {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if name.starts_with("rfc-") || name.starts_with("entra-") || name.starts_with("okta-") {
            let req =
                muster_scim::PatchRequest::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let group = name.contains("member") || name.contains("group");
            let (res, schemas) = if group {
                (
                    muster_scim::fuzz::fixed_group(),
                    muster_scim::ResourceSchemas::group(),
                )
            } else {
                (
                    muster_scim::fuzz::fixed_user(),
                    muster_scim::fuzz::user_schemas(),
                )
            };
            let out = muster_scim::apply(&res, &req.operations, &schemas);
            // The fixed User already has what the RFC's first add adds.
            let unchanged = name == "rfc-3.5.2.1-add-no-path.json";
            assert!(
                out.as_ref().is_ok_and(|o| o.changed != unchanged),
                "{name}: {out:?}"
            );
        }
    }
}
