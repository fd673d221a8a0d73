//! Unit tests of detection, limits and round trips through our own writer;
//! interop with GnuPG and the age CLI is in `tests/`.
use super::*;

#[test]
fn detection_tells_formats_from_their_first_bytes() {
    assert_eq!(
        detect(b"age-encryption.org/v1\n-> X25519 abc"),
        Encryption::Age { armored: false }
    );
    assert_eq!(
        detect(b"\n-----BEGIN AGE ENCRYPTED FILE-----\nYWdl"),
        Encryption::Age { armored: true }
    );
    assert_eq!(
        detect(b"\xEF\xBB\xBF-----BEGIN PGP MESSAGE-----\n\nhQ"),
        Encryption::OpenPgp { armored: true }
    );
    // PKESK v3, new and legacy packet formats.
    assert_eq!(
        detect(&[0xC1, 0x5E, 0x03, 1, 2]),
        Encryption::OpenPgp { armored: false }
    );
    assert_eq!(
        detect(&[0x84, 0x5E, 0x03, 1, 2]),
        Encryption::OpenPgp { armored: false }
    );
    assert_eq!(
        detect(&[0x85, 0x01, 0x0C, 0x03]),
        Encryption::OpenPgp { armored: false }
    );
    // SEIPD v1 alone (symmetric), and SKESK v4.
    assert_eq!(
        detect(&[0xD2, 0x40, 0x01]),
        Encryption::OpenPgp { armored: false }
    );
    assert_eq!(
        detect(&[0x8C, 0x0D, 0x04]),
        Encryption::OpenPgp { armored: false }
    );
    // Plaintext, including UTF-8 that starts with a byte above 0x80.
    assert_eq!(detect(b"Employee ID,Name\n"), Encryption::None);
    assert_eq!(detect("Émile,Zola\n".as_bytes()), Encryption::None);
    assert_eq!(detect(b"\xEF\xBB\xBFid,name\n"), Encryption::None);
    assert_eq!(detect(b"{\"id\":1}\n"), Encryption::None);
    assert_eq!(detect(b""), Encryption::None);
    // A signed but not encrypted message (one-pass signature, tag 4).
    assert_eq!(detect(&[0x90, 0x0D, 0x03]), Encryption::None);
}

fn csv(rows: usize) -> Vec<u8> {
    let mut out = b"Employee ID,First Name,Last Name,Email\n".to_vec();
    for i in 0..rows {
        out.extend_from_slice(format!("E{i:06},Ada,Lovelace,ada{i}@example.test\n").as_bytes());
    }
    out
}

fn encrypt(plain: &[u8], to: &PublicRecipient, armor: bool) -> Vec<u8> {
    let mut w = encrypt_writer(Vec::new(), to, armor).unwrap();
    // Uneven writes exercise the buffering.
    for part in plain.chunks(7919) {
        w.write_all(part).unwrap();
    }
    w.finish().unwrap()
}

fn decrypt(
    cipher: &[u8],
    keys: &[DecryptionKey],
    limits: &Limits,
) -> Result<Vec<u8>, DecryptError> {
    let mut r = decrypt_reader(cipher, keys, limits, None)?;
    let mut out = Vec::new();
    match r.read_to_end(&mut out) {
        Ok(_) => Ok(out),
        Err(e) => match DecryptError::from_io(&e) {
            Some(_) => Err(e
                .into_inner()
                .unwrap()
                .downcast::<DecryptError>()
                .map(|b| *b)
                .unwrap()),
            None => Err(DecryptError::Io(e)),
        },
    }
}

#[test]
fn our_age_and_openpgp_output_round_trips_armored_or_not() {
    let plain = csv(20_000);
    let keys = [
        DecryptionKey::generate_age(),
        DecryptionKey::generate_openpgp(OpenPgpKeyKind::Curve25519, "T <t@example.test>").unwrap(),
    ];
    for key in &keys {
        for armor in [false, true] {
            let cipher = encrypt(&plain, &key.public(), armor);
            assert!(!cipher.windows(7).any(|w| w == b"E000001"));
            let want = match key {
                DecryptionKey::Age(_) => Encryption::Age { armored: armor },
                DecryptionKey::OpenPgp(_) => Encryption::OpenPgp { armored: armor },
            };
            assert_eq!(detect(&cipher[..DETECT_BYTES]), want);
            let out = decrypt(&cipher, &keys, &Limits::default()).unwrap();
            assert!(out == plain, "{key:?} armor={armor}");
        }
    }
    // Empty bodies too.
    for key in &keys {
        let cipher = encrypt(b"", &key.public(), false);
        assert_eq!(decrypt(&cipher, &keys, &Limits::default()).unwrap(), b"");
    }
}

#[test]
fn keys_survive_export_and_parse_with_the_same_id() {
    let age = DecryptionKey::generate_age();
    let pgp =
        DecryptionKey::generate_openpgp(OpenPgpKeyKind::Curve25519, "T <t@example.test>").unwrap();
    for key in [age, pgp] {
        use age::secrecy::ExposeSecret;
        let text = key.to_secret_text().unwrap();
        let back = DecryptionKey::parse(text.expose_secret()).unwrap();
        assert_eq!(back.key_id(), key.key_id());
        let public = PublicRecipient::parse(&key.public().to_text().unwrap()).unwrap();
        assert_eq!(public.key_id(), key.key_id());
        // Debug shows the id, never the secret.
        let dbg = format!("{key:?}");
        assert!(dbg.contains(&key.key_id()));
        assert!(!dbg.contains("AGE-SECRET-KEY") && !dbg.contains("PRIVATE KEY"));
    }
}

