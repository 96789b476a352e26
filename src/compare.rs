//! Comparing the file with the master table in the loader, so that only the rows that are
//! new or differ are staged.
//!
//! The real files are sorted by key, and the master table's primary key gives its rows in
//! the same order. One pass over both, a merge join, therefore finds every unchanged row
//! without the database doing anything but read its index in order: an unchanged reload
//! stages nothing, and a next-day file stages its 1.5 % (docs/performance.md). Staging the
//! whole file first and comparing in SQL cost more than the reference's own COPY.
//!
//! Equal bytes in the binary COPY format are equal values, so a row whose bytes match the
//! master's is certainly unchanged and is skipped. A row whose bytes differ is staged, and
//! the database's own comparison (the delta's `IS DISTINCT FROM`) has the last word: a value
//! the server spells differently (a numeric's scale, say) costs one staged row, never a
//! wrong count.
//!
//! The master is read on a second connection that imports the load transaction's snapshot,
//! so it sees exactly what the merge will see. It needs the key columns to sort byte-wise
//! (collation "C" or "POSIX", as `schema.sql` declares them): the loader can then order keys
//! exactly as the server does. Otherwise, or when the file's keys go backwards, the load
//! compares in the database as before.
//!
//! A key may repeat in a run of adjacent records (the day's records are transactions: a
//! record, then its amendments). The merge join goes on: every record of the run after the
//! first is staged, whatever the master holds, so the last one reaches the merge whether or
//! not the first was found unchanged; staging keeps the last of each key, and the run is
//! counted here, where every record is seen.

use std::cmp::Ordering;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::Client;

use crate::db::{self, DbConfig};
use crate::error::Error;
use crate::layout::Layout;
use crate::pgcopy::{self, leading_fields, next_field};
use crate::report::Repeat;
use crate::sql;

/// Master chunks in flight between the reading task and the parser thread.
const DEPTH: usize = 8;
/// The reading task batches the server's one-message-per-row stream into chunks this big.
const BATCH: usize = 256 * 1024;

/// What to do with one file row.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// The master holds this key with exactly these values: nothing to stage.
    Unchanged,
    /// New, or different: stage it for the merge.
    Stage,
}

/// Keys repeated in adjacent runs, as the comparison counted them.
#[derive(Debug, Clone, Default)]
pub struct Repeats {
    /// Records whose key is the one before's (dropped: the last of a run wins).
    pub records: u64,
    /// The first few repeated keys, in file order, with (up to five of) their lines.
    pub examples: Vec<Repeat>,
}

/// Repeated keys shown, and lines per key: as the staged path's checks show them.
const REPEAT_EXAMPLES: usize = 5;
const REPEAT_LINES: usize = 5;

/// Why the comparison stopped before the end of the file.
#[derive(Debug)]
pub enum Stop {
    /// This line's key was less than the one before it: the file is not sorted, so the
    /// merge join cannot go on.
    NotAscending { line: u64 },
    /// Reading the master table failed.
    Master(Error),
}

/// The master table's rows, parsed one at a time from its binary COPY stream.
struct MasterRows {
    rx: mpsc::Receiver<Result<Bytes, Error>>,
    buf: BytesMut,
    /// Length of the current (parsed, not yet consumed) row at the front of `buf`.
    row: usize,
    header: bool,
    ended: bool,
}

impl MasterRows {
    fn new(rx: mpsc::Receiver<Result<Bytes, Error>>) -> MasterRows {
        MasterRows {
            rx,
            buf: BytesMut::new(),
            row: 0,
            header: false,
            ended: false,
        }
    }

