//! cusip-loader: CUSIP PIP files into PostgreSQL, exactly, atomically, in constant memory.
//!
//! A run is `cli` (arguments) → `plan` (what to do, decided once) → `app` (the I/O). A file
//! goes `source` (bytes) → `parse` (records) → `convert` + `copy` (checked binary COPY rows)
//! → `load` (staging, checks, merge, journal: one transaction, its SQL in `sql`) → `report`.
//! The three record layouts are data in `layout`, and everything else is derived from them;
//! `schema` owns `--init-schema`, `error` the exit codes. Two modes load nothing and write
//! nothing: `status` (`--status`, what the journal says is loaded) and `check` (`--check`,
//! the pre-flight).

pub mod app;
pub mod aws;
pub mod check;
pub mod cli;
pub mod clock;
pub mod compare;
pub mod convert;
pub mod copy;
pub mod db;
pub mod error;
pub mod layout;
pub mod load;
pub mod locate;
pub mod parse;
pub mod pgcopy;
pub mod plan;
pub mod progress;
pub mod report;
pub mod s3;
pub mod schema;
pub mod secret;
pub mod source;
pub mod sql;
pub mod status;
pub mod tls;
