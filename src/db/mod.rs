//! The database side of a load: settings ([`config`]), connecting ([`connect`]), and what
//! a server error means for the exit code ([`error`]).

mod config;
mod connect;
mod error;

pub use config::{apply_url, DbConfig, SESSION_SETTINGS};
pub use connect::{cancel, check_encoding, connect};
pub use error::{chain, classify, fail};