#[test]
fn a_message_for_another_key_is_refused_before_any_plaintext() {
    let plain = csv(100);
    let ours = [
        DecryptionKey::generate_age(),
        DecryptionKey::generate_openpgp(OpenPgpKeyKind::Curve25519, "Us <us@example.test>")
            .unwrap(),
    ];
    let theirs =
        DecryptionKey::generate_openpgp(OpenPgpKeyKind::Curve25519, "T <t@example.test>").unwrap();
    let cipher = encrypt(&plain, &theirs.public(), false);
    let err = decrypt_reader(&cipher[..], &ours, &Limits::default(), None).unwrap_err();
    let DecryptError::NoMatchingKey { recipients } = &err else {
        panic!("{err}");
    };
    assert_eq!(recipients.len(), 1);
    assert!(theirs.matches(&recipients[0]), "{err}");
    assert!(err.to_string().contains(&recipients[0]));
    let cipher = encrypt(&plain, &DecryptionKey::generate_age().public(), true);
    assert!(matches!(
        decrypt_reader(&cipher[..], &ours, &Limits::default(), None),
        Err(DecryptError::NoMatchingKey { .. })
    ));
}

#[test]
fn truncation_and_tampering_fail_at_the_latest_at_the_end() {
    let plain = csv(20_000);
    let keys = [
        DecryptionKey::generate_age(),
        DecryptionKey::generate_openpgp(OpenPgpKeyKind::Curve25519, "T <t@example.test>").unwrap(),
    ];
    for key in &keys {
        let cipher = encrypt(&plain, &key.public(), false);
        for cut in [cipher.len() - 1, cipher.len() - 30, cipher.len() / 2] {
            let err = decrypt(&cipher[..cut], &keys, &Limits::default()).unwrap_err();
            assert!(
                matches!(err, DecryptError::Integrity(_)),
                "{key:?} cut {cut}: {err}"
            );
        }
        for at in [cipher.len() / 2, cipher.len() - 5] {
            let mut t = cipher.clone();
            t[at] ^= 0x40;
            let err = decrypt(&t, &keys, &Limits::default()).unwrap_err();
            assert!(
                matches!(err, DecryptError::Integrity(_)),
                "{key:?} at {at}: {err}"
            );
        }
    }
}

#[test]
fn output_past_the_size_limit_is_refused_while_streaming() {
    let plain = csv(20_000);
    let key = DecryptionKey::generate_age();
    let cipher = encrypt(&plain, &key.public(), false);
    let limits = Limits {
        max_decompressed_bytes: 100_000,
        ..Limits::default()
    };
    let err = decrypt(&cipher, std::slice::from_ref(&key), &limits).unwrap_err();
    assert!(
        matches!(
            err,
            DecryptError::DecompressionBomb(BombLimit::Size { limit: 100_000 })
        ),
        "{err}"
    );
}

#[test]
fn age_uploads_cannot_satisfy_a_required_signature() {
    let key = DecryptionKey::generate_age();
    let signer_key =
        DecryptionKey::generate_openpgp(OpenPgpKeyKind::Curve25519, "S <s@example.test>").unwrap();
    let PublicRecipient::OpenPgp(public) = signer_key.public() else {
        panic!()
    };
    let signer = SignerKey(public);
    let cipher = encrypt(b"a,b\n", &key.public(), false);
    let err = decrypt_reader(&cipher[..], &[key], &Limits::default(), Some(&signer)).unwrap_err();
    assert!(
        matches!(err, DecryptError::SignatureMissing { .. }),
        "{err}"
    );
}

#[test]
fn plaintext_is_not_taken_for_ciphertext() {
    let err = decrypt_reader(&b"id,name\n1,Ada\n"[..], &[], &Limits::default(), None).unwrap_err();
    assert!(matches!(err, DecryptError::NotEncrypted), "{err}");
}

#[test]
fn rsa_keys_generate_and_round_trip() {
    let key =
        DecryptionKey::generate_openpgp(OpenPgpKeyKind::Rsa3072, "R <r@example.test>").unwrap();
    let plain = csv(500);
    let cipher = encrypt(&plain, &key.public(), true);
    assert_eq!(decrypt(&cipher, &[key], &Limits::default()).unwrap(), plain);
}

/// Counts what the decryptor took from the upload.
struct Counted<'a> {
    data: &'a [u8],
    taken: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.data.read(buf)?;
        self.taken
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

#[test]
fn plaintext_flows_before_the_whole_upload_was_read() {
    // Memory stays bounded only if decryption streams: the first plaintext
    // must come out long before the end of a large upload was read (rPGP's
    // default SEIPDv1 mode would read it all to check the MDC first).
    let plain = csv(200_000);
    let keys = [
        DecryptionKey::generate_age(),
        DecryptionKey::generate_openpgp(OpenPgpKeyKind::Curve25519, "T <t@example.test>").unwrap(),
    ];
    for key in &keys {
        let cipher = encrypt(&plain, &key.public(), false);
        let taken = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let input = Counted {
            data: &cipher,
            taken: taken.clone(),
        };
        let mut r = decrypt_reader(input, &keys, &Limits::default(), None).unwrap();
        let mut first = vec![0u8; 64 * 1024];
        r.read_exact(&mut first).unwrap();
        assert_eq!(first, plain[..first.len()]);
        let so_far = taken.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            so_far < cipher.len() / 4,
            "{key:?}: {so_far} of {} bytes read for the first 64 KiB",
            cipher.len()
        );
    }
}
