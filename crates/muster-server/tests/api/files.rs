//! Files as HR systems really export them: in windows-1252 or UTF-16, as
//! an XLSX workbook or a gzip by mistake, with an invisible character in
//! a key. Each is either read right or refused whole with a reason that
//! names the problem; none is half-imported.
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::Value;

/// The test CSV's header and two rows whose names are Latin-1 accented,
/// encoded in windows-1252 (`ë` is 0xEB, `ö` 0xF6, `€` 0x80).
fn windows_1252_file() -> Vec<u8> {
    let mut b = format!("{HEADER}\n").into_bytes();
    b.extend_from_slice(b"E1,Zo\xEB,M\xFCller,zoe@example.com,R&D,A,01/15/2020\n");
    b.extend_from_slice(b"E2,J\xF6rg,\x80uro,jorg@example.com,Ops,A,01/15/2020\n");
    b
}

async fn final_import(app: &TestApp, r: reqwest::Response) -> Value {
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert!(status.is_success(), "{status}: {v}");
    assert!(
        !matches!(
            v["state"].as_str(),
            Some("received" | "parsing" | "applying")
        ),
        "{v}"
    );
    let _ = app;
    v
}

#[tokio::test]
async fn a_file_that_is_not_utf8_and_declares_nothing_is_refused_whole_naming_its_likely_encoding()
{
    let app = spawn_app().await;
    let (_, t) = app.hr_setup().await;
    let r = app
        .upload(&t, "mapping=hr&wait=30", "text/csv", windows_1252_file())
        .await;
    let v = final_import(&app, r).await;
    assert_eq!(v["state"], "rejected", "{v}");
    assert_eq!(v["error"]["code"], "invalid_encoding");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("row 2") && msg.contains("windows-1252") && msg.contains("encoding="),
        "{msg}"
    );
    assert_eq!(
        app.get_as(&app.admin_token, "/api/v1/people/E2")
            .await
            .status(),
        StatusCode::NOT_FOUND,
        "the good row after it was not applied either"
    );
}

#[tokio::test]
async fn a_declared_encoding_or_charset_is_decoded() {
    let app = spawn_app().await;
    let (_, t) = app.hr_setup().await;
    for (query, content_type) in [
        ("mapping=hr&wait=30&encoding=windows-1252", "text/csv"),
        ("mapping=hr&wait=30", "text/csv; charset=ISO-8859-1"),
        (
            "mapping=hr&wait=30&encoding=latin1",
            "text/csv; charset=\"windows-1252\"",
        ),
    ] {
        let r = app
            .upload(&t, query, content_type, windows_1252_file())
            .await;
        let v = final_import(&app, r).await;
        assert!(
            v["state"].as_str().unwrap().starts_with("succeeded"),
            "{query}: {v}"
        );
        assert_eq!(v["counts"]["failed"], 0, "{v}");
    }
    let p = app.person("E1").await;
    assert_eq!(p.attributes["given_name"], "Zoë");
    assert_eq!(p.attributes["family_name"], "Müller");
    let p = app.person("E2").await;
    assert_eq!(p.attributes["given_name"], "Jörg");
    assert_eq!(p.attributes["family_name"], "€uro");
}

#[tokio::test]
async fn an_unknown_or_contradicting_encoding_is_a_bad_parameter() {
    let app = spawn_app().await;
    let (_, t) = app.hr_setup().await;
    for (query, content_type, needle) in [
        (
            "mapping=hr&encoding=klingon",
            "text/csv",
            "encoding: 'klingon' is not an encoding",
        ),
        (
            "mapping=hr",
            "text/csv; charset=klingon",
            "charset: 'klingon'",
        ),
        (
            "mapping=hr&encoding=utf-8",
            "text/csv; charset=windows-1252",
            "contradicts",
        ),
        ("encoding=windows-1252", "application/scim+json", "UTF-8"),
    ] {
        let r = app.upload(&t, query, content_type, rows(1)).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{query}");
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["code"], "invalid_parameter");
        assert!(p["detail"].as_str().unwrap().contains(needle), "{p}");
    }
}

