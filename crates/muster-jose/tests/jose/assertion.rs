//! RFC 7523 3: the claim rules of a client assertion, at `T` with the
//! crate's leeway, and its signature against the registered keys.
use crate::helpers::{ec_public, es256, EC_PUB};
use muster_jose::assertion::{
    check_claims, read_unverified, verify_signature, Accepted, AssertionError, Claims, Lifetimes,
    LEEWAY, MAX_JTI,
};
use muster_jose::jwk::assertion_keys;
use muster_jose::Algorithm;

const T: i64 = 1_700_000_000;
const CLIENT: &str = "c1";
const ISSUER: &str = "https://gw.example";
const MAX: i64 = 3600;
const AGE: i64 = 300;

fn claims(v: serde_json::Value) -> Claims {
    serde_json::from_value(v).unwrap()
}

/// A valid assertion's claims, with `change` applied.
fn with(change: impl FnOnce(&mut serde_json::Value)) -> Claims {
    let mut v = serde_json::json!({
        "iss": CLIENT, "sub": CLIENT, "aud": format!("{ISSUER}/oauth2/token"),
        "exp": T + 60, "iat": T, "jti": "j1"
    });
    change(&mut v);
    claims(v)
}

fn check(c: Claims) -> Result<Accepted, AssertionError> {
    check_claims(
        c,
        CLIENT,
        ISSUER,
        T,
        Lifetimes {
            max_lifetime: MAX,
            max_age: AGE,
        },
    )
}

#[test]
fn a_valid_assertion_gives_its_exp_and_jti_to_remember() {
    assert_eq!(
        check(with(|_| {})),
        Ok(Accepted {
            exp: T + 60,
            jti: "j1".into(),
            forget_at: T + 60 + LEEWAY,
        })
    );
}

#[test]
fn an_hour_long_assertion_is_remembered_only_for_its_age() {
    // What authlib and other libraries sign by default: iat now, exp in an hour.
    let a = check(with(|v| v["exp"] = (T + 3600).into())).unwrap();
    assert_eq!(a.forget_at, T + AGE + LEEWAY);
    // Issued within the age and the leeway: accepted; before: refused, so
    // forgetting its jti then lets no replay through.
    let issued = |iat: i64| {
        with(|v| {
            v["iat"] = iat.into();
            v["exp"] = (T + 3000).into();
        })
    };
    assert!(check(issued(T - AGE - LEEWAY)).is_ok());
    assert_eq!(
        check(issued(T - AGE - LEEWAY - 1)),
        Err(AssertionError::IssuedTooLongAgo)
    );
}

#[test]
fn an_assertion_without_iat_may_live_only_as_long_as_the_age() {
    let without = |exp: i64| {
        with(|v| {
            v.as_object_mut().unwrap().remove("iat");
            v["exp"] = exp.into();
        })
    };
    assert_eq!(
        check(without(T + AGE + LEEWAY)).unwrap().forget_at,
        T + AGE + 2 * LEEWAY
    );
    assert_eq!(
        check(without(T + AGE + LEEWAY + 1)),
        Err(AssertionError::IatRequired)
    );
}

#[test]
fn the_audience_may_be_the_token_endpoint_or_the_issuer_alone_or_in_a_list() {
    assert!(check(with(|v| v["aud"] = ISSUER.into())).is_ok());
    assert!(check(with(|v| v["aud"] = serde_json::json!(["x", ISSUER]))).is_ok());
    for aud in [
        serde_json::json!("https://other.example/oauth2/token"),
        serde_json::json!(["x", "y"]),
        serde_json::json!(format!("{ISSUER}/oauth2/revoke")),
    ] {
        assert_eq!(
            check(with(|v| v["aud"] = aud.clone())),
            Err(AssertionError::WrongAudience),
            "{aud}"
        );
    }
}

#[test]
fn iss_and_sub_must_both_be_the_client_id() {
    assert_eq!(
        check(with(|v| v["iss"] = "c2".into())),
        Err(AssertionError::WrongIssuer)
    );
    assert_eq!(
        check(with(|v| v["sub"] = "c2".into())),
        Err(AssertionError::WrongSubject)
    );
}

#[test]
fn exp_iss_sub_and_aud_are_required() {
    for claim in ["exp", "iss", "sub", "aud"] {
        assert_eq!(
            check(with(|v| {
                v.as_object_mut().unwrap().remove(claim);
            })),
            Err(AssertionError::MissingClaim),
            "{claim}"
        );
    }
}

