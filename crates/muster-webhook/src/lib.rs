//! What a webhook delivery computes without I/O: the signature of the
//! Standard Webhooks specification ([`sign`], [`signature_header`] and the
//! `whsec_` secrets) and the data minimisation of a change event
//! ([`minimise`]: only the attributes a subscription may see). The
//! delivery loop, its leases and HTTP are the server's.
#![forbid(unsafe_code)]

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Secret prefix of the Standard Webhooks specification.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new secret: `whsec_` + base64 of 32 random bytes.
pub fn new_secret() -> String {
    let mut k = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut k);
    format!("{SECRET_PREFIX}{}", B64.encode(k))
}

/// The key bytes of a `whsec_` secret.
pub fn secret_bytes(secret: &str) -> Option<Vec<u8>> {
    B64.decode(secret.strip_prefix(SECRET_PREFIX)?).ok()
}

/// One signature: `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")).
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length; this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` value: one signature per key, separated by
/// spaces, so that a receiver holding either secret during a rotation
/// overlap verifies the message. `None` without a key.
pub fn signature_header<K: AsRef<[u8]>>(
    keys: &[K],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Option<String> {
    if keys.is_empty() {
        return None;
    }
    Some(
        keys.iter()
            .map(|k| sign(k.as_ref(), id, timestamp, body))
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// One attribute's new value, as an event carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub attribute: String,
    pub value: serde_json::Value,
}

/// The changes an event of `kind` with the audit `detail` (JSON with a
/// `changes` array of `{attribute, after}`) may carry. Roles travel in
/// `roles.changed` only, the other attributes in the other kinds. With
/// `allowed` (a subscription's attribute list, `*` for all), only those
/// attributes are kept, and an event none of whose changes is allowed
/// gives `None`: it is not sent at all. A `detail` that is not JSON gives
/// `None` too.
pub fn minimise(kind: &str, detail: &str, allowed: Option<&[String]>) -> Option<Vec<Change>> {
    let detail: serde_json::Value = serde_json::from_str(detail).ok()?;
    let roles_event = kind == "roles.changed";
    let all = allowed.is_none_or(|a| a.iter().any(|x| x == "*"));
    let changes: Vec<Change> = detail["changes"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter_map(|c| {
                    let name = c["attribute"].as_str()?;
                    if (name == muster_core::schema::ROLES) != roles_event {
                        return None;
                    }
                    if !all && !allowed.is_some_and(|a| a.iter().any(|x| x == name)) {
                        return None;
                    }
                    Some(Change {
                        attribute: name.to_owned(),
                        value: c["after"].clone(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    if allowed.is_some() && changes.is_empty() {
        return None;
    }
    Some(changes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn signatures_reproduce_the_standard_webhooks_test_vector() {
        // The vector the Standard Webhooks reference libraries test against
        // (e.g. the Svix/Standard Webhooks PHP library's testSignFunctionWorks):
        // a receiver's stock library verifies what we send.
        let key = secret_bytes("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            sign(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    /// HMAC-SHA256 over `{id}.{timestamp}.{body}` computed by hand from the
    /// definitions (RFC 2104 with SHA-256, FIPS 180-4), not through `hmac`:
    /// the signed content is the three parts joined by dots and nothing
    /// else.
    fn hmac_sha256_by_hand(key: &[u8], msg: &[u8]) -> [u8; 32] {
        use sha2::Digest;
        let mut k = [0u8; 64];
        if key.len() > 64 {
            k[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            k[..key.len()].copy_from_slice(key);
        }
        let inner: Vec<u8> = k
            .iter()
            .map(|b| b ^ 0x36)
            .chain(msg.iter().copied())
            .collect();
        let inner = Sha256::digest(inner);
        let outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).chain(inner).collect();
        Sha256::digest(outer).into()
    }

    #[test]
    fn a_signature_is_v1_and_the_base64_hmac_of_id_timestamp_and_body() {
        let key = b"a key of a receiver";
        let expected = format!(
            "v1,{}",
            B64.encode(hmac_sha256_by_hand(key, b"evt_1.1700000000.{\"a\":1}"))
        );
        assert_eq!(sign(key, "evt_1", 1_700_000_000, b"{\"a\":1}"), expected);
        // Each part counts: another timestamp or body is another signature.
        assert_ne!(sign(key, "evt_1", 1_700_000_001, b"{\"a\":1}"), expected);
        assert_ne!(sign(key, "evt_1", 1_700_000_000, b"{\"a\":2}"), expected);
    }

    #[test]
    fn during_an_overlap_the_header_carries_one_signature_per_secret() {
        let (a, b) = (new_secret(), new_secret());
        let keys = [secret_bytes(&a).unwrap(), secret_bytes(&b).unwrap()];
        let h = signature_header(&keys, "evt_1", 7, b"{}").unwrap();
        let parts: Vec<&str> = h.split(' ').collect();
        assert_eq!(
            parts,
            [
                sign(&keys[0], "evt_1", 7, b"{}"),
                sign(&keys[1], "evt_1", 7, b"{}")
            ]
        );
        assert_eq!(
            signature_header(&keys[..1], "evt_1", 7, b"{}").unwrap(),
            parts[0]
        );
        assert_eq!(signature_header::<Vec<u8>>(&[], "evt_1", 7, b"{}"), None);
    }

    #[test]
    fn new_secrets_have_32_random_bytes() {
        let a = new_secret();
        assert!(a.starts_with(SECRET_PREFIX));
        assert_eq!(secret_bytes(&a).unwrap().len(), 32);
        assert_ne!(a, new_secret());
        assert_eq!(secret_bytes("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), None);
        assert_eq!(secret_bytes("whsec_not base64!"), None);
    }

    const DETAIL: &str = r#"{"changes":[
        {"attribute":"given_name","before":"A","after":"B"},
        {"attribute":"email","before":null,"after":"b@example.com"},
        {"attribute":"roles","before":["x"],"after":["x","y"]}]}"#;

    fn names(c: &[Change]) -> Vec<&str> {
        c.iter().map(|c| c.attribute.as_str()).collect()
    }

    #[test]
    fn a_subscription_sees_only_its_attributes_and_roles_only_in_roles_changed() {
        let all = minimise("person.updated", DETAIL, None).unwrap();
        assert_eq!(names(&all), ["given_name", "email"]);
        assert_eq!(all[0].value, serde_json::json!("B"));
        let star = ["*".to_owned()];
        assert_eq!(
            minimise("person.updated", DETAIL, Some(&star)).unwrap(),
            all
        );
        let some = ["email".to_owned(), "roles".to_owned()];
        assert_eq!(
            names(&minimise("person.updated", DETAIL, Some(&some)).unwrap()),
            ["email"]
        );
        assert_eq!(
            names(&minimise("roles.changed", DETAIL, Some(&some)).unwrap()),
            ["roles"]
        );
    }

    #[test]
    fn an_event_none_of_whose_changes_is_allowed_is_not_sent() {
        let other = ["department".to_owned()];
        assert_eq!(minimise("person.updated", DETAIL, Some(&other)), None);
        assert_eq!(minimise("person.updated", DETAIL, Some(&[])), None);
        // Without a subscription's list (the feed), it is still listed.
        assert_eq!(
            minimise("person.deactivated", r#"{"changes":[]}"#, None),
            Some(vec![])
        );
        assert_eq!(minimise("person.updated", "not json", None), None);
    }
}
