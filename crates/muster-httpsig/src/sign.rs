//! Creating a signature (RFC 9421 section 3.1).

use crate::base::{build_base, is_supported_component, serialize_inner_list, ComponentError};
use crate::error::SignError;
use crate::keys::{Algorithm, SigningKey};
use crate::request::Request;
use ed25519_dalek::Signer as _;
use hmac::{Hmac, Mac};
use sfv::{BareItem, DictSerializer, InnerList, Item, Key, KeyRef, ListEntry, Parameters};
use sha2::Sha256;

/// What to sign and which signature parameters to state.
///
/// Parameters are serialised in the order `created`, `expires`, `keyid`,
/// `nonce`, `alg`, and only when set. `alg` is optional in RFC 9421 (the key
/// implies it); when set it must match the key.
#[derive(Debug, Clone, Default)]
pub struct SigningParams {
    /// The dictionary key under which both fields carry this signature.
    pub label: String,
    /// Covered components, in order: derived (`@method`, ...) or lowercase
    /// header field names.
    pub components: Vec<String>,
    /// Creation time, Unix seconds.
    pub created: Option<i64>,
    /// Expiry time, Unix seconds.
    pub expires: Option<i64>,
    /// A unique value the verifier can use to refuse replays.
    pub nonce: Option<String>,
    /// Identifies the key to the verifier (for Muster: the client id).
    pub keyid: Option<String>,
    /// States the algorithm explicitly.
    pub alg: Option<Algorithm>,
}

/// The two field values to add to the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// Value of the `Signature-Input` field, e.g. `sig1=("@method");created=1`.
    pub signature_input: String,
    /// Value of the `Signature` field, e.g. `sig1=:base64:`.
    pub signature: String,
    /// The exact bytes that were signed, for logging and debugging.
    pub signature_base: String,
}

/// Signs `request` and returns the `Signature-Input` and `Signature` field
/// values. The request must already carry every covered header (including
/// `Content-Digest`, see [`crate::content_digest`]).
pub fn sign(
    request: &Request<'_>,
    params: &SigningParams,
    key: &SigningKey,
) -> Result<SignedHeaders, SignError> {
    let label = KeyRef::from_str(&params.label)
        .map_err(|_| SignError::InvalidLabel(params.label.clone()))?;

    if let Some(alg) = params.alg {
        if alg != key.algorithm() {
            return Err(SignError::AlgorithmMismatch);
        }
    }

    let mut items = Vec::with_capacity(params.components.len());
    for (i, name) in params.components.iter().enumerate() {
        if !is_supported_component(name) || params.components[..i].contains(name) {
            return Err(SignError::InvalidComponent(name.clone()));
        }
        let value = sfv::String::from_string(name.clone())
            .map_err(|_| SignError::InvalidComponent(name.clone()))?;
        items.push(Item::new(value));
    }

    let mut sf_params = Parameters::new();
    let mut put = |name: &'static str, value: BareItem| {
        // Parameter names are fixed lowercase words, always valid keys.
        if let Ok(k) = Key::from_string(name.to_owned()) {
            sf_params.insert(k, value);
        }
    };
    if let Some(created) = params.created {
        put("created", integer("created", created)?);
    }
    if let Some(expires) = params.expires {
        put("expires", integer("expires", expires)?);
    }
    if let Some(keyid) = &params.keyid {
        put("keyid", string("keyid", keyid)?);
    }
    if let Some(nonce) = &params.nonce {
        put("nonce", string("nonce", nonce)?);
    }
    if let Some(alg) = params.alg {
        put("alg", string("alg", alg.name())?);
    }

    let list = InnerList::with_params(items, sf_params);
    let serialized = serialize_inner_list(&list);
    let base =
        build_base(request, &params.components, &serialized).map_err(|(name, e)| match e {
            ComponentError::Unsupported => SignError::InvalidComponent(name),
            ComponentError::Unavailable => SignError::ComponentUnavailable(name),
            ComponentError::InvalidValue => SignError::InvalidComponentValue(name),
            ComponentError::InvalidTargetUri => SignError::InvalidTargetUri,
        })?;

    let signature = raw_sign(key, base.as_bytes());

    let entry = ListEntry::InnerList(list);
    let mut input = DictSerializer::new();
    input.members([(label, &entry)]);
    let mut sig = DictSerializer::new();
    _ = sig.bare_item(label, signature.as_slice());

    Ok(SignedHeaders {
        signature_input: input.finish().unwrap_or_default(),
        signature: sig.finish().unwrap_or_default(),
        signature_base: base,
    })
}

pub(crate) fn raw_sign(key: &SigningKey, message: &[u8]) -> Vec<u8> {
    match key {
        SigningKey::HmacSha256(k) => hmac_sha256(k.bytes(), message),
        SigningKey::Ed25519(k) => k.sign(message).to_bytes().to_vec(),
    }
}

pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail here.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

fn integer(name: &'static str, v: i64) -> Result<BareItem, SignError> {
    sfv::Integer::try_from(v)
        .map(BareItem::Integer)
        .map_err(|_| SignError::InvalidParameter(name))
}

fn string(name: &'static str, v: &str) -> Result<BareItem, SignError> {
    sfv::String::from_string(v.to_owned())
        .map(BareItem::String)
        .map_err(|_| SignError::InvalidParameter(name))
}
