//! The listener on a hostile network: timeouts on slow and idle
//! connections, the connection cap, a bounded drain on stop, HTTPS with
//! certificate reloads, and the headers on every response.
use crate::helpers::{spawn_app, spawn_app_with, TestApp};
use reqwest::StatusCode;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HEALTH: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: muster\r\n\r\n";

/// Waits until the server closes `conn` (EOF or reset), at most `limit`;
/// returns how long that took, or `None` if it stayed open.
async fn closed_within(conn: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    let end = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(end, conn.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// Reads one response to `GET /healthz` (its body is `ok`), at most
/// `limit`; `None` if none came.
async fn health_response(conn: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let end = tokio::time::Instant::now() + limit;
    while !got.ends_with(b"\r\n\r\nok") {
        match tokio::time::timeout_at(end, conn.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&got).into_owned())
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.running.as_ref().unwrap().addr)
        .await
        .unwrap()
}

/// Sends a request head one byte every 200 ms, forever (until the server
/// closes the connection and a write fails).
fn trickle(mut w: tokio::net::tcp::OwnedWriteHalf) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let head = b"GET /healthz HTTP/1.1\r\nHost: muster\r\nX-Slow: ";
        for b in head.iter().chain(std::iter::repeat(&b'a')) {
            if w.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

#[tokio::test]
async fn twenty_connections_trickling_headers_are_closed_by_the_header_read_timeout() {
    let app = spawn_app_with(vec![
        ("MUSTER_HTTP__HEADER_READ_TIMEOUT_SECONDS", "1"),
        ("MUSTER_HTTP__IDLE_TIMEOUT_SECONDS", "60"),
    ])
    .await;
    let mut conns = Vec::new();
    for _ in 0..20 {
        let (r, w) = connect(&app).await.into_split();
        conns.push((r, trickle(w)));
    }
    let checks = conns.into_iter().map(|(mut r, writer)| async move {
        let start = Instant::now();
        let mut buf = [0u8; 256];
        let closed = tokio::time::timeout(Duration::from_secs(8), async {
            loop {
                match r.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        writer.abort();
        closed.map(|()| start.elapsed())
    });
    for (i, closed) in futures::future::join_all(checks)
        .await
        .into_iter()
        .enumerate()
    {
        let took = closed.unwrap_or_else(|_| panic!("connection {i} was still open after 8 s"));
        assert!(
            took < Duration::from_secs(4),
            "connection {i} closed after {took:?}"
        );
    }
    // The gateway still serves everyone else.
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let app = spawn_app_with(vec![
        ("MUSTER_HTTP__IDLE_TIMEOUT_SECONDS", "1"),
        ("MUSTER_HTTP__HEADER_READ_TIMEOUT_SECONDS", "30"),
    ])
    .await;
    let mut conn = connect(&app).await;
    conn.write_all(HEALTH).await.unwrap();
    let first = health_response(&mut conn, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(
        !first.to_ascii_lowercase().contains("connection: close"),
        "{first}"
    );
    // Kept alive: a second request on the same connection is answered.
    conn.write_all(HEALTH).await.unwrap();
    health_response(&mut conn, Duration::from_secs(5))
        .await
        .unwrap();
    let took = closed_within(&mut conn, Duration::from_secs(8))
        .await
        .expect("the idle connection was still open after 8 s");
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(4),
        "closed after {took:?}"
    );
}

#[tokio::test]
async fn a_request_in_flight_is_not_cut_by_the_idle_timeout() {
    let app = spawn_app_with(vec![("MUSTER_HTTP__IDLE_TIMEOUT_SECONDS", "1")]).await;
    // A change-feed long poll with nothing to report waits 3 s, silent.
    let start = Instant::now();
    let r = app.get_as(&app.admin_token, "/api/v1/changes?wait=3").await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    assert!(start.elapsed() >= Duration::from_millis(2500));
}

#[tokio::test]
async fn at_max_connections_the_next_connection_is_served_once_one_closes() {
    let app = spawn_app_with(vec![("MUSTER_HTTP__MAX_CONNECTIONS", "3")]).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut c = connect(&app).await;
        c.write_all(HEALTH).await.unwrap();
        health_response(&mut c, Duration::from_secs(5))
            .await
            .expect("a connection under the cap is served");
        open.push(c);
    }
    // The kernel completes the handshake (backlog), the gateway does not
    // take the connection.
    let mut waiting = connect(&app).await;
    waiting.write_all(HEALTH).await.unwrap();
    assert!(
        health_response(&mut waiting, Duration::from_millis(1500))
            .await
            .is_none(),
        "a connection over the cap was served"
    );
    drop(open.pop());
    health_response(&mut waiting, Duration::from_secs(5))
        .await
        .expect("served once a connection closed");
}

#[tokio::test]
async fn a_client_that_never_reads_its_answers_is_closed_after_the_write_timeout() {
    let app = spawn_app_with(vec![
        ("MUSTER_HTTP__MAX_CONNECTIONS", "1"),
        ("MUSTER_HTTP__WRITE_TIMEOUT_SECONDS", "1"),
    ])
    .await;
    // Pipelined requests for the OpenAPI document, many megabytes of
    // answers, with a small receive buffer that is never read: the
    // gateway's writes stall with a request in flight, where no idle or
    // header timeout applies.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut reader = socket
        .connect(app.running.as_ref().unwrap().addr)
        .await
        .unwrap();
    let one = b"GET /openapi.json HTTP/1.1\r\nHost: muster\r\n\r\n";
    let _ = tokio::time::timeout(Duration::from_secs(2), reader.write_all(&one.repeat(2000))).await;
    // It holds the only slot; the next client waits until the stalled
    // connection is closed.
    let mut next = connect(&app).await;
    next.write_all(HEALTH).await.unwrap();
    let start = Instant::now();
    health_response(&mut next, Duration::from_secs(8))
        .await
        .expect("the stalled connection kept the slot");
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "served after {:?}",
        start.elapsed()
    );
    drop(reader);
}

#[tokio::test]
async fn a_stop_with_a_trickling_client_finishes_within_the_grace() {
    let mut app = spawn_app_with(vec![
        ("MUSTER_HTTP__SHUTDOWN_GRACE_SECONDS", "1"),
        ("MUSTER_HTTP__HEADER_READ_TIMEOUT_SECONDS", "600"),
        ("MUSTER_HTTP__IDLE_TIMEOUT_SECONDS", "600"),
    ])
    .await;
    let (mut r, w) = connect(&app).await.into_split();
    let writer = trickle(w);
    // A request in flight at the stop is answered within the grace.
    let poll = {
        let http = app.http.clone();
        let url = app.url("/api/v1/changes?wait=1");
        let token = app.admin_token.clone();
        tokio::spawn(async move { http.get(url).bearer_auth(token).send().await })
    };
    tokio::time::sleep(Duration::from_millis(600)).await;
    let start = Instant::now();
    let stopped =
        tokio::time::timeout(Duration::from_secs(10), app.running.take().unwrap().stop()).await;
    writer.abort();
    stopped
        .expect("the stop waited for the trickling client")
        .unwrap();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(4), "the stop took {took:?}");
    let answered = poll.await.unwrap().unwrap();
    assert_eq!(answered.status(), StatusCode::OK);
    let mut buf = [0u8; 64];
    assert!(
        matches!(r.read(&mut buf).await, Ok(0) | Err(_)),
        "the trickling connection is closed"
    );
}

/// A CA and a certificate for 127.0.0.1 it signed, as PEM files.
struct Pki {
    ca_pem: String,
    leaf_der: Vec<u8>,
    chain_pem: String,
    key_pem: String,
}

fn pki(name: &str) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, format!("Muster test CA {name}"));
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, format!("muster {name}"));
    let leaf = leaf.signed_by(&key, &ca, &ca_key).unwrap();
    Pki {
        ca_pem: ca.pem(),
        leaf_der: leaf.der().to_vec(),
        chain_pem: format!("{}{}", leaf.pem(), ca.pem()),
        key_pem: key.serialize_pem(),
    }
}