#[tokio::test]
async fn utf16_with_a_byte_order_mark_is_read_as_excel_writes_unicode_text() {
    let app = spawn_app().await;
    let (_, t) = app.hr_setup().await;
    let text = format!(
        "{}\nE1\tZoë\tMüller\tzoe@example.com\tR&D\tA\t01/15/2020\n",
        HEADER.replace(',', "\t")
    );
    let mut body = vec![0xFF, 0xFE];
    for u in text.encode_utf16() {
        body.extend_from_slice(&u.to_le_bytes());
    }
    let r = app
        .upload(&t, "mapping=hr&wait=30&delimiter=tab", "text/csv", body)
        .await;
    let v = final_import(&app, r).await;
    assert_eq!(v["state"], "succeeded", "{v}");
    assert_eq!(app.person("E1").await.attributes["given_name"], "Zoë");
}

#[tokio::test]
async fn a_workbook_an_archive_or_a_compressed_file_is_refused_by_what_it_is() {
    let app = spawn_app().await;
    let (_, t) = app.hr_setup().await;
    let zip_named = |name: &[u8]| {
        let mut b = b"PK\x03\x04".to_vec();
        b.extend_from_slice(&[0; 26]);
        b.extend_from_slice(name);
        b.extend_from_slice(&[0; 64]);
        b
    };
    let mut gzip = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    gzip.extend_from_slice(&[0; 64]);
    for (body, what) in [
        (zip_named(b"xl/workbook.xml"), "Excel workbook (XLSX)"),
        (zip_named(b"employees.csv"), "ZIP archive"),
        (gzip, "gzip"),
        (
            [
                &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1][..],
                &[0; 64],
            ]
            .concat(),
            "XLS",
        ),
    ] {
        let r = app.upload(&t, "mapping=hr&wait=30", "text/csv", body).await;
        let v = final_import(&app, r).await;
        assert_eq!(v["state"], "rejected", "{what}: {v}");
        assert_eq!(v["error"]["code"], "unsupported_file_type", "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(what),
            "{v}"
        );
    }
}

#[tokio::test]
async fn a_key_with_an_invisible_character_is_a_row_error_naming_the_code_point() {
    let app = spawn_app().await;
    let (_, t) = app.hr_setup().await;
    let csv = format!(
        "{HEADER}\nE1,Ada,A,ada@example.com,R&D,A,01/15/2020\nE\u{200B}2,Bob,B,bob@example.com,Ops,A,01/15/2020\n"
    );
    let v = app.import_csv(&t, &csv).await;
    assert_eq!(v["state"], "succeeded_with_errors", "{v}");
    let errs = app.errors(&t, v["id"].as_str().unwrap()).await;
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0]["row"], 3);
    assert_eq!(errs[0]["code"], "invalid_key");
    assert_eq!(errs[0]["column"], "Employee ID");
    let msg = errs[0]["message"].as_str().unwrap();
    assert!(msg.contains("U+200B") && !msg.contains("Bob"), "{msg}");
    // The same through the API.
    let r = app
        .http
        .put(app.url("/api/v1/people/E%E2%80%8B3"))
        .bearer_auth(&t)
        .json(&serde_json::json!({"attributes": {"given_name": "Cy"}}))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body = r.text().await.unwrap();
    assert!(body.contains("U+200B"), "{status}: {body}");
}

