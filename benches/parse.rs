//! Micro-benchmarks of the loader's CPU path, in MB/s: `cargo bench --bench parse`.
//!
//! The input is the bundled sample date repeated to a few MB per type, so each layout is
//! measured on realistic field mixes (30-character name segments, codes, three date
//! formats, empty optionals). `split` is the record reader and field splitter alone;
//! `encode` is the whole producer (read, split, check, convert, binary COPY encoding);
//! `field` the value converters one kind at a time.

use std::sync::OnceLock;

use bytes::BytesMut;
use cusip_loader::convert::{encode_field, Discard, Encoding};
use cusip_loader::copy::{produce, produce_rows, ParseOptions, RowEncoder};
use cusip_loader::layout::{FileType, Kind};
use cusip_loader::parse::{Fields, Next, RecordReader};
use divan::counter::BytesCount;
use divan::{black_box, Bencher};

fn main() {
    divan::main();
}

/// Target size of each type's input.
const TARGET: usize = 8 << 20;

fn sample(t: FileType) -> &'static [u8] {
    static DATA: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    let all = DATA.get_or_init(|| {
        FileType::ALL
            .iter()
            .map(|t| {
                let path = format!(
                    "{}/testdata/CED01-15{}.PIP",
                    env!("CARGO_MANIFEST_DIR"),
                    t.letter()
                );
                let text = std::fs::read(&path).expect("the bundled sample date");
                let records: Vec<&[u8]> = text
                    .split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty() && !l.starts_with(b"999999"))
                    .collect();
                let mut out = Vec::with_capacity(TARGET + 4096);
                while out.len() < TARGET {
                    for r in &records {
                        out.extend_from_slice(r);
                        out.push(b'\n');
                    }
                }
                out.extend_from_slice(b"999999\n");
                out
            })
            .collect()
    });
    &all[t as usize]
}

#[divan::bench(args = FileType::ALL)]
fn split(b: Bencher, t: FileType) {
    let data = sample(t);
    let ncols = t.layout().columns.len();
    b.counter(BytesCount::new(data.len())).bench_local(|| {
        let mut r = RecordReader::new(data);
        let mut fields = Fields::new(ncols);
        let mut n = 0usize;
        loop {
            match r.next_record() {
                Ok(Next::Record { data, .. }) => n += fields.split(data).count,
                Ok(Next::Trailer { .. }) => {}
                _ => break,
            }
        }
        black_box(n)
    });
}

#[divan::bench(args = FileType::ALL)]
fn encode(b: Bencher, t: FileType) {
    let data = sample(t);
    b.counter(BytesCount::new(data.len())).bench_local(|| {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(8);
        let drain = std::thread::spawn(move || {
            let mut n = 0usize;
            while let Some(c) = rx.blocking_recv() {
                n += c.len();
            }
            n
        });
        let p = produce(data, t.layout(), ParseOptions::default(), tx, &|_, _| {});
        assert!(p.problems.is_empty(), "{:?}", p.problems.first());
        black_box(drain.join().ok())
    });
}

/// What `--validate-only` does per file: every check, nothing written, nothing sent.
#[divan::bench(args = FileType::ALL)]
fn validate(b: Bencher, t: FileType) {
    let data = sample(t);
    b.counter(BytesCount::new(data.len())).bench_local(|| {
        let (tx, _rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(1);
        let enc = RowEncoder::new(t.layout(), Encoding::default());
        let opts = ParseOptions::default();
        let p = produce_rows(data, enc, Discard, None, opts, tx, &|_, _| {});
        assert!(p.problems.is_empty(), "{:?}", p.problems.first());
        black_box(p.records)
    });
}

/// Typical values of each kind, as the files carry them.
const FIELDS: [(&str, Kind, &[&str]); 4] = [
    (
        "varchar",
        Kind::Varchar(30),
        &[
            "GOLDMAN SACHS & CO LLC",
            "N",
            "USD",
            "OFFICIAL STATEMENT",
            "",
        ],
    ),
    (
        "date",
        Kind::Date,
        &["2023-09-26", "20000208", "03/30/2006", "0000-00-00"],
    ),
    ("integer", Kind::Integer, &["7", "2024", "-15", "123456"]),
    (
        "numeric",
        Kind::Numeric {
            precision: 12,
            scale: 3,
        },
        &["250.0", "6288.2", "0.125", "-17.5", "100"],
    ),
];

#[divan::bench(args = ["varchar", "date", "integer", "numeric"])]
fn field(b: Bencher, kind: &str) {
    let Some(&(_, k, values)) = FIELDS.iter().find(|f| f.0 == kind) else {
        return;
    };
    let bytes: usize = values.iter().map(|v| v.len()).sum();
    let mut out = BytesMut::with_capacity(1 << 16);
    let mut scratch = Vec::new();
    b.counter(BytesCount::new(bytes * 1000)).bench_local(|| {
        out.clear();
        for _ in 0..1000 {
            for v in values {
                let r = encode_field(
                    &mut out,
                    v.as_bytes(),
                    k,
                    false,
                    Encoding::Utf8,
                    &mut scratch,
                );
                black_box(r.is_ok());
            }
        }
        black_box(out.len())
    });
}
