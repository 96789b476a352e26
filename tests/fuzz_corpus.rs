//! Replays the committed fuzz corpus (issue 7) on stable, without cargo-fuzz or nightly.
//!
//! `tests/fuzz/` is a cargo-fuzz crate (`make fuzz`); its targets call the checks in
//! `tests/fuzz/src/lib.rs`, which this test compiles too, so every input the fuzzer kept
//! (`tests/fuzz/corpus/<target>/`, minimised) and every input that once broke an
//! invariant (`tests/fuzz/regressions/<target>/`) is checked here by the same code on
//! every `cargo test`.

#[path = "fuzz/src/lib.rs"]
mod check;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// The files of `tests/fuzz/<kind>/<target>/`, sorted (none if the directory is missing).
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz")
        .join(kind)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("read the corpus directory").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs every corpus and regression input of `target` through `check`, naming each one
/// that fails.
fn replay(target: &str, check: fn(&[u8])) {
    let corpus = inputs("corpus", target);
    let regressions = inputs("regressions", target);
    assert!(
        corpus.len() >= 10,
        "tests/fuzz/corpus/{target} holds {} files",
        corpus.len()
    );
    let mut failed = Vec::new();
    for path in corpus.iter().chain(&regressions) {
        let data = std::fs::read(path).expect("read a corpus file");
        if catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} inputs failed (reproduce one with `cargo fuzz run --fuzz-dir tests/fuzz \
         {target} FILE`):\n{}",
        failed.len(),
        corpus.len() + regressions.len(),
        failed.join("\n")
    );
    println!(
        "{target}: {} corpus and {} regression inputs checked",
        corpus.len(),
        regressions.len()
    );
}

#[test]
fn records_corpus_replays() {
    replay("records", check::check_file);
}

#[test]
fn values_corpus_replays() {
    replay("values", check::check_value);
}

/// The oracle itself, on values whose fate docs/design.md states (the README did, hence the name).
#[test]
fn the_oracle_agrees_with_the_readme() {
    use check::{oracle, Want, Why};
    use cusip_loader::convert::Encoding;
    use cusip_loader::layout::Kind;
    let num = Kind::Numeric {
        precision: 6,
        scale: 3,
    };
    let utf8 = Encoding::Utf8;
    assert_eq!(
        oracle(b"5.2505", num, false, utf8),
        Want::Reject(Why::TooManyDecimals { decimals: 4 })
    );
    assert_eq!(
        oracle(b"-005.2500", num, false, utf8),
        Want::Decimal {
            neg: true,
            int: "5".into(),
            frac: "25".into()
        }
    );
    assert_eq!(oracle(b"0000-00-00", Kind::Date, false, utf8), Want::Null);
    assert_eq!(oracle(b"20000102", Kind::Date, false, utf8), Want::Int4(1));
    assert_eq!(
        oracle(b"02/30/2024", Kind::Date, false, utf8),
        Want::Reject(Why::NoSuchDate)
    );
    assert_eq!(
        oracle(b"2147483648", Kind::Integer, false, utf8),
        Want::Reject(Why::IntegerRange)
    );
    assert_eq!(
        oracle(b"ABCDE ", Kind::Varchar(5), false, utf8),
        Want::Reject(Why::TooWide { chars: 6 })
    );
    assert_eq!(
        oracle(b"\x80\x93", Kind::Varchar(2), false, Encoding::Windows1252),
        Want::Text("€“".as_bytes().to_vec())
    );
    assert_eq!(
        oracle(b"", Kind::Varchar(6), true, utf8),
        Want::Reject(Why::EmptyKey)
    );
}