#[tokio::test]
async fn an_optional_column_missing_from_the_file_is_a_warning_or_by_the_mapping_a_rejection() {
    let app = spawn_app().await;
    let (_, t) = app.hr_setup().await;
    // No Department column: the import goes on and says so.
    let csv = "Employee ID,First Name,Last Name,Work Email,Worker Status,Hire Date\n\
               E1,Ada,A,ada@example.com,A,01/15/2020\n";
    let v = app.import_csv(&t, csv).await;
    assert_eq!(v["state"], "succeeded", "{v}");
    let w = &v["warnings"];
    assert_eq!(w.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(w[0]["code"], "missing_optional_column");
    assert_eq!(w[0]["column"], "Department");
    assert_eq!(w[0]["attribute"], "department");
    // The import keeps them: a later read says the same.
    let again: Value = app
        .get_json_as(
            &t,
            &format!("/api/v1/imports/{}", v["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(again["warnings"], *w);
    // A whole file has none.
    let v = app.import_csv(&t, &rows(1)).await;
    assert_eq!(v["warnings"], serde_json::json!([]), "{v}");

    // A mapping that wants every column there rejects the file instead.
    let strict = format!("missing_columns = \"error\"\n{MAPPING}");
    let r = app.put_mapping("hr", &strict).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v = app.import_csv(&t, csv).await;
    assert_eq!(v["state"], "rejected", "{v}");
    assert_eq!(v["error"]["code"], "missing_columns");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'Department'"),
        "{v}"
    );
}

#[tokio::test]
async fn a_header_read_as_one_column_names_the_delimiter_the_file_seems_to_use() {
    let app = spawn_app().await;
    let (_, t) = app.hr_setup().await;
    let csv = format!(
        "{}\nE1;Ada;A;ada@example.com;R&D;A;01/15/2020\n",
        HEADER.replace(',', ";")
    );
    let v = app.import_csv(&t, &csv).await;
    assert_eq!(v["state"], "rejected", "{v}");
    assert_eq!(v["error"]["code"], "missing_columns");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("one single column") && msg.contains("delimiter=;"),
        "{msg}"
    );
    let r = app
        .upload(&t, "mapping=hr&wait=30&delimiter=;", "text/csv", csv)
        .await;
    let v = final_import(&app, r).await;
    assert_eq!(v["state"], "succeeded", "{v}");
}

#[tokio::test]
async fn the_mappings_file_settings_read_an_export_that_the_upload_does_not_describe() {
    let app = spawn_app().await;
    let (_, t) = app.hr_setup().await;
    // TOML wants top-level keys first: the [file] table goes after them.
    let (top, attrs) = MAPPING.split_once("[attributes").unwrap();
    let mapping_ok = format!(
        "{top}[file]\ndelimiter = \";\"\nencoding = \"windows-1252\"\ntrailing_delimiter = true\nformat = \"csv\"\n\n[attributes{attrs}"
    );
    let r = app.put_mapping("hr", &mapping_ok).await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    let mut body = format!("{};\n", HEADER.replace(',', ";")).into_bytes();
    body.extend_from_slice(b"E1;Zo\xEB;M\xFCller;zoe@example.com;R&D;A;01/15/2020;\n");
    let r = app
        .upload(&t, "mapping=hr&wait=30", "text/csv", body.clone())
        .await;
    let v = final_import(&app, r).await;
    assert_eq!(v["state"], "succeeded", "{v}");
    assert_eq!(app.person("E1").await.attributes["given_name"], "Zoë");
    // An upload that names no format (as an encrypted file is sent) is read
    // in the mapping's.
    let r = app
        .upload(
            &t,
            "mapping=hr&wait=30",
            "application/octet-stream",
            body.clone(),
        )
        .await;
    let v = final_import(&app, r).await;
    assert_eq!(v["state"], "succeeded", "{v}");
    assert_eq!(v["format"], "csv", "{v}");
    // The upload's own parameters win: a ',' delimiter finds one column.
    let r = app
        .upload(&t, "mapping=hr&wait=30&delimiter=,", "text/csv", body)
        .await;
    let v = final_import(&app, r).await;
    assert_eq!(v["state"], "rejected", "{v}");
    // A setting that cannot be used is refused when the mapping is stored.
    for (bad, needle) in [
        ("delimiter = \";;\"", "file.delimiter"),
        ("encoding = \"klingon\"", "file.encoding"),
        ("colour = \"blue\"", "colour"),
        ("format = \"xlsx\"", "file.format"),
    ] {
        let doc = format!("{top}[file]\n{bad}\n\n[attributes{attrs}");
        let r = app.put_mapping("hr", &doc).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        let p: Value = r.json().await.unwrap();
        assert!(p["detail"].as_str().unwrap().contains(needle), "{bad}: {p}");
    }
    // Without a format in the mapping, such an upload must say its own.
    assert_eq!(
        app.put_mapping("hr", MAPPING).await.status(),
        StatusCode::CREATED
    );
    let r = app
        .upload(&t, "mapping=hr", "application/octet-stream", b"x".to_vec())
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "invalid_parameter", "{p}");
    assert!(p["detail"].as_str().unwrap().starts_with("format:"), "{p}");
}