/// Writes the pair as a deployment tool would: each file renamed into
/// place whole.
fn install(dir: &Path, pki: &Pki) {
    for (name, text) in [("chain.pem", &pki.chain_pem), ("key.pem", &pki.key_pem)] {
        let tmp = dir.join(format!("{name}.new"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
}

/// A client that trusts only the given CAs and reports the certificate the
/// server presented; no pooled connections, so each request handshakes.
fn https_client(cas: &[&Pki]) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .tls_info(true)
        .pool_max_idle_per_host(0);
    for ca in cas {
        b = b.add_root_certificate(reqwest::Certificate::from_pem(ca.ca_pem.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

fn presented(r: &reqwest::Response) -> Vec<u8> {
    r.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .expect("a TLS response says which certificate it came with")
        .to_vec()
}

async fn spawn_tls_app(certs: &tempfile::TempDir, extra: Vec<(&str, &str)>) -> TestApp {
    let cert = certs.path().join("chain.pem").display().to_string();
    let key = certs.path().join("key.pem").display().to_string();
    let mut env = vec![
        ("MUSTER_TLS__CERT_FILE", cert.as_str()),
        ("MUSTER_TLS__KEY_FILE", key.as_str()),
    ];
    env.extend(extra);
    spawn_app_with(env).await
}

#[tokio::test]
async fn an_https_request_works_with_a_generated_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let first = pki("one");
    install(certs.path(), &first);
    let mut app = spawn_tls_app(&certs, vec![]).await;
    assert!(app.base.starts_with("https://127.0.0.1:"), "{}", app.base);
    app.http = https_client(&[&first]);
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(presented(&r), first.leaf_der);
    // The OAuth issuer is the HTTPS URL, and a token can be had over it.
    let meta: serde_json::Value = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert!(
        meta["issuer"].as_str().unwrap().starts_with("https://"),
        "{meta}"
    );
    let client = app.syncer().await;
    let token = app.token(&client).await;
    assert!(!token.is_empty());
    let r = app.get_as(&app.admin_token, "/api/v1/people").await;
    assert_eq!(r.status(), StatusCode::OK);
    // Plain HTTP on the TLS port gets nowhere.
    let plain = reqwest::Client::new()
        .get(app.url("/healthz").replacen("https://", "http://", 1))
        .send()
        .await;
    assert!(plain.map_or(true, |r| !r.status().is_success()));
    // ALPN offers HTTP/2 and HTTP/1.1.
    assert_eq!(alpn(&app, &first, b"h2").await, b"h2");
    assert_eq!(alpn(&app, &first, b"http/1.1").await, b"http/1.1");
}

#[tokio::test]
async fn an_http2_client_is_served_over_tls() {
    // curl, built with nghttp2, is the HTTP/2 peer.
    if !crate::encrypted::have("curl") {
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    let p = pki("h2");
    install(certs.path(), &p);
    let ca = certs.path().join("ca.pem");
    std::fs::write(&ca, &p.ca_pem).unwrap();
    let app = spawn_tls_app(&certs, vec![]).await;
    let out = tokio::process::Command::new("curl")
        .args([
            "--http2",
            "-sS",
            "-D",
            "-",
            "-w",
            "\n%{http_version}",
            "--cacert",
        ])
        .arg(&ca)
        .arg(app.url("/healthz"))
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.ends_with("ok\n2"), "{text}");
    assert!(text.contains("x-content-type-options: nosniff"), "{text}");
}

/// The protocol the server picks when the client offers only `proto`.
async fn alpn(app: &TestApp, ca: &Pki, proto: &[u8]) -> Vec<u8> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let ca_der = rustls::pki_types::CertificateDer::from_pem_slice(ca.ca_pem.as_bytes()).unwrap();
    roots.add(ca_der).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![proto.to_vec()];
    let tcp = connect(app).await;
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    tls.get_ref().1.alpn_protocol().unwrap().to_vec()
}

#[tokio::test]
async fn replacing_the_certificate_files_makes_the_server_present_the_new_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let (old, new) = (pki("old"), pki("new"));
    install(certs.path(), &old);
    let app = spawn_tls_app(&certs, vec![("MUSTER_TLS__RELOAD_CHECK_SECONDS", "1")]).await;
    let http = https_client(&[&old, &new]);
    let health = app.url("/healthz");
    let r = http.get(&health).send().await.unwrap();
    assert_eq!(presented(&r), old.leaf_der);
    install(certs.path(), &new);
    // The files are checked every second; a loaded machine (the whole
    // suite runs at once) gets half a minute. Each look is a new client:
    // one that kept its TLS session would resume it, and a resumed
    // session shows no certificate (the client reports the one it was
    // shown when the session began, RFC 8446 2.2).
    let mut served = Vec::new();
    for _ in 0..150 {
        let fresh = https_client(&[&old, &new]);
        served = presented(&fresh.get(&health).send().await.unwrap());
        if served == new.leaf_der {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if served != new.leaf_der {
        // Whether the pair itself loads tells a watch that never fired
        // from files that do not load.
        let tls = app.running.as_ref().unwrap().tls().unwrap();
        let loads = tokio::task::spawn_blocking(move || tls.reload("test"))
            .await
            .unwrap();
        panic!("the new certificate was not picked up in 30 s (the pair loads by hand: {loads})");
    }
    // A broken pair (a key that does not match) keeps the last good one.
    let broken = pki("broken");
    std::fs::write(certs.path().join("key.pem.new"), &broken.key_pem).unwrap();
    std::fs::rename(
        certs.path().join("key.pem.new"),
        certs.path().join("key.pem"),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = http.get(&health).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(presented(&r), new.leaf_der);
}

fn assert_security_headers(r: &reqwest::Response, what: &str) {
    let h = r.headers();
    let get = |name: &str| h.get(name).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(
        get("x-content-type-options").as_deref(),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(
        get("referrer-policy").as_deref(),
        Some("no-referrer"),
        "{what}"
    );
    assert_eq!(
        get("content-security-policy").as_deref(),
        Some("frame-ancestors 'none'"),
        "{what}"
    );
    assert_eq!(get("cache-control").as_deref(), Some("no-store"), "{what}");
}

#[tokio::test]
async fn the_security_headers_are_on_api_responses_and_hsts_only_over_tls() {
    let app = spawn_app().await;
    let r = app.get_as(&app.admin_token, "/api/v1/tenants").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_security_headers(&r, "an API response");
    assert!(r.headers().get("strict-transport-security").is_none());
    let client = app.syncer().await;
    let r = app.token_response(&client, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_security_headers(&r, "a token response");
    let r = app.get_as("not-a-token", "/api/v1/people").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_security_headers(&r, "a refusal");
    let r = app.http.get(app.url("/no-such-page")).send().await.unwrap();
    assert_security_headers(&r, "a 404");

    let certs = tempfile::tempdir().unwrap();
    let ca = pki("headers");
    install(certs.path(), &ca);
    let mut tls = spawn_tls_app(&certs, vec![]).await;
    tls.http = https_client(&[&ca]);
    let r = tls.get_as(&tls.admin_token, "/api/v1/tenants").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_security_headers(&r, "an API response over TLS");
    assert_eq!(
        r.headers()
            .get("strict-transport-security")
            .map(|v| v.to_str().unwrap()),
        Some("max-age=31536000")
    );
}
