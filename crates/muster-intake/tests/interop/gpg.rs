//! GnuPG interop: what `gpg --encrypt` makes decrypts, what we make
//! `gpg --decrypt` reads, and each refusal on a file gpg made.
use crate::support::{csv, decrypt_all, decrypt_ok, have, Gpg, GpgKind};
use muster_intake::decrypt::{
    encrypt_writer, BombLimit, DecryptError, DecryptionKey, Limits, OpenPgpKeyKind,
    PublicRecipient, SignerKey,
};
use std::io::Write;

#[test]
fn files_gnupg_encrypts_to_rsa_and_curve25519_keys_decrypt_to_the_exact_plaintext() {
    if !have("gpg") {
        return;
    }
    let gpg = Gpg::new();
    let plain = csv(30_000);
    for (kind, email) in [
        (GpgKind::Rsa3072, "rsa@example.test"),
        (GpgKind::Curve25519, "cv@example.test"),
    ] {
        let fpr = gpg.gen_key(kind, email);
        let key = gpg.secret_key(&fpr);
        assert_eq!(key.key_id(), fpr);
        for compress in ["none", "zip", "zlib", "bzip2"] {
            for armor in [false, true] {
                let mut args = vec!["-r", &fpr, "--compress-algo", compress];
                if armor {
                    args.push("--armor");
                }
                let cipher = gpg.encrypt(&plain, &args);
                let out = decrypt_ok(&cipher, std::slice::from_ref(&key));
                assert!(out == plain, "{kind:?} {compress} armor={armor}");
            }
        }
    }
}

#[test]
fn a_file_for_several_recipients_decrypts_with_any_one_of_them() {
    if !have("gpg") {
        return;
    }
    let gpg = Gpg::new();
    let a = gpg.gen_key(GpgKind::Curve25519, "a@example.test");
    let b = gpg.gen_key(GpgKind::Rsa3072, "b@example.test");
    let plain = csv(2000);
    let cipher = gpg.encrypt(&plain, &["-r", &a, "-r", &b]);
    assert_eq!(decrypt_ok(&cipher, &[gpg.secret_key(&b)]), plain);
    assert_eq!(decrypt_ok(&cipher, &[gpg.secret_key(&a)]), plain);
}

#[test]
fn a_file_for_other_keys_is_refused_naming_the_keys_it_is_for() {
    if !have("gpg") {
        return;
    }
    let gpg = Gpg::new();
    let a = gpg.gen_key(GpgKind::Curve25519, "a@example.test");
    let b = gpg.gen_key(GpgKind::Curve25519, "b@example.test");
    let cipher = gpg.encrypt(&csv(10), &["-r", &a, "-r", &b]);
    let ours =
        DecryptionKey::generate_openpgp(OpenPgpKeyKind::Curve25519, "Us <u@example.test>").unwrap();
    let err = decrypt_all(
        &cipher,
        &[ours, DecryptionKey::generate_age()],
        &Limits::default(),
        None,
    )
    .unwrap_err();
    let DecryptError::NoMatchingKey { recipients } = &err else {
        panic!("{err}");
    };
    // The encryption subkeys' long key ids, as `gpg --list-keys` shows them.
    let mut want = gpg.key_lines("a@example.test", "sub");
    want.extend(gpg.key_lines("b@example.test", "sub"));
    let mut got = recipients.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want, "{err}");
    for id in &want {
        assert!(err.to_string().contains(id.as_str()), "{err}");
    }
}

#[test]
fn legacy_encryption_without_integrity_protection_is_refused() {
    if !have("gpg") {
        return;
    }
    let gpg = Gpg::new();
    let fpr = gpg.gen_key(GpgKind::Rsa3072, "old@example.test");
    // RFC 2440 mode with a 64-bit block cipher: a SED packet, no MDC.
    let cipher = gpg.encrypt(
        &csv(100),
        &["-r", &fpr, "--rfc2440", "--cipher-algo", "CAST5"],
    );
    let listed = gpg.run(&["--list-packets", gpg.path("cipher.gpg").to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("encrypted data packet"));
    let err = decrypt_all(&cipher, &[gpg.secret_key(&fpr)], &Limits::default(), None).unwrap_err();
    assert!(matches!(err, DecryptError::LegacyUnprotected), "{err}");
}

#[test]
fn truncated_or_altered_files_fail_their_integrity_check() {
    if !have("gpg") {
        return;
    }
    let gpg = Gpg::new();
    let fpr = gpg.gen_key(GpgKind::Curve25519, "t@example.test");
    let key = gpg.secret_key(&fpr);
    let plain = csv(30_000);
    for compress in ["none", "zlib"] {
        let cipher = gpg.encrypt(&plain, &["-r", &fpr, "--compress-algo", compress]);
        for cut in [cipher.len() - 1, cipher.len() - 22, cipher.len() / 2] {
            let err = decrypt_all(
                &cipher[..cut],
                std::slice::from_ref(&key),
                &Limits::default(),
                None,
            )
            .unwrap_err();
            assert!(
                matches!(err, DecryptError::Integrity(_)),
                "{compress} cut {cut}: {err}"
            );
        }
        for at in [cipher.len() / 2, cipher.len() - 3] {
            let mut t = cipher.clone();
            t[at] ^= 0x01;
            let err =
                decrypt_all(&t, std::slice::from_ref(&key), &Limits::default(), None).unwrap_err();
            assert!(
                matches!(err, DecryptError::Integrity(_)),
                "{compress} at {at}: {err}"
            );
        }
    }
}

#[test]
fn a_compressed_bomb_is_refused_while_streaming() {
    if !have("gpg") {
        return;
    }
    let gpg = Gpg::new();
    let fpr = gpg.gen_key(GpgKind::Curve25519, "bomb@example.test");
    let key = gpg.secret_key(&fpr);
    let zeros = vec![0u8; 64 * 1024 * 1024];
    for compress in ["zlib", "bzip2"] {
        let cipher = gpg.encrypt(
            &zeros,
            &["-r", &fpr, "--compress-algo", compress, "-z", "9"],
        );
        assert!(cipher.len() < 1024 * 1024, "{compress}: {}", cipher.len());
        // The ratio trips first with the defaults...
        let err = decrypt_all(
            &cipher,
            std::slice::from_ref(&key),
            &Limits::default(),
            None,
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                DecryptError::DecompressionBomb(BombLimit::Ratio { .. })
            ),
            "{compress}: {err}"
        );
        // ...and the size limit when the ratio is allowed.
        let limits = Limits {
            max_decompressed_bytes: 16 * 1024 * 1024,
            max_ratio: u64::MAX,
            ..Limits::default()
        };
        let err = decrypt_all(&cipher, std::slice::from_ref(&key), &limits, None).unwrap_err();
        assert!(
            matches!(err, DecryptError::DecompressionBomb(BombLimit::Size { .. })),
            "{compress}: {err}"
        );
    }
}

