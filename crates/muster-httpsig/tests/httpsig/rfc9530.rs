//! RFC 9530 Content-Digest, against the RFC's examples.

use crate::helpers::test_request;
use muster_httpsig::{content_digest, verify_content_digest, DigestAlgorithm, VerifyError};

/// RFC 9530 Appendix B.1: `{"hello": "world"}` followed by LF.
const HELLO_LF: &[u8] = b"{\"hello\": \"world\"}\n";
const HELLO_LF_SHA256: &str = "sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:";

/// RFC 9421 Appendix B.2 test-request: `{"hello": "world"}` without LF.
const HELLO_SHA512: &str =
    "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:";

#[test]
fn b_1_sha256_of_the_json_object_matches_the_rfc() {
    assert_eq!(
        content_digest(HELLO_LF, DigestAlgorithm::Sha256),
        HELLO_LF_SHA256
    );
    assert_eq!(verify_content_digest(HELLO_LF_SHA256, HELLO_LF), Ok(()));
}

#[test]
fn sha512_of_the_rfc_9421_test_request_matches() {
    let body = test_request().body.unwrap();
    assert_eq!(content_digest(&body, DigestAlgorithm::Sha512), HELLO_SHA512);
    assert_eq!(verify_content_digest(HELLO_SHA512, &body), Ok(()));
}

#[test]
fn empty_content_has_the_well_known_sha256() {
    assert_eq!(
        content_digest(b"", DigestAlgorithm::Sha256),
        "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"
    );
}

#[test]
fn every_supported_member_must_match_and_unknown_ones_are_ignored() {
    let both = format!("{HELLO_LF_SHA256}, md5=:AAAA:, sha-512=:AAAA:");
    assert_eq!(
        verify_content_digest(&both, HELLO_LF),
        Err(VerifyError::DigestMismatch)
    );
    let with_unknown = format!("unixsum=:AAAA:, {HELLO_LF_SHA256}");
    assert_eq!(verify_content_digest(&with_unknown, HELLO_LF), Ok(()));
}

#[test]
fn a_digest_of_other_content_is_a_mismatch() {
    assert_eq!(
        verify_content_digest(HELLO_LF_SHA256, b"{\"hello\": \"world\"}"),
        Err(VerifyError::DigestMismatch)
    );
}

#[test]
fn only_unsupported_algorithms_are_refused() {
    assert_eq!(
        verify_content_digest("md5=:HUXZLQLMuI/KZ5KDcJPcOA==:", HELLO_LF),
        Err(VerifyError::UnsupportedDigest)
    );
}

#[test]
fn a_digest_that_is_not_a_byte_sequence_is_malformed() {
    for bad in [
        "sha-256=\"RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=\"",
        "sha-256=:not base64:",
        "==",
    ] {
        assert!(
            matches!(
                verify_content_digest(bad, HELLO_LF),
                Err(VerifyError::Malformed(_))
            ),
            "{bad}"
        );
    }
}
