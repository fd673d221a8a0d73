//! A `nats` subscription across a gateway killed (SIGKILL) while it
//! publishes, against the real NATS server with JetStream
//! (`MUSTER_TEST_NATS_URL`, default nats://127.0.0.1:4222): after a restart
//! the stream holds every event exactly once (the republished ones are
//! dropped by their `Nats-Msg-Id`) and in cursor order, so in order per
//! person.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use futures::StreamExt;
use support::*;

fn nats_url() -> String {
    std::env::var("MUSTER_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

#[test]
fn every_event_is_in_the_stream_once_in_order_across_a_gateway_killed_mid_publish() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let js = match rt.block_on(async_nats::connect(nats_url())) {
        Ok(c) => async_nats::jetstream::new(c),
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!(
                "CI=true: this test needs NATS with JetStream at {} ({e})",
                nats_url()
            )
        }
        Err(_) => {
            eprintln!(
                "SKIPPED: no NATS at {} (set MUSTER_TEST_NATS_URL)",
                nats_url()
            );
            return;
        }
    };
    let u = uuid::Uuid::new_v4().simple().to_string();
    let (prefix, name) = (format!("t{u}"), format!("MUSTER_TEST_{}", u.to_uppercase()));
    let mut stream = rt
        .block_on(js.create_stream(async_nats::jetstream::stream::Config {
            name: name.clone(),
            subjects: vec![format!("{prefix}.>")],
            ..Default::default()
        }))
        .unwrap();
    let messages = |stream: &mut async_nats::jetstream::stream::Stream| {
        rt.block_on(stream.info()).unwrap().state.messages
    };

    let dir = tempfile::tempdir().unwrap();
    let setup = Setup {
        data: dir.path().to_owned(),
        database_url: None,
        env: vec![
            (
                "MUSTER_WEBHOOKS__ALLOW_PRIVATE_DESTINATIONS".into(),
                "true".into(),
            ),
            ("MUSTER_WEBHOOKS__POLL_INTERVAL_MS".into(), "50".into()),
            // The killed instance's lease runs out soon.
            ("MUSTER_WEBHOOKS__LEASE_SECONDS".into(), "3".into()),
            (
                "MUSTER_WEBHOOKS__REQUEST_TIMEOUT_SECONDS".into(),
                "1".into(),
            ),
        ],
    };
    let mut s = Server::start(&setup, "first");
    assert!(s.run(PUT_WORKDAY_MAPPING).status.success());
    let rows = 3000;
    let file = dir.path().join("people.csv");
    muster_gen::write_export(
        std::fs::File::create(&file).unwrap(),
        &muster_gen::GenOptions {
            rows,
            seed: 11,
            change_percent: 0.0,
        },
    )
    .unwrap();
    // The import first, the subscription after it from the beginning: the
    // whole backlog is published while the gateway is killed.
    let creds = s.client(IMPORTER);
    let out = s.push(&creds, &[file.to_str().unwrap(), "--mapping", "workday"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // How many events there are: where a subscription made now starts.
    let probe: serde_json::Value = serde_json::from_slice(
        &s.run(&[
            "admin",
            "subscription",
            "create",
            "http://127.0.0.1:9/probe",
            "--attributes",
            "*",
            "--json",
        ])
        .stdout,
    )
    .unwrap();
    let total = probe["subscription"]["cursor"].as_u64().unwrap();
    assert!(total >= rows, "{probe}");
    let probe_id = probe["subscription"]["id"].as_str().unwrap();
    assert!(s
        .run(&["admin", "subscription", "delete", probe_id])
        .status
        .success());

    let out = s.run(&[
        "admin",
        "subscription",
        "create",
        &nats_url(),
        "--kind",
        "nats",
        "--subject-prefix",
        &prefix,
        "--attributes",
        "*",
        "--from-beginning",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let sub: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = sub["subscription"]["id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while messages(&mut stream) < 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing was published"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    s.kill();
    let at_kill = messages(&mut stream);
    let s = Server::start(&setup, "second");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let v: serde_json::Value = serde_json::from_slice(
            &s.run(&["admin", "subscription", "show", &id, "--json"])
                .stdout,
        )
        .unwrap();
        let cursor = v["cursor"].as_u64().unwrap();
        let head = messages(&mut stream);
        if cursor == total {
            // Nothing twice: as many messages as events.
            assert_eq!(head, total, "the stream holds duplicates");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "delivery did not finish: {v}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        at_kill < total,
        "the kill came after the last publish ({at_kill} of {total})"
    );

    // Read it all back: each cursor once, in order.
    let cursors: Vec<i64> = rt.block_on(async {
        let consumer = stream
            .create_consumer(async_nats::jetstream::consumer::pull::Config::default())
            .await
            .unwrap();
        let mut got = Vec::new();
        while (got.len() as u64) < total {
            let mut batch = consumer
                .fetch()
                .max_messages(1000)
                .expires(std::time::Duration::from_millis(500))
                .messages()
                .await
                .unwrap();
            let before = got.len();
            while let Some(m) = batch.next().await {
                let m = m.unwrap();
                let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
                got.push(v["cursor"].as_i64().unwrap());
                m.ack().await.unwrap();
            }
            assert!(got.len() > before, "the stream ran dry at {}", got.len());
        }
        got
    });
    // Each cursor once, in order (the first one out of place is named).
    assert_eq!(cursors.len() as u64, total);
    if let Some((i, c)) = cursors
        .iter()
        .enumerate()
        .find(|(i, c)| **c != *i as i64 + 1)
    {
        panic!("message {i} of the stream is cursor {c}, not {}", i + 1);
    }
    drop(s);
    rt.block_on(js.delete_stream(&name)).unwrap();
}