#[test]
fn a_required_signature_must_be_there_and_by_the_expected_key() {
    if !have("gpg") {
        return;
    }
    let gpg = Gpg::new();
    let tenant = gpg.gen_key(GpgKind::Rsa3072, "tenant@example.test");
    let client = gpg.gen_key(GpgKind::Curve25519, "client@example.test");
    let other = gpg.gen_key(GpgKind::Curve25519, "other@example.test");
    let key = gpg.secret_key(&tenant);
    let client_pub = SignerKey::from_armored(&gpg.public_key(&client)).unwrap();
    let other_pub = SignerKey::from_armored(&gpg.public_key(&other)).unwrap();
    let plain = csv(5000);
    let keys = std::slice::from_ref(&key);
    for compress in ["none", "zlib"] {
        let signed = gpg.encrypt(
            &plain,
            &[
                "-r",
                &tenant,
                "--sign",
                "-u",
                &client,
                "--compress-algo",
                compress,
            ],
        );
        let out = decrypt_all(&signed, keys, &Limits::default(), Some(&client_pub)).unwrap();
        assert!(out == plain);
        // Not asking for a signature reads a signed file all the same.
        assert!(decrypt_ok(&signed, keys) == plain);
        let err = decrypt_all(&signed, keys, &Limits::default(), Some(&other_pub)).unwrap_err();
        assert!(
            matches!(err, DecryptError::SignatureWrongKey { .. }),
            "{err}"
        );
        assert!(err.to_string().contains(&other_pub.key_id()), "{err}");
    }
    let unsigned = gpg.encrypt(&plain, &["-r", &tenant]);
    let err = decrypt_reader_err(&unsigned, keys, &client_pub);
    assert!(
        matches!(err, DecryptError::SignatureMissing { .. }),
        "{err}"
    );
}

/// A missing signature is known before any plaintext is handed out.
fn decrypt_reader_err(cipher: &[u8], keys: &[DecryptionKey], signer: &SignerKey) -> DecryptError {
    muster_intake::decrypt::decrypt_reader(cipher, keys, &Limits::default(), Some(signer))
        .map(|_| ())
        .unwrap_err()
}

#[test]
fn what_we_encrypt_gnupg_decrypts_and_the_reverse_with_our_keys() {
    if !have("gpg") {
        return;
    }
    let gpg = Gpg::new();
    let plain = csv(30_000);
    for kind in [OpenPgpKeyKind::Curve25519, OpenPgpKeyKind::Rsa4096] {
        let key = DecryptionKey::generate_openpgp(kind, "Muster <m@example.test>").unwrap();
        use age::secrecy::ExposeSecret;
        gpg.import(key.to_secret_text().unwrap().expose_secret());
        let public = PublicRecipient::parse(&key.public().to_text().unwrap()).unwrap();
        for armor in [false, true] {
            let mut w = encrypt_writer(Vec::new(), &public, armor).unwrap();
            for part in plain.chunks(10_000) {
                w.write_all(part).unwrap();
            }
            let cipher = w.finish().unwrap();
            let out = gpg.decrypt(&cipher);
            crate::support::assert_success(&out, "gpg --decrypt");
            assert!(out.stdout == plain, "{kind:?} armor={armor}");
        }
        // And gpg encrypting to our key decrypts here.
        let cipher = gpg.encrypt(&plain, &["-r", &key.key_id(), "--armor"]);
        assert!(
            decrypt_ok(&cipher, std::slice::from_ref(&key)) == plain,
            "{kind:?}"
        );
    }
}
