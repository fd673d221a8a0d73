//! age CLI interop: what `age` encrypts decrypts, what we encrypt
//! `age --decrypt` reads, and the refusals on files it made.
use crate::support::{csv, decrypt_all, decrypt_ok, have, path_str};
use muster_intake::decrypt::{encrypt_writer, DecryptError, DecryptionKey, Limits};
use std::io::Write;
use std::process::Command;

struct AgeKey {
    file: std::path::PathBuf,
    key: DecryptionKey,
}

fn keygen(dir: &std::path::Path, name: &str) -> AgeKey {
    let file = dir.join(name);
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(&file)
        .output()
        .unwrap();
    crate::support::assert_success(&out, "age-keygen");
    let key = DecryptionKey::parse(&std::fs::read_to_string(&file).unwrap()).unwrap();
    AgeKey { file, key }
}

fn age_encrypt(dir: &std::path::Path, plain: &[u8], args: &[&str]) -> Vec<u8> {
    let input = dir.join("plain.csv");
    let output = dir.join("cipher.age");
    std::fs::write(&input, plain).unwrap();
    let out = Command::new("age")
        .args(args)
        .arg("-o")
        .arg(&output)
        .arg(&input)
        .output()
        .unwrap();
    crate::support::assert_success(&out, "age --encrypt");
    std::fs::read(&output).unwrap()
}

#[test]
fn files_the_age_cli_encrypts_decrypt_to_the_exact_plaintext() {
    if !(have("age") && have("age-keygen")) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let a = keygen(dir.path(), "a.txt");
    let b = keygen(dir.path(), "b.txt");
    let plain = csv(30_000);
    for armor in [false, true] {
        let mut args = vec!["-r".to_owned(), a.key.key_id()];
        if armor {
            args.push("--armor".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let cipher = age_encrypt(dir.path(), &plain, &args);
        assert!(
            decrypt_ok(&cipher, &[b.key.clone(), a.key.clone()]) == plain,
            "armor={armor}"
        );
    }
    // Several recipients: either identity opens it.
    let (ra, rb) = (a.key.key_id(), b.key.key_id());
    let cipher = age_encrypt(dir.path(), &plain, &["-r", &ra, "-r", &rb]);
    assert!(decrypt_ok(&cipher, std::slice::from_ref(&b.key)) == plain);
}

#[test]
fn what_we_encrypt_the_age_cli_decrypts() {
    if !(have("age") && have("age-keygen")) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let a = keygen(dir.path(), "a.txt");
    let plain = csv(30_000);
    for armor in [false, true] {
        let mut w = encrypt_writer(Vec::new(), &a.key.public(), armor).unwrap();
        for part in plain.chunks(10_000) {
            w.write_all(part).unwrap();
        }
        let cipher = w.finish().unwrap();
        let file = dir.path().join("ours.age");
        std::fs::write(&file, &cipher).unwrap();
        let out = Command::new("age")
            .args(["--decrypt", "-i", path_str(&a.file), path_str(&file)])
            .output()
            .unwrap();
        crate::support::assert_success(&out, "age --decrypt");
        assert!(out.stdout == plain, "armor={armor}");
    }
}

#[test]
fn age_files_for_another_identity_truncated_or_altered_are_refused() {
    if !(have("age") && have("age-keygen")) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let a = keygen(dir.path(), "a.txt");
    let other = keygen(dir.path(), "other.txt");
    let plain = csv(30_000);
    let ra = a.key.key_id();
    let cipher = age_encrypt(dir.path(), &plain, &["-r", &ra]);
    let keys = std::slice::from_ref(&a.key);

    let err = decrypt_all(&cipher, &[other.key], &Limits::default(), None).unwrap_err();
    assert!(matches!(err, DecryptError::NoMatchingKey { .. }), "{err}");

    for cut in [cipher.len() - 1, cipher.len() - 17, cipher.len() / 2] {
        let err = decrypt_all(&cipher[..cut], keys, &Limits::default(), None).unwrap_err();
        assert!(
            matches!(err, DecryptError::Integrity(_)),
            "cut {cut}: {err}"
        );
    }
    for at in [cipher.len() / 2, cipher.len() - 1] {
        let mut t = cipher.clone();
        t[at] ^= 0x01;
        let err = decrypt_all(&t, keys, &Limits::default(), None).unwrap_err();
        assert!(matches!(err, DecryptError::Integrity(_)), "at {at}: {err}");
    }
}