    /// Makes `need` bytes available at the front of `buf`.
    fn fill(&mut self, need: usize) -> Result<(), Error> {
        while self.buf.len() < need {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
                Some(Err(e)) => return Err(e),
                None => return Err(ended_mid_row()),
            }
        }
        Ok(())
    }

    /// The 16-bit word at `at`, reading on until it is there.
    fn i16_at(&mut self, at: usize) -> Result<i16, Error> {
        self.fill(at + 2)?;
        pgcopy::i16_at(&self.buf, at).ok_or_else(ended_mid_row)
    }

    /// The 32-bit word at `at`, reading on until it is there.
    fn i32_at(&mut self, at: usize) -> Result<i32, Error> {
        self.fill(at + 4)?;
        pgcopy::i32_at(&self.buf, at).ok_or_else(ended_mid_row)
    }

    /// The current row (its field count word first), or `None` past the last one.
    fn current(&mut self) -> Result<Option<&[u8]>, Error> {
        if self.ended {
            return Ok(None);
        }
        if self.row == 0 {
            if !self.header {
                // Signature, flags word, then a header extension of the length given.
                self.fill(pgcopy::HEADER_LEN)?;
                if !self.buf.starts_with(pgcopy::SIGNATURE) {
                    return Err(Error::Internal(
                        "the master table's COPY stream has no binary header".into(),
                    ));
                }
                let ext = self.i32_at(pgcopy::EXTENSION_LEN_AT)?.max(0) as usize;
                self.fill(pgcopy::HEADER_LEN + ext)?;
                self.buf.advance(pgcopy::HEADER_LEN + ext);
                self.header = true;
            }
            let fields = self.i16_at(0)?;
            if fields < 0 {
                self.ended = true;
                return Ok(None);
            }
            let mut at = 2;
            for _ in 0..fields {
                let len = self.i32_at(at)?;
                at += 4;
                if len > 0 {
                    at += len as usize;
                    self.fill(at)?;
                }
            }
            self.row = at;
        }
        Ok(Some(&self.buf[..self.row]))
    }

    fn advance(&mut self) {
        self.buf.advance(self.row);
        self.row = 0;
    }
}

fn ended_mid_row() -> Error {
    Error::Internal("the master table's COPY stream ended in the middle of a row".into())
}

/// Orders two keys (their fields, length words included) as collation "C" orders them:
/// column by column, each by its bytes, a prefix before what extends it. A key is never
/// NULL, so [`next_field`] reading NULL as empty does not matter here.
fn key_order(a: &[u8], b: &[u8]) -> Ordering {
    let (mut a, mut b) = (a, b);
    loop {
        match (next_field(&mut a), next_field(&mut b)) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => match x.cmp(y) {
                Ordering::Equal => {}
                other => return other,
            },
        }
    }
}

/// The merge join of the file's rows against the master's, run on the parser thread.
pub struct Comparer {
    master: MasterRows,
    keys: usize,
    prev_key: Vec<u8>,
    /// First line of the current key's run, and how many records the run has had.
    run_line: u64,
    run_len: u64,
    /// Where the current run's example is, if it got one.
    run_example: Option<usize>,
    pub repeats: Repeats,
    /// Stops the reading task (and with it the second connection) when the load ends early.
    _reader: AbortOnDrop,
}

impl Comparer {
    fn new(keys: usize, rx: mpsc::Receiver<Result<Bytes, Error>>, reader: AbortOnDrop) -> Self {
        Comparer {
            master: MasterRows::new(rx),
            keys,
            prev_key: Vec::new(),
            run_line: 0,
            run_len: 0,
            run_example: None,
            repeats: Repeats::default(),
            _reader: reader,
        }
    }

