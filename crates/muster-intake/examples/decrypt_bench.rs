//! Decryption throughput: generates N MiB of CSV-like data, encrypts it
//! with our own age and OpenPGP writers, then times streaming decryption
//! (plaintext read through a 64 KiB buffer and dropped).
//!
//! `cargo run --release -p muster-intake --example decrypt_bench -- [MIB]`
//! prints `decrypt-bench mib=N age_mb_s=X pgp_mb_s=Y` (MB = 10^6 bytes of
//! plaintext per second).
#![allow(clippy::unwrap_used, clippy::expect_used)]
use muster_intake::decrypt::{
    decrypt_reader, encrypt_writer, DecryptionKey, Limits, OpenPgpKeyKind,
};
use std::io::{Read, Write};
use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("MIB must be a number"))
        .unwrap_or(256);
    let plain = csv(mib * 1024 * 1024);
    let age = DecryptionKey::generate_age();
    let pgp = DecryptionKey::generate_openpgp(OpenPgpKeyKind::Curve25519, "Bench <b@example.test>")
        .unwrap();
    let age_mb_s = measure(&plain, &age);
    let pgp_mb_s = measure(&plain, &pgp);
    println!("decrypt-bench mib={mib} age_mb_s={age_mb_s:.0} pgp_mb_s={pgp_mb_s:.0}");
}

/// Rows like an HR export, until `size` bytes.
fn csv(size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 200);
    out.extend_from_slice(b"Employee ID,First Name,Last Name,Email,Department,Start Date\n");
    let mut i = 0u64;
    while out.len() < size {
        let line = format!(
            "E{i:07},Name{},Surname{},person{i}@example.test,Dept {},20{:02}-{:02}-{:02}\n",
            i % 997,
            i % 1009,
            i % 37,
            i % 25,
            i % 12 + 1,
            i % 28 + 1
        );
        out.extend_from_slice(line.as_bytes());
        i += 1;
    }
    out.truncate(size);
    out
}

fn measure(plain: &[u8], key: &DecryptionKey) -> f64 {
    let mut w = encrypt_writer(Vec::new(), &key.public(), false).unwrap();
    w.write_all(plain).unwrap();
    let cipher = w.finish().unwrap();
    let start = Instant::now();
    let mut r = decrypt_reader(
        &cipher[..],
        std::slice::from_ref(key),
        &Limits::default(),
        None,
    )
    .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0usize;
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n;
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(total, plain.len());
    plain.len() as f64 / 1e6 / secs
}