#[test]
fn an_expired_assertion_is_refused_past_the_leeway_and_not_before() {
    assert_eq!(
        check(with(|v| v["exp"] = (T - LEEWAY).into())),
        Err(AssertionError::Expired)
    );
    assert!(check(with(|v| v["exp"] = (T - LEEWAY + 1).into())).is_ok());
}

#[test]
fn an_exp_further_ahead_than_the_longest_lifetime_and_the_leeway_is_refused() {
    assert!(check(with(|v| v["exp"] = (T + MAX + LEEWAY).into())).is_ok());
    assert_eq!(
        check(with(|v| v["exp"] = (T + MAX + LEEWAY + 1).into())),
        Err(AssertionError::TooLong)
    );
}

#[test]
fn an_assertion_not_yet_valid_by_nbf_or_iat_is_refused_past_the_leeway() {
    for claim in ["nbf", "iat"] {
        assert!(check(with(|v| v[claim] = (T + LEEWAY).into())).is_ok());
        assert_eq!(
            check(with(|v| v[claim] = (T + LEEWAY + 1).into())),
            Err(AssertionError::NotYetValid),
            "{claim}"
        );
    }
}

#[test]
fn a_jti_is_required_and_at_most_256_bytes() {
    assert_eq!(
        check(with(|v| {
            v.as_object_mut().unwrap().remove("jti");
        })),
        Err(AssertionError::JtiRequired)
    );
    assert_eq!(
        check(with(|v| v["jti"] = "".into())),
        Err(AssertionError::JtiRequired)
    );
    assert!(check(with(|v| v["jti"] = "j".repeat(MAX_JTI).into())).is_ok());
    assert_eq!(
        check(with(|v| v["jti"] = "j".repeat(MAX_JTI + 1).into())),
        Err(AssertionError::JtiRequired)
    );
}

#[test]
fn the_client_is_read_from_client_id_or_sub_and_the_two_must_agree() {
    let t = es256(&serde_json::json!({"sub": CLIENT}), None);
    assert_eq!(read_unverified(&t, None).unwrap().1, CLIENT);
    assert_eq!(read_unverified(&t, Some(CLIENT)).unwrap().1, CLIENT);
    assert_eq!(
        read_unverified(&t, Some("c2")).unwrap_err(),
        AssertionError::ClientIdMismatch
    );
    let t = es256(&serde_json::json!({}), None);
    assert_eq!(read_unverified(&t, Some("c2")).unwrap().1, "c2");
    assert_eq!(
        read_unverified(&t, None).unwrap_err(),
        AssertionError::SubRequired
    );
    assert_eq!(
        read_unverified("not a jwt", None).unwrap_err(),
        AssertionError::NotAJwt
    );
    // HS256 needs a shared secret, which a client never registers.
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &serde_json::json!({"sub": CLIENT}),
        &jsonwebtoken::EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
    )
    .unwrap();
    assert_eq!(
        read_unverified(&hs, None).unwrap_err(),
        AssertionError::AlgNotAccepted
    );
}

#[test]
fn the_signature_is_checked_with_the_registered_key_of_the_header_kid_and_alg() {
    let keys = assertion_keys(&serde_json::json!({ "pem": EC_PUB })).unwrap();
    let t = es256(
        &serde_json::json!({"sub": CLIENT, "jti": "j1", "exp": T}),
        None,
    );
    let (header, _) = read_unverified(&t, None).unwrap();
    let c = verify_signature(&t, &header, &keys).unwrap();
    assert_eq!(c.jti.as_deref(), Some("j1"));

    // The PEM key has no kid: a token naming one finds no key.
    let named = es256(&serde_json::json!({"sub": CLIENT}), Some("k9"));
    let (header, _) = read_unverified(&named, None).unwrap();
    assert_eq!(
        verify_signature(&named, &header, &keys).unwrap_err(),
        AssertionError::NoMatchingKey
    );

    // Another payload under the same signature.
    let parts: Vec<&str> = t.split('.').collect();
    let forged = format!("{}.eyJzdWIiOiJjMiJ9.{}", parts[0], parts[2]);
    let (header, _) = read_unverified(&forged, None).unwrap();
    assert_eq!(
        verify_signature(&forged, &header, &keys).unwrap_err(),
        AssertionError::BadSignature
    );
    assert!(muster_jose::jws::verify(&t, Algorithm::ES256, &ec_public()).is_ok());

    // Signed claims of the wrong type come from the key's holder.
    let t = es256(&serde_json::json!({"sub": CLIENT, "exp": "tomorrow"}), None);
    let (header, _) = read_unverified(&t, None).unwrap();
    assert_eq!(
        verify_signature(&t, &header, &keys).unwrap_err(),
        AssertionError::ClaimsMalformed
    );
}
