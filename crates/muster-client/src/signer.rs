//! Request signing (RFC 9421 HTTP Message Signatures, docs/authentication.md#signed-requests) and the
//! `private_key_jwt` client assertion (RFC 7523 2.2).
//!
//! A [`RequestSigner`] signs every API request it is given: `@method`,
//! `@target-uri` (the request URL exactly as sent, so the query string is
//! covered) and, when there is a body, `content-digest` (RFC 9530,
//! SHA-256), with `created`, a random `nonce` and `keyid` = the client id.
//! A streamed upload cannot be hashed as it goes (the header comes first),
//! so the SDK hashes the file before sending it and sets `Content-Digest`
//! itself.
//!
//! A [`JwtAssertionKey`] signs the short-lived (60 s), single-use client
//! assertion that replaces a client secret at the token endpoint.
use crate::ClientError;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use muster_httpsig::{content_digest, DigestAlgorithm, HmacKey, SigningKey, SigningParams};
use rand::RngCore;
use reqwest::header::HeaderValue;

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// RFC 7523 2.2.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Lifetime of a client assertion; the gateway accepts at most 300 s.
const ASSERTION_LIFETIME_SECS: i64 = 60;

fn invalid(msg: &str) -> ClientError {
    ClientError::InvalidInput(msg.to_owned())
}

/// Reads base64url or base64 (padding optional).
fn decode_b64(text: &str) -> Option<Vec<u8>> {
    let t = text.trim().trim_end_matches('=');
    B64URL
        .decode(t)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(t))
        .ok()
}

/// Signs API requests for one client. `Debug` shows no key material.
#[derive(Clone)]
pub struct RequestSigner {
    client_id: String,
    key: SigningKey,
}

impl std::fmt::Debug for RequestSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestSigner")
            .field("client_id", &self.client_id)
            .field("alg", &self.key.algorithm().name())
            .finish()
    }
}

impl RequestSigner {
    /// HMAC-SHA256 with the key the gateway issued (base64url text, as
    /// `POST /api/v1/clients/{id}/keys/hmac` showed it).
    pub fn hmac(client_id: &str, key_text: &str) -> Result<Self, ClientError> {
        let key = decode_b64(key_text)
            .filter(|k| k.len() >= 32)
            .ok_or_else(|| {
                invalid("the HMAC key must be the base64url text of 32 or more bytes")
            })?;
        Ok(Self {
            client_id: client_id.to_owned(),
            key: SigningKey::HmacSha256(HmacKey::new(key)),
        })
    }

    /// Ed25519 with a private key given as a PKCS#8 PEM (`openssl genpkey
    /// -algorithm ed25519`) or as the base64(url) 32-byte seed.
    pub fn ed25519(client_id: &str, key_text: &str) -> Result<Self, ClientError> {
        let seed = ed25519_seed(key_text).ok_or_else(|| {
            invalid("the Ed25519 key must be a PKCS#8 PEM private key or a base64 32-byte seed")
        })?;
        Ok(Self {
            client_id: client_id.to_owned(),
            key: SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&seed)),
        })
    }

    /// The client id (the signature's `keyid`).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The Ed25519 public key to register, base64url (None for HMAC).
    pub fn ed25519_public_key(&self) -> Option<String> {
        match &self.key {
            SigningKey::Ed25519(k) => Some(B64URL.encode(k.verifying_key().to_bytes())),
            SigningKey::HmacSha256(_) => None,
        }
    }

    /// Adds `Content-Digest` (for an in-memory body, when not set yet),
    /// `Signature-Input` and `Signature` to `req`, created at `now` (Unix
    /// seconds).
    pub fn sign(&self, req: &mut reqwest::Request, now: i64) -> Result<(), ClientError> {
        let digest_name = muster_httpsig::CONTENT_DIGEST;
        if !req.headers().contains_key(digest_name) {
            if let Some(bytes) = req.body().and_then(reqwest::Body::as_bytes) {
                if !bytes.is_empty() {
                    let d = content_digest(bytes, DigestAlgorithm::Sha256);
                    let v = HeaderValue::from_str(&d).map_err(|_| invalid("Content-Digest"))?;
                    req.headers_mut().insert(digest_name, v);
                }
            }
        }
        let mut components = vec!["@method".to_owned(), "@target-uri".to_owned()];
        if req.headers().contains_key(digest_name) {
            components.push(digest_name.to_owned());
        }
        let mut nonce = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let params = SigningParams {
            label: "sig1".into(),
            components,
            created: Some(now),
            nonce: Some(B64URL.encode(nonce)),
            keyid: Some(self.client_id.clone()),
            alg: Some(self.key.algorithm()),
            ..Default::default()
        };
        let method = req.method().as_str().to_owned();
        let url = req.url().as_str().to_owned();
        let lines: Vec<(String, String)> = req
            .headers()
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let mut msg = muster_httpsig::Request::new(&method, &url);
        for (n, v) in &lines {
            msg = msg.header(n, v);
        }
        let signed = muster_httpsig::sign(&msg, &params, &self.key)
            .map_err(|e| ClientError::InvalidInput(format!("cannot sign the request: {e}")))?;
        let h = req.headers_mut();
        h.insert(
            muster_httpsig::SIGNATURE_INPUT,
            HeaderValue::from_str(&signed.signature_input).map_err(|_| invalid("signature"))?,
        );
        let mut sig = HeaderValue::from_str(&signed.signature).map_err(|_| invalid("signature"))?;
        sig.set_sensitive(true);
        h.insert(muster_httpsig::SIGNATURE, sig);
        Ok(())
    }
}

