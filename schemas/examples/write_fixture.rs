//! Writes `tests/fixtures/log-v1.bin`. Run once per format version; never rewrite an existing
//! fixture (the point of it is that old bytes keep decoding).

use girok_schemas::{encode_event, fixture};

fn main() -> std::io::Result<()> {
    let records: Vec<_> = fixture::fixture_events()
        .iter()
        .map(|e| (e.seq, encode_event(e)))
        .collect();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/log-v1.bin");
    std::fs::write(path, fixture::write_records(&records))?;
    println!("wrote {} events to {path}", records.len());
    Ok(())
}
