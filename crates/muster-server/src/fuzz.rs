//! Entry point of the `upload_params` fuzz target (`fuzz/`, see
//! `docs/fuzzing.md`), also run over the committed corpus by
//! `tests/api/fuzzing.rs`. It calls the pure parsing functions of the
//! upload request (no state, no I/O) on arbitrary bytes and returns; a
//! panic is a bug. The `jwt` target's entry point is `muster_jose::fuzz`.
use crate::api::imports;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use muster_core::mapping::{MappingDoc, MappingFormat};
use std::sync::OnceLock;

/// A mapping the parsed `header_map` is compiled with.
const MAPPING: &str = r#"
key = "Employee ID"
[attributes.given_name]
column = "First Name"
required = true
[attributes.display_name]
columns = ["First Name", "Last Name"]
"#;

const HEADER: [&str; 3] = ["Employee ID", "First Name", "Last Name"];

fn mapping() -> Option<&'static MappingDoc> {
    static DOC: OnceLock<Option<MappingDoc>> = OnceLock::new();
    DOC.get_or_init(|| MappingDoc::parse(MAPPING, MappingFormat::Toml).ok())
        .as_ref()
}

/// The upload parameters of `POST /api/v1/imports`. Input: the query
/// string, optionally followed by a line break and the `Content-Type` and
/// then another and the `Idempotency-Key`.
pub fn upload_params(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\n');
    let query = parts.next().unwrap_or_default();
    let content_type = parts.next();
    let idempotency_key = parts.next();
    let max_wait = 3600;
    let p = match imports::parse_params(Some(query), max_wait) {
        Ok(p) => p,
        Err(e) => {
            // A bad parameter is the client's error, never the server's.
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{e:?}");
            return;
        }
    };
    assert!(p.wait <= max_wait);
    assert!(
        p.delimiter
            .is_none_or(muster_intake::fuzz::delimiter_accepted),
        "a delimiter the API accepts is refused by the CSV reader"
    );
    if let Some(doc) = mapping() {
        let _ = doc.compile(&HEADER, &p.header_map);
        let _ = doc.compile_named(&p.header_map);
    }
    let mut headers = HeaderMap::new();
    for (name, value) in [
        (header::CONTENT_TYPE, content_type),
        (
            header::HeaderName::from_static("idempotency-key"),
            idempotency_key,
        ),
    ] {
        if let Some(v) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(name, v);
        }
    }
    if let Ok(format) = imports::detect_format(&p, &headers) {
        // A SCIM file is read without a stored mapping, every other file
        // with one.
        assert_eq!(
            format.as_deref() == Some("scim"),
            p.mapping.is_empty(),
            "{format:?}"
        );
        let mut p = p.clone();
        match imports::resolve_encoding(&mut p, format.as_deref(), &headers) {
            // What the API accepts, the reader can decode.
            Ok(()) => assert!(p
                .encoding
                .as_deref()
                .is_none_or(|e| muster_intake::text::encoding_for(e).is_some())),
            Err(e) => assert!(e.status().is_client_error(), "{e:?}"),
        }
    }
    for result in [
        imports::detect_format(&p, &headers).map(|_| ()),
        imports::idempotency_key(&headers).map(|_| ()),
    ] {
        if let Err(e) = result {
            assert!(e.status().is_client_error(), "{e:?}");
        }
    }
}