/// An Ed25519 seed from PKCS#8 PEM (RFC 8410 7: a fixed 16-byte prefix,
/// then the 32-byte seed) or base64 text.
fn ed25519_seed(text: &str) -> Option<[u8; 32]> {
    const PKCS8_PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let text = text.trim();
    let bytes = if let Some(body) = text
        .strip_prefix("-----BEGIN PRIVATE KEY-----")
        .and_then(|t| t.strip_suffix("-----END PRIVATE KEY-----"))
    {
        let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let der = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        der.strip_prefix(&PKCS8_PREFIX[..])?.to_vec()
    } else {
        decode_b64(text)?
    };
    <[u8; 32]>::try_from(bytes.as_slice()).ok()
}

/// A private key for `private_key_jwt`. `Debug` shows no key material.
#[derive(Clone)]
pub struct JwtAssertionKey {
    alg: Algorithm,
    key: EncodingKey,
    /// The same key for `ring`, which signs several times faster than the
    /// pure-Rust code behind `key`; absent for a key `ring` does not read
    /// (a SEC1 `EC PRIVATE KEY`), which `key` then signs.
    fast: Option<std::sync::Arc<FastKey>>,
    kid: Option<String>,
}

enum FastKey {
    Es256(ring::signature::EcdsaKeyPair),
    Rs256(ring::signature::RsaKeyPair),
    EdDsa(ring::signature::Ed25519KeyPair),
}

impl FastKey {
    /// The key of a PEM private key for `alg`, when `ring` reads it.
    fn from_pem(pem: &str, alg: Algorithm) -> Option<Self> {
        use ring::signature::{
            EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
        };
        let text = pem.trim();
        let label = text
            .strip_prefix("-----BEGIN ")?
            .split_once("-----")?
            .0
            .to_owned();
        let body: String = text
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .flat_map(str::chars)
            .filter(|c| !c.is_whitespace())
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .ok()?;
        let rng = ring::rand::SystemRandom::new();
        match (label.as_str(), alg) {
            ("PRIVATE KEY", Algorithm::ES256) => {
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
                    .ok()
                    .map(Self::Es256)
            }
            ("PRIVATE KEY", Algorithm::RS256) => RsaKeyPair::from_pkcs8(&der).ok().map(Self::Rs256),
            ("RSA PRIVATE KEY", Algorithm::RS256) => {
                RsaKeyPair::from_der(&der).ok().map(Self::Rs256)
            }
            ("PRIVATE KEY", Algorithm::EdDSA) => Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
                .ok()
                .map(Self::EdDsa),
            _ => None,
        }
    }

    fn sign(&self, msg: &[u8]) -> Option<Vec<u8>> {
        let rng = ring::rand::SystemRandom::new();
        match self {
            Self::Es256(k) => k.sign(&rng, msg).ok().map(|s| s.as_ref().to_vec()),
            Self::Rs256(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(&ring::signature::RSA_PKCS1_SHA256, &rng, msg, &mut sig)
                    .ok()?;
                Some(sig)
            }
            Self::EdDsa(k) => Some(k.sign(msg).as_ref().to_vec()),
        }
    }
}

impl std::fmt::Debug for JwtAssertionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAssertionKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish()
    }
}

impl JwtAssertionKey {
    /// From a PEM private key: RSA (RS256), P-256 (ES256) or Ed25519
    /// (EdDSA), PKCS#1, SEC1 or PKCS#8. `kid` names the key in a JWKS.
    pub fn from_pem(pem: &str, kid: Option<String>) -> Result<Self, ClientError> {
        let b = pem.as_bytes();
        let (alg, key) = if let Ok(k) = EncodingKey::from_rsa_pem(b) {
            (Algorithm::RS256, k)
        } else if let Ok(k) = EncodingKey::from_ed_pem(b) {
            (Algorithm::EdDSA, k)
        } else if let Ok(k) = EncodingKey::from_ec_pem(b) {
            (Algorithm::ES256, k)
        } else {
            return Err(invalid(
                "the client key must be an RSA, P-256 or Ed25519 private key in PEM",
            ));
        };
        let fast = FastKey::from_pem(pem, alg).map(std::sync::Arc::new);
        Ok(Self {
            alg,
            key,
            fast,
            kid,
        })
    }

