//! Records → PostgreSQL binary COPY stream, encoded by hand into large chunks.
//!
//! Two jobs with different reasons to change, so two modules: `encode` turns one record
//! into one checked COPY row (the per-field hot path, and the short cut `--validate-only`
//! takes), and `produce` drives a whole file through it on a blocking thread, cutting the
//! rows into chunks for the async COPY sink and keeping what the load must know afterwards
//! (problems, counts, which file line each row came from).

mod encode;
mod produce;

pub use encode::RowEncoder;
pub use produce::{
    chunk_buffer, produce, produce_rows, Chunks, LineMap, ParseOptions, Produced, CHANNEL_DEPTH,
    CHUNK_BYTES, FIRST_CHUNK_BYTES, MAX_PROBLEMS,
};

/// Files and a runner the tests of both modules share.
#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use super::{produce, ParseOptions, Produced};
    use crate::layout::ISSUER;

    pub(super) fn run(input: &[u8], opts: ParseOptions) -> (Produced, Vec<u8>) {
        let (tx, mut rx) = mpsc::channel(1024);
        let p = produce(input, &ISSUER, opts, tx, &|_, _| {});
        let mut all = Vec::new();
        while let Ok(c) = rx.try_recv() {
            all.extend_from_slice(&c);
        }
        (p, all)
    }

    pub(super) const GOOD: &str = "00123A|1|ACME CORP||||||||C|A||A|NY|2024-01-15";

    /// `head`, then `records` copies of [`GOOD`], then the trailer.
    pub(super) fn file_of(head: &str, records: usize) -> String {
        let mut input = String::from(head);
        for _ in 0..records {
            input.push_str(GOOD);
            input.push('\n');
        }
        input.push_str("999999|END\n");
        input
    }
}
