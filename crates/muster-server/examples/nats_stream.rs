//! The NATS side of `bench/nats.sh`, on a loopback JetStream server.
//!
//!   nats_stream create URL STREAM PREFIX   make (or empty) a stream taking PREFIX.>
//!   nats_stream wait URL STREAM N          until it holds N messages: prints the
//!                                          seconds N took, from the stream's
//!                                          first and last timestamps
//!   nats_stream ceiling URL STREAM PREFIX N [WINDOW]
//!                                          publishes N event-sized messages the
//!                                          way a delivery round does (at most
//!                                          WINDOW unacknowledged, default 1;
//!                                          acknowledgements taken in order):
//!                                          prints "messages/s"
//!   nats_stream delete URL STREAM
#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_nats::jetstream;
use std::time::{Duration, Instant};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| {
        args.get(i)
            .cloned()
            .expect("missing argument (see the file's head)")
    };
    let js = jetstream::new(async_nats::connect(arg(1)).await.expect("connect"));
    match arg(0).as_str() {
        "create" => {
            let _ = js.delete_stream(arg(2)).await;
            js.create_stream(jetstream::stream::Config {
                name: arg(2),
                subjects: vec![format!("{}.>", arg(3))],
                ..Default::default()
            })
            .await
            .expect("create the stream");
        }
        "wait" => {
            let n: u64 = arg(3).parse().unwrap();
            let mut stream = js.get_stream(arg(2)).await.expect("the stream");
            let state = loop {
                let state = stream.info().await.unwrap().state.clone();
                if state.messages >= n {
                    break state;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            // The stream's own clock: from the first message stored to
            // the last.
            let took = state.last_timestamp - state.first_timestamp;
            println!(
                "{:.6}",
                took.as_seconds_f64() * n as f64 / (state.messages - 1).max(1) as f64
            );
        }
        "ceiling" => {
            let n: usize = arg(4).parse().unwrap();
            let window: usize = args.get(5).map_or(1, |w| w.parse().unwrap()).max(1);
            // About the size of a person.created event with ten attributes.
            let body = bytes::Bytes::from(vec![b'x'; 900]);
            let started = Instant::now();
            let mut in_flight = std::collections::VecDeque::new();
            for i in 0..n {
                let mut h = async_nats::HeaderMap::new();
                h.insert(
                    async_nats::header::NATS_MESSAGE_ID,
                    format!("ceiling-{i}").as_str(),
                );
                let ack = js
                    .publish_with_headers(
                        format!("{}.bench.person.created", arg(3)),
                        h,
                        body.clone(),
                    )
                    .await
                    .unwrap();
                in_flight.push_back(ack);
                if in_flight.len() >= window {
                    in_flight.pop_front().unwrap().await.unwrap();
                }
            }
            for ack in in_flight {
                ack.await.unwrap();
            }
            println!("{:.0}", n as f64 / started.elapsed().as_secs_f64());
        }
        "delete" => {
            let _ = js.delete_stream(arg(2)).await;
        }
        other => panic!("unknown command {other}"),
    }
}
