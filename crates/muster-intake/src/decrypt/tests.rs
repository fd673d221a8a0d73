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