    /// The JWS algorithm of the key.
    pub fn algorithm_name(&self) -> &'static str {
        match self.alg {
            Algorithm::RS256 => "RS256",
            Algorithm::ES256 => "ES256",
            _ => "EdDSA",
        }
    }

    /// A fresh client assertion (RFC 7523 3): `iss` = `sub` = the client
    /// id, `aud` = the token endpoint, a random `jti`, `exp` 60 s after
    /// `now`.
    pub fn assertion(
        &self,
        client_id: &str,
        token_endpoint: &str,
        now: i64,
    ) -> Result<String, ClientError> {
        let mut header = Header::new(self.alg);
        header.kid = self.kid.clone();
        let claims = serde_json::json!({
            "iss": client_id,
            "sub": client_id,
            "aud": token_endpoint,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        let refused = || invalid("cannot sign the client assertion with this key");
        let Some(fast) = &self.fast else {
            return jsonwebtoken::encode(&header, &claims, &self.key).map_err(|_| refused());
        };
        // RFC 7515 7.1: BASE64URL(header) '.' BASE64URL(payload), signed.
        let header = serde_json::to_vec(&header).map_err(|_| refused())?;
        let claims = serde_json::to_vec(&claims).map_err(|_| refused())?;
        let mut jws = format!("{}.{}", B64URL.encode(header), B64URL.encode(claims));
        let sig = fast.sign(jws.as_bytes()).ok_or_else(refused)?;
        jws.push('.');
        jws.push_str(&B64URL.encode(sig));
        Ok(jws)
    }
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_request_verifies_with_the_server_side_crate() {
        let key = B64URL.encode([9u8; 32]);
        let signer = RequestSigner::hmac("hr-feed", &key).unwrap();
        let http = reqwest::Client::new();
        let mut req = http
            .put("http://gw.example:8080/api/v1/people/E1?x=1")
            .header("content-type", "application/json")
            .body(b"{\"a\":1}".to_vec())
            .build()
            .unwrap();
        signer.sign(&mut req, 1_700_000_000).unwrap();
        let lines: Vec<(String, String)> = req
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
            .collect();
        let mut msg = muster_httpsig::Request::new("PUT", req.url().as_str());
        for (n, v) in &lines {
            msg = msg.header(n, v);
        }
        let msg = msg.body(b"{\"a\":1}");
        let vk = muster_httpsig::VerifyingKey::HmacSha256(HmacKey::new(vec![9u8; 32]));
        let v = muster_httpsig::verify(
            &msg,
            None,
            &|_: &str| Some(vk.clone()),
            &muster_httpsig::VerifyPolicy::muster(1_700_000_010),
        )
        .unwrap();
        assert_eq!(v.keyid, "hr-feed");
        assert!(v.components.contains(&"content-digest".to_owned()));
        assert!(!format!("{signer:?}").contains(&key));
    }

    #[test]
    fn an_ed25519_key_is_read_from_a_seed_or_pkcs8_pem() {
        let seed = [4u8; 32];
        let mut der = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        der.extend_from_slice(&seed);
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(&der)
        );
        assert_eq!(ed25519_seed(&pem), Some(seed));
        assert_eq!(ed25519_seed(&B64URL.encode(seed)), Some(seed));
        assert!(RequestSigner::ed25519("c", "nope").is_err());
    }

    fn pem(label: &str, der: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }

    /// Assertions signed through `ring` verify with `jsonwebtoken`, the
    /// library the gateway parses keys with.
    #[test]
    fn ring_signed_assertions_verify_with_jsonwebtoken() {
        use jsonwebtoken::{decode, DecodingKey, Validation};
        use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair};
        let rng = ring::rand::SystemRandom::new();
        let alg = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let ec = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let ec_pub = EcdsaKeyPair::from_pkcs8(alg, ec.as_ref(), &rng)
            .unwrap()
            .public_key()
            .as_ref()
            .to_vec();
        let ed = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let ed_pub = Ed25519KeyPair::from_pkcs8(ed.as_ref())
            .unwrap()
            .public_key()
            .as_ref()
            .to_vec();
        for (der, public, a) in [
            (
                ec.as_ref(),
                DecodingKey::from_ec_der(&ec_pub),
                Algorithm::ES256,
            ),
            (
                ed.as_ref(),
                DecodingKey::from_ed_der(&ed_pub),
                Algorithm::EdDSA,
            ),
        ] {
            let key =
                JwtAssertionKey::from_pem(&pem("PRIVATE KEY", der), Some("k1".into())).unwrap();
            assert!(key.fast.is_some(), "{a:?}: ring reads a PKCS#8 key");
            let jwt = key
                .assertion("c1", "https://gw.example/oauth2/token", 1_000)
                .unwrap();
            let mut v = Validation::new(a);
            v.validate_exp = false;
            v.set_audience(&["https://gw.example/oauth2/token"]);
            let got = decode::<serde_json::Value>(&jwt, &public, &v).unwrap();
            assert_eq!(got.header.kid.as_deref(), Some("k1"));
            assert_eq!(got.claims["sub"], "c1");
            assert_eq!(got.claims["exp"], 1_000 + ASSERTION_LIFETIME_SECS);
        }
    }
}
