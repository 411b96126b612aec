//! Replays the committed fuzz corpus (`fuzz/corpus/parse_request/`) through the same driver as
//! the fuzz target, so every input the fuzzer kept stays a regression test on stable Rust.

use std::fs;
use std::path::Path;

#[test]
fn replays_the_parse_request_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/parse_request");
    let mut replayed = 0;
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
        let path = entry.expect("corpus directory entry").path();
        if !path.is_file() {
            continue;
        }
        let data = fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let outcome = std::panic::catch_unwind(|| percore::http1::fuzz_drive(&data));
        assert!(outcome.is_ok(), "fuzz_drive panicked on {}", path.display());
        replayed += 1;
    }
    assert!(replayed > 0, "the corpus in {} is empty", dir.display());
    println!("replayed {replayed} corpus inputs");
}