    /// Decides for one encoded file row, given as its fields in master column order (length
    /// words included, no field count and no line number).
    pub fn decide(&mut self, fields: &[u8], line: u64) -> Result<Decision, Stop> {
        let key = leading_fields(fields, self.keys);
        if !self.prev_key.is_empty() {
            match key_order(&self.prev_key, key) {
                Ordering::Less => {}
                Ordering::Equal => {
                    self.repeated(line);
                    return Ok(Decision::Stage);
                }
                Ordering::Greater => return Err(Stop::NotAscending { line }),
            }
        }
        self.run_line = line;
        self.run_len = 1;
        self.run_example = None;
        self.prev_key.clear();
        self.prev_key.extend_from_slice(key);
        loop {
            let Some(row) = self.master.current().map_err(Stop::Master)? else {
                return Ok(Decision::Stage);
            };
            let master = row.get(2..).unwrap_or_default();
            match key_order(leading_fields(master, self.keys), key) {
                // A master row the file does not hold: it stays as it is.
                Ordering::Less => self.master.advance(),
                Ordering::Equal => {
                    let same = master == fields;
                    self.master.advance();
                    return Ok(if same {
                        Decision::Unchanged
                    } else {
                        Decision::Stage
                    });
                }
                Ordering::Greater => return Ok(Decision::Stage),
            }
        }
    }
}

impl Comparer {
    /// Counts a record whose key is the one before's, and notes it in the examples.
    fn repeated(&mut self, line: u64) {
        self.repeats.records += 1;
        self.run_len += 1;
        let examples = &mut self.repeats.examples;
        if self.run_len == 2 && examples.len() < REPEAT_EXAMPLES {
            examples.push(Repeat {
                key: key_text(&self.prev_key),
                lines: vec![self.run_line as i64],
            });
            self.run_example = Some(examples.len() - 1);
        }
        if let Some(e) = self.run_example.and_then(|i| examples.get_mut(i)) {
            if e.lines.len() < REPEAT_LINES {
                e.lines.push(line as i64);
            }
        }
    }
}

/// A key's fields as the staged path's checks show it: the columns' text joined by spaces.
fn key_text(key: &[u8]) -> String {
    let mut rest = key;
    let mut parts = Vec::new();
    while let Some(f) = next_field(&mut rest) {
        parts.push(String::from_utf8_lossy(f).into_owned());
    }
    parts.join(" ")
}

struct AbortOnDrop(Option<tokio::task::AbortHandle>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(h) = &self.0 {
            h.abort();
        }
    }
}

/// Whether the loader can compare the file with the master table itself: the table has
/// rows (an empty one has nothing to compare with) and its keys lead the layout and sort
/// byte-wise, as the file's are compared. `Ok(Err(why))` when it cannot.
pub async fn applies(
    tx: &tokio_postgres::Transaction<'_>,
    layout: &'static Layout,
) -> Result<Result<(), String>, Error> {
    let leading = layout.columns.iter().take_while(|c| c.key).count();
    let keys = layout.key_names().len();
    if keys == 0 || leading != keys {
        return Ok(Err("the key does not lead the layout".into()));
    }
    let looking = |e: tokio_postgres::Error| db::fail(&format!("looking at {}", layout.table), &e);
    // Two statements, the cheap one first: on an empty table (every fresh load) the
    // collation question is moot, and in a new session it costs 2.0-2.4 ms of catalog
    // lookups and planning against 0.5-0.9 ms for the emptiness alone (psql \timing).
    let empty: bool = tx
        .query_one(sql::is_empty(layout).as_str(), &[])
        .await
        .map_err(looking)?
        .get(0);
    if empty {
        return Ok(Err(format!(
            "{} is empty: nothing to compare with",
            layout.table
        )));
    }
    let bytewise: Option<bool> = tx
        .query_one(sql::keys_sort_bytewise(layout).as_str(), &[])
        .await
        .map_err(looking)?
        .get(0);
    if bytewise != Some(true) {
        let why = "its key columns do not use collation \"C\"; comparing in the database";
        tracing::info!(table = layout.table, "{why}");
        return Ok(Err(why.into()));
    }
    Ok(Ok(()))
}

