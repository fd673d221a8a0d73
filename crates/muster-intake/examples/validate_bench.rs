//! Times reading and mapping a CSV export, the import's validation pass
//! without storage: `cargo run --release --example validate_bench -- FILE MAPPING.toml`
#![allow(clippy::unwrap_used, clippy::expect_used)]
use muster_core::mapping::{MappingDoc, MappingFormat};
use muster_intake::records::{Format, Item, Limits, Record, RecordReader};
use std::collections::BTreeMap;
use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let doc = MappingDoc::parse(
        &std::fs::read_to_string(&args[2]).unwrap(),
        MappingFormat::Toml,
    )
    .unwrap();
    let t = Instant::now();
    let f = std::io::BufReader::new(std::fs::File::open(&args[1]).unwrap());
    let mut r = RecordReader::new(f, Format::Csv { delimiter: b',' }, Limits::default()).unwrap();
    let read_only = std::env::var("READ_ONLY").is_ok();
    let h: Vec<&str> = r
        .header()
        .unwrap()
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>();
    let m = doc.compile(&h.clone(), &BTreeMap::new()).unwrap();
    let (mut ok, mut bad) = (0, 0);
    while let Some(item) = r.next_item().unwrap() {
        if let Item::Record(Record::Fields { fields, .. }) = item {
            if read_only {
                ok += fields.len();
                continue;
            }
            let f: Vec<&str> = fields.iter().map(String::as_str).collect();
            match m.map_row(&f) {
                Ok(_) => ok += 1,
                Err(_) => bad += 1,
            }
        }
    }
    println!("{ok} ok, {bad} bad in {:.2}s", t.elapsed().as_secs_f64());
}
