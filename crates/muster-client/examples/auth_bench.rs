//! Load for the authentication paths of a running gateway, through the SDK:
//! signed single-person PUT upserts (RFC 9421, hmac-sha256) and
//! private_key_jwt token grants (RFC 7523), each for a fixed time from
//! several concurrent tasks over keep-alive loopback connections. Prints
//! one line. Run by bench/auth.sh, which sets the gateway and keys up:
//!
//!   auth_bench URL CLIENT_ID HMAC_KEY_FILE JWT_CLIENT_ID JWT_KEY_PEM SECONDS TASKS
#![allow(clippy::unwrap_used, clippy::expect_used)]

use muster_client::{Auth, Client, JwtAssertionKey, RequestSigner};
use muster_proto::PersonInput;
use std::time::{Duration, Instant};

/// Runs `op` from `tasks` tasks for `secs` seconds; returns (count, p50 ms,
/// p99 ms, errors).
async fn drive<F, Fut>(tasks: usize, secs: u64, op: F) -> (usize, f64, f64, usize)
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let end = Instant::now() + Duration::from_secs(secs);
    let mut handles = Vec::new();
    for t in 0..tasks {
        let op = op.clone();
        handles.push(tokio::spawn(async move {
            let (mut lat, mut errors, mut i) = (Vec::new(), 0usize, 0usize);
            while Instant::now() < end {
                let s = Instant::now();
                if !op(t, i).await {
                    errors += 1;
                }
                lat.push(s.elapsed().as_secs_f64() * 1000.0);
                i += 1;
            }
            (lat, errors)
        }));
    }
    let (mut all, mut errors) = (Vec::new(), 0);
    for h in handles {
        let (l, e) = h.await.unwrap();
        all.extend(l);
        errors += e;
    }
    all.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    (all.len(), pct(0.50), pct(0.99), errors)
}

#[tokio::main]
async fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (url, id, hmac_file, jwt_id, jwt_pem) = (&a[1], &a[2], &a[3], &a[4], &a[5]);
    let secs: u64 = a[6].parse().unwrap();
    let tasks: usize = a[7].parse().unwrap();

    let key = std::fs::read_to_string(hmac_file).unwrap();
    let signed = Client::new(
        url,
        Auth::Signed(RequestSigner::hmac(id, key.trim()).unwrap()),
    )
    .unwrap();
    let (puts, put_p50, put_p99, put_err) = drive(tasks, secs, move |t, i| {
        let c = signed.clone();
        async move {
            let mut input = PersonInput::default();
            input
                .attributes
                .insert("given_name".into(), serde_json::json!(format!("N{i}")));
            c.person_put(&format!("B{t:03}{:06}", i % 1000), &input)
                .await
                .is_ok()
        }
    })
    .await;

    let pem = std::fs::read_to_string(jwt_pem).unwrap();
    let jwt = Client::new(
        url,
        Auth::PrivateKeyJwt {
            client_id: jwt_id.clone(),
            key: JwtAssertionKey::from_pem(&pem, None).unwrap(),
            scope: None,
        },
    )
    .unwrap();
    let (grants, jwt_p50, jwt_p99, jwt_err) = drive(tasks, secs, move |_, _| {
        let c = jwt.clone();
        async move { c.request_token().await.is_ok() }
    })
    .await;

    let rate = |n: usize| n as f64 / secs as f64;
    println!(
        "auth-bench tasks={tasks} seconds={secs} signed_put_rps={:.0} signed_put_p50_ms={put_p50:.2} \
         signed_put_p99_ms={put_p99:.2} signed_put_errors={put_err} pkjwt_grants_per_s={:.0} \
         pkjwt_p50_ms={jwt_p50:.2} pkjwt_p99_ms={jwt_p99:.2} pkjwt_errors={jwt_err}",
        rate(puts),
        rate(grants)
    );
}