/// Starts reading the master table in key order on a second connection, under the load
/// transaction's snapshot, for a table [`applies`] said yes to. `Ok(Err(why))` means compare
/// in the database.
pub async fn open(
    tx: &tokio_postgres::Transaction<'_>,
    cfg: &DbConfig,
    layout: &'static Layout,
) -> Result<Result<Comparer, String>, Error> {
    let keys = layout.key_names().len();
    let snapshot: String = tx
        .query_one("SELECT pg_export_snapshot()", &[])
        .await
        .map_err(|e| db::fail("exporting the load's snapshot", &e))?
        .get(0);
    if !snapshot.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        return Err(Error::Internal(format!(
            "unexpected snapshot name {snapshot:?}"
        )));
    }
    // A second connection the server refuses (max_connections, say) only costs speed; it is
    // tried once, briefly, as the load's transaction waits idle meanwhile.
    let reader = match db::connect_second(cfg).await {
        Ok(c) => c,
        Err(e) => {
            let why = format!(
                "no second connection to read the master table ({e}); compared in the database"
            );
            tracing::warn!(table = layout.table, "{why}");
            return Ok(Err(why));
        }
    };
    let reading = |e: tokio_postgres::Error| {
        db::fail(
            &format!("reading {} to compare with the file", layout.table),
            &e,
        )
    };
    // The sort is the primary key's own order; without it the planner might sort the whole
    // table when an index scan gives the rows in order for free.
    reader
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
             SET TRANSACTION SNAPSHOT '{snapshot}'; SET LOCAL enable_sort = off"
        ))
        .await
        .map_err(|e| match e.code() {
            Some(code) if snapshot_gone(code) => Error::Transient(format!(
                "reading {} to compare with the file: the load's snapshot is gone, so its \
                 own connection was lost ({}); nothing was committed, rerun the load",
                layout.table,
                db::chain(&e)
            )),
            _ => reading(e),
        })?;
    let stream = reader
        .copy_out(sql::copy_out_master(layout).as_str())
        .await
        .map_err(reading)?;
    let (chunks, rx) = mpsc::channel(DEPTH);
    let table = layout.table;
    let task = tokio::spawn(forward(reader, stream, chunks, table));
    tracing::debug!(table, "comparing with the master table in the loader");
    Ok(Ok(Comparer::new(
        keys,
        rx,
        AbortOnDrop(Some(task.abort_handle())),
    )))
}

/// True if importing the snapshot the load's transaction just exported failed because that
/// transaction is gone (its backend terminated or the server shutting down between the export
/// and the import): `55000` "could not import the requested snapshot … The source process …
/// is not running anymore", or `22023` "invalid snapshot identifier" once the export is
/// cleaned up. The name itself was checked, so neither is a bug (70) or bad data (65): the load
/// lost its connection (75), as the soak (`tests/soak.rs`) found.
fn snapshot_gone(code: &tokio_postgres::error::SqlState) -> bool {
    use tokio_postgres::error::SqlState;
    *code == SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE
        || *code == SqlState::INVALID_PARAMETER_VALUE
}

