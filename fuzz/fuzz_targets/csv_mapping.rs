//! The CSV / JSON-lines reader with a mapping: see
//! `muster_intake::fuzz::csv_mapping` for the input layout.
#![no_main]
use libfuzzer_sys::fuzz_target;
use muster_core::mapping::{MappingDoc, MappingFormat};
use std::sync::OnceLock;

fn example_mapping() -> &'static MappingDoc {
    static DOC: OnceLock<MappingDoc> = OnceLock::new();
    DOC.get_or_init(|| {
        MappingDoc::parse(
            include_str!("../../examples/hr/mapping.toml"),
            MappingFormat::Toml,
        )
        .expect("the example mapping parses")
    })
}

fuzz_target!(|data: &[u8]| {
    muster_intake::fuzz::csv_mapping(data, example_mapping());
});
