//! RFC 7519 4.1: the claim rules of a login-sync token at `T` with an
//! issuer's skew, and the signature, `iss` and `aud` check.
use crate::helpers::{ec_public, es256, map};
use muster_jose::login::{
    check_claims, unverified, validation, verify_signature, Accepted, Refusal,
};
use muster_jose::Algorithm;

const T: i64 = 1_700_000_000;
const SKEW: i64 = 60;

fn with(change: impl FnOnce(&mut serde_json::Value)) -> Result<Accepted, Refusal> {
    let mut v = serde_json::json!({"sub": "u1", "jti": "j1", "exp": T + 60, "iat": T});
    change(&mut v);
    check_claims(&map(v), T, SKEW)
}

#[test]
fn a_valid_token_gives_its_exp_sub_and_jti() {
    assert_eq!(
        with(|_| {}),
        Ok(Accepted {
            exp: T + 60,
            sub: "u1".into(),
            jti: "j1".into()
        })
    );
    // A number in floating point is read as seconds.
    assert_eq!(
        with(|v| v["exp"] = (T as f64 + 60.5).into()).unwrap().exp,
        T + 60
    );
}

#[test]
fn an_expired_token_is_refused_past_the_skew_and_not_before() {
    assert_eq!(
        with(|v| v["exp"] = (T - SKEW).into()),
        Err(Refusal::Expired)
    );
    assert!(with(|v| v["exp"] = (T - SKEW + 1).into()).is_ok());
}

#[test]
fn a_token_not_yet_valid_by_nbf_or_iat_is_refused_past_the_skew() {
    for claim in ["nbf", "iat"] {
        assert!(with(|v| v[claim] = (T + SKEW).into()).is_ok());
        assert_eq!(
            with(|v| v[claim] = (T + SKEW + 1).into()),
            Err(Refusal::NotYetValid),
            "{claim}"
        );
    }
}

#[test]
fn exp_sub_and_jti_are_required_and_times_must_be_numbers() {
    for claim in ["exp", "sub", "jti"] {
        assert_eq!(
            with(|v| {
                v.as_object_mut().unwrap().remove(claim);
            }),
            Err(Refusal::MissingClaim),
            "{claim}"
        );
    }
    assert_eq!(with(|v| v["nbf"] = "soon".into()), Err(Refusal::Malformed));
}

#[test]
fn sub_and_jti_are_1_to_256_bytes_and_sub_has_no_control_characters() {
    assert!(with(|v| v["jti"] = "j".repeat(256).into()).is_ok());
    assert_eq!(
        with(|v| v["jti"] = "j".repeat(257).into()),
        Err(Refusal::MissingClaim)
    );
    assert!(with(|v| v["sub"] = "s".repeat(256).into()).is_ok());
    for sub in ["", "a\nb", &"s".repeat(257)] {
        assert_eq!(
            with(|v| v["sub"] = sub.into()),
            Err(Refusal::MissingClaim),
            "{sub:?}"
        );
    }
}

#[test]
fn the_signature_iss_and_aud_are_checked_by_the_issuers_validation() {
    let good = serde_json::json!({"iss": "https://idp.example", "aud": "muster", "sub": "u1"});
    let t = es256(&good, Some("k1"));
    let u = unverified(&t).unwrap();
    assert_eq!((u.alg.as_str(), u.kid.as_deref()), ("ES256", Some("k1")));
    let v = validation(Algorithm::ES256, "https://idp.example", "muster");
    let keys = [ec_public()];
    assert_eq!(verify_signature(&t, &keys, &v).unwrap()["sub"], "u1");
    assert_eq!(
        verify_signature(&t, &[], &v).unwrap_err(),
        Refusal::BadSignature
    );

    let mut other = good.clone();
    other["aud"] = "someone-else".into();
    let t = es256(&other, None);
    assert_eq!(
        verify_signature(&t, &keys, &v).unwrap_err(),
        Refusal::WrongAudience
    );
    let mut other = good.clone();
    other["iss"] = "https://evil.example".into();
    let t = es256(&other, None);
    assert_eq!(
        verify_signature(&t, &keys, &v).unwrap_err(),
        Refusal::UnknownIssuer
    );
    let t = es256(&serde_json::json!({"aud": "muster"}), None);
    assert_eq!(
        verify_signature(&t, &keys, &v).unwrap_err(),
        Refusal::MissingClaim
    );
}
