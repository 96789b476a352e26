//! The database side of a load: settings ([`config`]), connecting ([`connect`]) over the
//! loader's own socket ([`socket`]), which counts the answers owed ([`wire`]), the watchdog
//! that gives up a dead connection ([`watch`]), and what a server error means for the exit
//! code ([`error`]).

mod config;
mod connect;
mod error;
mod socket;
mod watch;
mod wire;

pub use config::{apply_url, DbConfig, SESSION_SETTINGS};
pub use connect::{cancel, check_encoding, connect, connect_briefly, connect_second};
pub use error::{chain, classify, fail, fail_commit, lost_connection};
