//! Fixtures: the RFC 9421 Appendix B keys and test-request, and an owned
//! message type the tests can mutate before borrowing it as a `Request`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use muster_httpsig::{HmacKey, Request, SigningKey, VerifyingKey};

/// RFC 9421 Appendix B.1.5, `test-shared-secret`.
pub const SHARED_SECRET_B64: &str =
    "uzvJfB4u3N0Jy4T7NZ75MDVcr8zSTInedJtkgcu46YW4XByzNJjxBdtjUkdJPBtbmHhIDi6pcl8jsasjlTMtDQ==";
/// RFC 9421 Appendix B.1.4, `test-key-ed25519`, PKCS#8 private key (PEM body).
pub const ED25519_PRIVATE_PKCS8_B64: &str =
    "MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF";
/// RFC 9421 Appendix B.1.4, `test-key-ed25519`, SubjectPublicKeyInfo (PEM body).
pub const ED25519_PUBLIC_SPKI_B64: &str =
    "MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=";

pub fn shared_secret() -> SigningKey {
    SigningKey::HmacSha256(HmacKey::new(STANDARD.decode(SHARED_SECRET_B64).unwrap()))
}

/// The raw 32-byte key is the tail of both DER encodings (RFC 8410).
fn last_32(b64: &str) -> [u8; 32] {
    let der = STANDARD.decode(b64).unwrap();
    der[der.len() - 32..].try_into().unwrap()
}

pub fn ed25519_private() -> SigningKey {
    SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&last_32(
        ED25519_PRIVATE_PKCS8_B64,
    )))
}

pub fn ed25519_public() -> VerifyingKey {
    VerifyingKey::Ed25519(
        ed25519_dalek::VerifyingKey::from_bytes(&last_32(ED25519_PUBLIC_SPKI_B64)).unwrap(),
    )
}

/// An owned request.
#[derive(Debug, Clone)]
pub struct Msg {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

impl Msg {
    pub fn new(method: &str, uri: &str) -> Self {
        Self {
            method: method.to_owned(),
            uri: uri.to_owned(),
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn set(&mut self, name: &str, value: &str) {
        self.remove(name);
        self.headers.push((name.to_owned(), value.to_owned()));
    }

    pub fn remove(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    pub fn req(&self) -> Request<'_> {
        Request {
            method: &self.method,
            target_uri: &self.uri,
            headers: self
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect(),
            body: self.body.as_deref(),
        }
    }
}

/// RFC 9421 Appendix B.2, `test-request`.
pub fn test_request() -> Msg {
    let mut m = Msg::new("POST", "https://example.com/foo?param=Value&Pet=dog")
        .with("Host", "example.com")
        .with("Date", "Tue, 20 Apr 2021 02:07:55 GMT")
        .with("Content-Type", "application/json")
        .with(
            "Content-Digest",
            "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
        )
        .with("Content-Length", "18");
    m.body = Some(br#"{"hello": "world"}"#.to_vec());
    m
}

/// The RFC examples' creation time.
pub const RFC_CREATED: i64 = 1_618_884_473;