/// Hands the master's COPY stream to the parser thread in batches, until it ends or the
/// parser stops listening.
async fn forward(
    reader: Client,
    stream: tokio_postgres::CopyOutStream,
    chunks: mpsc::Sender<Result<Bytes, Error>>,
    table: &'static str,
) {
    let mut stream = std::pin::pin!(stream);
    let mut batch = BytesMut::with_capacity(BATCH + 4096);
    loop {
        match stream.next().await {
            Some(Ok(b)) => {
                batch.extend_from_slice(&b);
                if batch.len() >= BATCH && chunks.send(Ok(batch.split().freeze())).await.is_err() {
                    break;
                }
            }
            Some(Err(e)) => {
                let err = db::fail(&format!("reading {table} to compare with the file"), &e);
                let _ = chunks.send(Err(err)).await;
                break;
            }
            None => {
                if !batch.is_empty() {
                    let _ = chunks.send(Ok(batch.split().freeze())).await;
                }
                break;
            }
        }
    }
    drop(reader);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One binary COPY field sequence from text fields (`None` is NULL).
    fn fields(values: &[Option<&str>]) -> Vec<u8> {
        let mut out = Vec::new();
        for v in values {
            match v {
                Some(s) => {
                    out.extend_from_slice(&(s.len() as i32).to_be_bytes());
                    out.extend_from_slice(s.as_bytes());
                }
                None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        out
    }

    fn stream(rows: &[Vec<u8>], ncols: i16) -> Vec<u8> {
        let mut s = pgcopy::SIGNATURE.to_vec();
        s.extend_from_slice(&0i32.to_be_bytes());
        s.extend_from_slice(&4i32.to_be_bytes());
        s.extend_from_slice(b"ext!");
        for r in rows {
            s.extend_from_slice(&ncols.to_be_bytes());
            s.extend_from_slice(r);
        }
        s.extend_from_slice(&pgcopy::TRAILER.to_be_bytes());
        s
    }

    /// A comparer over `master`, delivered in chunks of `chunk` bytes (1: every boundary).
    fn comparer(master: &[Vec<u8>], ncols: i16, keys: usize, chunk: usize) -> Comparer {
        let bytes = stream(master, ncols);
        let (tx, rx) = mpsc::channel(bytes.len() + 1);
        for c in bytes.chunks(chunk) {
            tx.try_send(Ok(Bytes::copy_from_slice(c))).unwrap();
        }
        Comparer::new(keys, rx, AbortOnDrop(None))
    }

    fn row(k1: &str, k2: &str, v: Option<&str>) -> Vec<u8> {
        fields(&[Some(k1), Some(k2), v])
    }

    #[test]
    fn the_merge_join_skips_equal_rows_and_stages_the_rest() {
        let master = [
            row("000001", "01", Some("a")),
            row("000001", "02", None),
            row("000002", "01", Some("b")),
            row("000003", "01", Some("c")),
            row("000009", "01", Some("z")),
        ];
        for chunk in [1, 3, 7, 4096] {
            let mut c = comparer(&master, 3, 2, chunk);
            let d = |c: &mut Comparer, r: Vec<u8>| c.decide(&r, 1).unwrap();
            use Decision::*;
            assert_eq!(d(&mut c, row("000001", "01", Some("a"))), Unchanged);
            // NULL against NULL is equal; a value against NULL is not.
            assert_eq!(d(&mut c, row("000001", "02", None)), Unchanged);
            // New key between two master rows.
            assert_eq!(d(&mut c, row("000001", "03", Some("n"))), Stage);
            // 000002 is only in the master: passed over. 000003 differs.
            assert_eq!(d(&mut c, row("000003", "01", Some("C"))), Stage);
            assert_eq!(d(&mut c, row("000004", "01", Some("x"))), Stage);
            assert_eq!(d(&mut c, row("000009", "01", Some("z"))), Unchanged);
            // Past the master's last row everything is new.
            assert_eq!(d(&mut c, row("000010", "01", Some("y"))), Stage);
        }
    }

    #[test]
    fn adjacent_repeats_are_staged_and_counted_and_the_join_goes_on() {
        let master = [
            row("000001", "01", Some("a")),
            row("000002", "01", Some("b")),
            row("000003", "01", Some("c")),
        ];
        let mut c = comparer(&master, 3, 2, 3);
        let mut d = |r: Vec<u8>, line| c.decide(&r, line).unwrap();
        use Decision::*;
        // Unchanged, then amended twice: every later record of the run is staged (the last
        // one must reach the merge even though the first was unchanged).
        assert_eq!(d(row("000001", "01", Some("a")), 1), Unchanged);
        assert_eq!(d(row("000001", "01", Some("x")), 2), Stage);
        assert_eq!(d(row("000001", "01", Some("a")), 3), Stage);
        // The join goes on past the run.
        assert_eq!(d(row("000002", "01", Some("b")), 4), Unchanged);
        assert_eq!(d(row("000003", "01", Some("C")), 5), Stage);
        assert_eq!(d(row("000003", "01", Some("c")), 6), Stage);
        assert_eq!(d(row("000004", "01", None), 7), Stage);
        assert_eq!(c.repeats.records, 3);
        let shown: Vec<(&str, &[i64])> = c
            .repeats
            .examples
            .iter()
            .map(|r| (r.key.as_str(), r.lines.as_slice()))
            .collect();
        assert_eq!(
            shown,
            [("000001 01", &[1, 2, 3][..]), ("000003 01", &[5, 6][..])]
        );
    }

    #[test]
    fn examples_stop_at_five_keys_of_five_lines() {
        let mut c = comparer(&[], 3, 2, 4096);
        let mut line = 0;
        for k in 0..7 {
            for _ in 0..8 {
                line += 1;
                c.decide(&row(&format!("{k:06}"), "01", None), line)
                    .unwrap();
            }
        }
        assert_eq!(c.repeats.records, 7 * 7);
        assert_eq!(c.repeats.examples.len(), 5);
        assert!(c.repeats.examples.iter().all(|e| e.lines.len() == 5));
        assert_eq!(c.repeats.examples[1].lines, [9, 10, 11, 12, 13]);
    }

    #[test]
    fn a_key_that_goes_backwards_stops_the_comparison() {
        let master = [row("000001", "01", Some("a"))];
        let mut c = comparer(&master, 3, 2, 5);
        assert!(c.decide(&row("000002", "01", None), 1).is_ok());
        assert!(matches!(
            c.decide(&row("000001", "99", None), 7),
            Err(Stop::NotAscending { line: 7 })
        ));
    }

    #[test]
    fn keys_order_like_collation_c() {
        let k = |a: &str, b: &str| fields(&[Some(a), Some(b)]);
        // Column by column: the first column decides before the second is looked at.
        assert_eq!(key_order(&k("A", "Z"), &k("B", "A")), Ordering::Less);
        // A prefix sorts first, whatever the length words say.
        assert_eq!(key_order(&k("AB", "1"), &k("ABC", "0")), Ordering::Less);
        assert_eq!(key_order(&k("ABC", "0"), &k("AB", "1")), Ordering::Greater);
        // Bytes, not letters: '#' (0x23) < '0' < 'A' < 'a' < any UTF-8 multibyte.
        assert_eq!(key_order(&k("#", ""), &k("0", "")), Ordering::Less);
        assert_eq!(key_order(&k("Z", ""), &k("a", "")), Ordering::Less);
        assert_eq!(key_order(&k("z", ""), &k("é", "")), Ordering::Less);
        assert_eq!(key_order(&k("AB", "CD"), &k("AB", "CD")), Ordering::Equal);
    }

    #[test]
    fn a_broken_or_failing_master_stream_is_an_error_not_a_decision() {
        let bytes = stream(&[row("000001", "01", Some("a"))], 3);
        let (tx, rx) = mpsc::channel(4);
        tx.try_send(Ok(Bytes::copy_from_slice(&bytes[..bytes.len() - 6])))
            .unwrap();
        drop(tx);
        let mut c = Comparer::new(2, rx, AbortOnDrop(None));
        let e = c.decide(&row("000001", "01", Some("a")), 1).unwrap_err();
        assert!(matches!(e, Stop::Master(Error::Internal(ref m)) if m.contains("middle of a row")));

        let (tx, rx) = mpsc::channel(4);
        tx.try_send(Err(Error::Transient("connection lost".into())))
            .unwrap();
        let mut c = Comparer::new(2, rx, AbortOnDrop(None));
        let e = c.decide(&row("000001", "01", Some("a")), 1).unwrap_err();
        assert!(matches!(e, Stop::Master(Error::Transient(_))));

        let (tx, rx) = mpsc::channel(4);
        tx.try_send(Ok(Bytes::from_static(b"NOTCOPY-------------")))
            .unwrap();
        let mut c = Comparer::new(2, rx, AbortOnDrop(None));
        assert!(c.decide(&row("000001", "01", None), 1).is_err());
    }
}
