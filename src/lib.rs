//! cusip-loader: CUSIP PIP files into PostgreSQL, exactly, atomically, in constant memory.
//!
//! The pipeline is `source` (bytes) → `parse` (records) → `convert` + `copy` (checked binary
//! COPY rows) → `load` (staging, `merge`, journal, one transaction) → `report`. The three
//! record layouts are data in `layout`, and everything else is derived from them.

pub mod app;
pub mod cli;
pub mod compare;
pub mod convert;
pub mod copy;
pub mod db;
pub mod error;
pub mod layout;
pub mod load;
pub mod locate;
pub mod merge;
pub mod parse;
pub mod pgcopy;
pub mod progress;
pub mod report;
pub mod s3;
pub mod schema;
pub mod secret;
pub mod source;
pub mod tls;
