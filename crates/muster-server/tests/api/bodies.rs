//! Request bodies on a hostile network: small limits before authentication
//! (also for signed requests, before the signature is checked), uploads that
//! hold no thread while they wait for bytes, and bodies that stall or
//! trickle ended with 408.
//!
//! These tests speak HTTP/1.1 over a raw socket: they must send a body
//! slowly and watch for the answer while still sending, which an HTTP
//! client library does not let them do.
use crate::helpers::*;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How a raw request's body goes out.
#[derive(Clone, Copy)]
enum Framing {
    /// `Content-Length` declares the whole size up front.
    Declared,
    /// `Transfer-Encoding: chunked`: the server learns the size as it reads.
    Chunked,
}

/// What came back while the body was still being sent.
struct Answer {
    status: u16,
    body: Value,
    /// Body bytes sent when the answer's status line arrived.
    sent_before_answer: usize,
}

/// Sends `head` (request line and headers, without the framing header),
/// then a body of `total` bytes in pieces of `piece` bytes, one every
/// `every`, while reading the answer; stops sending once it arrives. Gives
/// up after `patience`.
async fn send_slowly(
    app: &TestApp,
    head: &str,
    framing: Framing,
    total: usize,
    piece: usize,
    every: Duration,
    patience: Duration,
) -> Option<Answer> {
    let addr = app.base.trim_start_matches("http://");
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let framing_header = match framing {
        Framing::Declared => format!("Content-Length: {total}\r\n"),
        Framing::Chunked => "Transfer-Encoding: chunked\r\n".to_owned(),
    };
    wr.write_all(format!("{head}{framing_header}\r\n").as_bytes())
        .await
        .unwrap();
    let sent = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicBool::new(false));
    let writer = {
        let (sent, answered) = (sent.clone(), answered.clone());
        tokio::spawn(async move {
            let data = vec![b'x'; piece];
            while sent.load(Ordering::SeqCst) < total && !answered.load(Ordering::SeqCst) {
                let n = piece.min(total - sent.load(Ordering::SeqCst));
                let wrote = match framing {
                    Framing::Declared => wr.write_all(&data[..n]).await,
                    Framing::Chunked => {
                        let mut framed = format!("{n:x}\r\n").into_bytes();
                        framed.extend_from_slice(&data[..n]);
                        framed.extend_from_slice(b"\r\n");
                        wr.write_all(&framed).await
                    }
                };
                if wrote.is_err() {
                    return; // The server closed the connection.
                }
                sent.fetch_add(n, Ordering::SeqCst);
                tokio::time::sleep(every).await;
            }
            if let Framing::Chunked = framing {
                let _ = wr.write_all(b"0\r\n\r\n").await;
            }
            // Keeps the connection open until the answer is read.
            while !answered.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let read = async {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let mut sent_at = None;
        loop {
            let n = rd.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            sent_at.get_or_insert(sent.load(Ordering::SeqCst));
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).into_owned();
            let Some((headers, rest)) = text.split_once("\r\n\r\n") else {
                continue;
            };
            let length = headers
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if rest.len() < length {
                continue;
            }
            let status = headers.split(' ').nth(1)?.parse().ok()?;
            let body = serde_json::from_str(&rest[..length]).unwrap_or(Value::Null);
            return Some(Answer {
                status,
                body,
                sent_before_answer: sent_at.unwrap_or(0),
            });
        }
    };
    let answer = tokio::time::timeout(patience, read).await.ok().flatten();
    answered.store(true, Ordering::SeqCst);
    writer.abort();
    answer
}

const MIB: usize = 1024 * 1024;

/// The three routes reachable before authentication, each with the shape
/// of its error answer.
fn unauthenticated_routes(app: &TestApp) -> Vec<(&'static str, String)> {
    let host = app.base.trim_start_matches("http://");
    let form = "Content-Type: application/x-www-form-urlencoded\r\n";
    vec![
        (
            "oauth",
            format!("POST /oauth2/token HTTP/1.1\r\nHost: {host}\r\n{form}"),
        ),
        (
            "oauth",
            format!("POST /oauth2/revoke HTTP/1.1\r\nHost: {host}\r\n{form}"),
        ),
        (
            "problem",
            format!(
                "POST /api/v1/login-sync HTTP/1.1\r\nHost: {host}\r\n\
                 Authorization: Bearer not.a.jwt\r\nContent-Type: application/json\r\n"
            ),
        ),
    ]
}

#[tokio::test]
async fn an_oversized_body_before_authentication_is_refused_long_before_it_is_all_sent() {
    let app = spawn_app().await;
    for (shape, head) in unauthenticated_routes(&app) {
        for framing in [Framing::Declared, Framing::Chunked] {
            // 32 MiB at about 3 MiB/s: ten seconds to send it all.
            let a = send_slowly(
                &app,
                &head,
                framing,
                32 * MIB,
                16 * 1024,
                Duration::from_millis(5),
                Duration::from_secs(20),
            )
            .await
            .unwrap_or_else(|| panic!("no answer: {head}"));
            assert_eq!(a.status, 413, "{head} {}", a.body);
            assert!(
                a.sent_before_answer <= 4 * MIB,
                "{head}: {} bytes sent before the answer",
                a.sent_before_answer
            );
            match shape {
                // RFC 6749 5.2.
                "oauth" => {
                    assert_eq!(a.body["error"], "invalid_request", "{}", a.body);
                    let d = a.body["error_description"].as_str().unwrap();
                    assert!(d.contains("65536 bytes"), "{d}");
                }
                _ => {
                    assert_eq!(a.body["code"], "payload_too_large", "{}", a.body);
                    assert!(a.body["detail"].as_str().unwrap().contains("65536"));
                }
            }
        }
    }
    // A body within the limit is still read: a real token request works.
    let (_, token) = app.hr_setup().await;
    assert!(token.starts_with("mct_"));
}

#[tokio::test]
async fn a_signed_request_is_buffered_only_up_to_its_routes_limit() {
    let app = spawn_app_with(vec![("MUSTER_LIMITS__MAX_JSON_BYTES", "1048576")]).await;
    let host = app.base.trim_start_matches("http://");
    // The body is read before the signature is checked, so any signature
    // headers make the gateway read it: a route that takes no body, login
    // sync, and a JSON route past its own limit.
    let sig = "Signature-Input: sig1=(\"@method\" \"@target-uri\");created=1;keyid=\"x\"\r\n\
               Signature: sig1=:AAAA:\r\n";
    let cases = [
        ("GET /api/v1/people", 65536, 8 * MIB),
        ("POST /api/v1/login-sync", 65536, 8 * MIB),
        ("PUT /api/v1/people/E1", 1048576, 16 * MIB),
    ];
    for (line, limit, total) in cases {
        let head =
            format!("{line} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{sig}");
        for framing in [Framing::Declared, Framing::Chunked] {
            let a = send_slowly(
                &app,
                &head,
                framing,
                total,
                16 * 1024,
                Duration::from_millis(2),
                Duration::from_secs(20),
            )
            .await
            .unwrap_or_else(|| panic!("no answer: {line}"));
            assert_eq!(a.status, 413, "{line} {}", a.body);
            assert_eq!(a.body["code"], "payload_too_large", "{}", a.body);
            assert!(
                a.body["detail"]
                    .as_str()
                    .unwrap()
                    .contains(&limit.to_string()),
                "{}",
                a.body
            );
            assert!(
                a.sent_before_answer < total / 2,
                "{line}: {} of {total} bytes sent before the answer",
                a.sent_before_answer
            );
        }
    }
}

/// The threads of this process (the gateway runs in it).
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

fn parts_in(app: &TestApp) -> Vec<String> {
    std::fs::read_dir(app.dir.path().join("uploads"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".part") || n.ends_with(".sealed"))
        .collect()
}

fn upload_head(app: &TestApp, token: &str) -> String {
    let host = app.base.trim_start_matches("http://");
    format!(
        "POST /api/v1/imports?mapping=hr HTTP/1.1\r\nHost: {host}\r\n\
         Authorization: Bearer {token}\r\nContent-Type: text/csv\r\n"
    )
}

#[tokio::test]
async fn a_hundred_trickling_uploads_do_not_hold_a_hundred_threads() {
    let app = spawn_app_with(vec![("MUSTER_LIMITS__MIN_UPLOAD_BYTES_PER_SECOND", "0")]).await;
    let (_, token) = app.hr_setup().await;
    let head = upload_head(&app, &token);
    let host = app.base.trim_start_matches("http://").to_owned();
    let before = threads();
    let mut conns = Vec::new();
    for _ in 0..100 {
        let mut s = TcpStream::connect(&host).await.unwrap();
        s.write_all(format!("{head}Content-Length: 10000000\r\n\r\n").as_bytes())
            .await
            .unwrap();
        s.write_all(format!("{HEADER}\n").as_bytes()).await.unwrap();
        conns.push(s);
        // One at a time, as clients arrive: a burst of store calls would
        // start blocking threads of its own, which this is not about.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // All of them trickle a row a second for a few seconds.
    let mut peak = 0;
    for i in 0..4 {
        for s in &mut conns {
            s.write_all(format!("E{i},A,B,a@example.com,D,A,01/15/2020\n").as_bytes())
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak = peak.max(threads());
    }
    let parts = parts_in(&app).len();
    assert_eq!(parts, 100, "every upload is being received");
    eprintln!("threads: {before} before 100 trickling uploads, {peak} at most during them");
    assert!(
        peak < before + 30,
        "100 trickling uploads raised the threads from {before} to {peak}"
    );
    // Clients that go away leave nothing behind.
    drop(conns);
    for _ in 0..100 {
        if parts_in(&app).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(parts_in(&app), Vec::<String>::new());
}

#[tokio::test]
async fn a_stalled_upload_is_ended_after_the_read_timeout_and_leaves_no_part() {
    let app = spawn_app_with(vec![("MUSTER_LIMITS__BODY_READ_TIMEOUT_SECONDS", "2")]).await;
    let (_, token) = app.hr_setup().await;
    let host = app.base.trim_start_matches("http://");
    let mut s = TcpStream::connect(host).await.unwrap();
    let head = upload_head(&app, &token);
    s.write_all(format!("{head}Content-Length: 10000000\r\n\r\n").as_bytes())
        .await
        .unwrap();
    // More than one sealed piece (256 KiB), then nothing.
    let mut csv = format!("{HEADER}\n");
    let mut i = 0;
    while csv.len() < 400 * 1024 {
        i += 1;
        csv.push_str(&format!("E{i},A,B,a{i}@example.com,D,A,01/15/2020\n"));
    }
    s.write_all(csv.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let mut seen_part = false;
    while !seen_part && started.elapsed() < Duration::from_millis(1500) {
        seen_part = parts_in(&app).iter().any(|n| n.ends_with(".part"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen_part, "the upload is being received into a .part");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), s.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "a stalled upload was never ended");
    let waited = started.elapsed();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"upload_too_slow\""), "{text}");
    assert!(
        waited >= Duration::from_millis(1500),
        "ended after {waited:?}"
    );
    assert_eq!(parts_in(&app), Vec::<String>::new());
    let list: Value = app.get_json_as(&token, "/api/v1/imports").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
}

#[tokio::test]
async fn an_upload_below_the_minimum_rate_is_ended_after_the_grace_period() {
    let app = spawn_app_with(vec![
        ("MUSTER_LIMITS__MIN_UPLOAD_BYTES_PER_SECOND", "2000"),
        ("MUSTER_LIMITS__BODY_RATE_GRACE_SECONDS", "1"),
    ])
    .await;
    let (_, token) = app.hr_setup().await;
    // About 500 bytes a second, never silent for long.
    let a = send_slowly(
        &app,
        &upload_head(&app, &token),
        Framing::Declared,
        MIB,
        100,
        Duration::from_millis(200),
        Duration::from_secs(15),
    )
    .await
    .expect("a trickling upload was never ended");
    assert_eq!(a.status, 408, "{}", a.body);
    assert_eq!(a.body["code"], "upload_too_slow", "{}", a.body);
    assert!(a.sent_before_answer < 10_000, "{}", a.sent_before_answer);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(parts_in(&app), Vec::<String>::new());
}

#[tokio::test]
async fn a_token_request_whose_body_stalls_is_answered_408_in_the_oauth_shape() {
    let app = spawn_app_with(vec![("MUSTER_LIMITS__BODY_READ_TIMEOUT_SECONDS", "1")]).await;
    let (_, head) = unauthenticated_routes(&app).remove(0);
    // 100 bytes of a declared 1000, then silence.
    let a = send_slowly(
        &app,
        &head,
        Framing::Declared,
        1000,
        100,
        Duration::from_secs(60),
        Duration::from_secs(10),
    )
    .await
    .expect("a stalled token request was never answered");
    assert_eq!(a.status, 408, "{}", a.body);
    assert_eq!(a.body["error"], "invalid_request", "{}", a.body);
}

#[tokio::test]
async fn a_large_upload_still_imports_whole() {
    // Many sealed pieces, and a tail that is not a whole piece.
    let app = spawn_app().await;
    let (_, token) = app.hr_setup().await;
    let csv = rows(10_000);
    assert!(csv.len() > 2 * 256 * 1024, "{}", csv.len());
    let v = app.import_csv(&token, &csv).await;
    assert_eq!(v["state"], "succeeded", "{v}");
    assert_eq!(v["counts"]["created"], 10_000, "{v}");
    assert_eq!(v["bytes"], csv.len(), "{v}");
}
