//! The watchdog: a connection that goes `--net-timeout` (T) without a byte while the loader
//! waits on it is looked at from outside, and given up when what is seen says the path is
//! dead.
//!
//! TCP covers what it can ([`super::socket`]): keepalive and, on Linux, `TCP_USER_TIMEOUT`
//! end a connection whose data stays unacknowledged, or whose window stays shut, for T; when
//! they do, the reason is kept here too. What TCP cannot see is the idle wait: while the
//! server works on a long statement neither side sends anything, and a box in the path that
//! still answers (a stuck proxy) keeps keepalive content. So when a connection has been quiet
//! for T while it waits to read, a fresh connection (bounded by [`DbConfig::brief`]) looks
//! for the load's backend in `pg_stat_activity` ([`verdict`] decides):
//!
//! - it is working (active, and not waiting on the loader): keep waiting, look again T/4
//!   later;
//! - it is idle (inside the load's transaction or not) while a request of the loader's is
//!   unanswered ([`super::wire`] counts them from the protocol): the answer or the request
//!   was lost; idle with nothing owed, the loader is busy elsewhere: look again T later;
//! - it is blocked sending to the loader, which is waiting to read: the path does not
//!   deliver;
//! - it waits for COPY data: dead if the socket has refused the loader's bytes for T/2;
//!   otherwise the loader's own input may be what is slow (an S3 stall has its own bound,
//!   [`crate::s3`], about 1.5 T), so dead only once the quiet reaches 1.75 T;
//! - it is gone, or no fresh connection could be made within the bound: dead.
//!
//! A server that answers the fresh connection with an error (too many connections, say) is
//! reachable and alive: keep waiting. The bound therefore holds for a path that is dead, not
//! for a server that is busy: a merge that runs longer than T is waited for, and if its
//! answer is then lost, that is seen within T/4 of the merge ending.
//!
//! Giving up drops the connection, so everything waiting on it fails at once as "closed";
//! the reason is kept for [`super::fail`] to put in the message (one per process: a run has
//! one load in flight, and stops at its first failure). When the fresh connection was made,
//! it first ends the old session, so that its transaction rolls back now instead of holding
//! the load's locks until the server notices; when the kernel gave the connection up, that
//! is tried in the background from a new connection, as the path may well be dead.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::{Client, Connection, SimpleQueryMessage};

use super::connect::connect_check;
use super::socket::{Progress, Watched};
use super::DbConfig;

/// Why the load's connection was given up, for the message of the statement it cut short.
static LOST: Mutex<Option<String>> = Mutex::new(None);

/// The reason a connection of this process was given up as dead, if one was.
pub fn lost() -> Option<String> {
    LOST.lock().ok().and_then(|g| g.clone())
}

fn keep(why: &str) {
    if let Ok(mut g) = LOST.lock() {
        if g.is_none() {
            *g = Some(why.to_string());
        }
    }
}

/// Runs `connection` until it ends, or until the watchdog gives it up.
pub(super) fn spawn<T>(
    connection: Connection<Watched, T>,
    progress: Arc<Progress>,
    cfg: DbConfig,
    pid: Arc<AtomicI32>,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut connection = std::pin::pin!(connection);
        let (why, connection_gave_up) = tokio::select! {
            r = &mut connection => match r {
                Ok(()) => (None, false),
                Err(e) => {
                    tracing::debug!("connection closed: {e}");
                    let why = by_tcp(&cfg, &e);
                    let gave_up = why.is_some();
                    (why, gave_up)
                }
            },
            why = watch(&cfg, &progress, &pid) => (Some(why), false),
        };
        if let Some(why) = why {
            tracing::warn!("{why}");
            keep(&why);
        }
        if connection_gave_up && pid.load(Ordering::Relaxed) != 0 {
            // The kernel gave up on a path a box in it may still hold open: end the old
            // session too, from a fresh connection if one can be made.
            let pid = pid.load(Ordering::Relaxed);
            let cfg = cfg.clone();
            tokio::spawn(async move {
                let brief = cfg.brief();
                if let Ok(Ok(c)) = tokio::time::timeout(brief, connect_check(&cfg)).await {
                    end_session(&c, pid, brief).await;
                }
            });
        }
        // Dropping the connection here fails whatever still waits on it.
    });
}

/// `host:port`, as the messages name the server.
fn place(cfg: &DbConfig) -> String {
    format!("{}:{}", cfg.host, cfg.port)
}

/// The kernel gave the connection up (`TCP_USER_TIMEOUT` or keepalive): why, in words. Its
/// error is ETIMEDOUT, or the last error the path returned while the kernel retransmitted
/// (a host or network unreachable; EINVAL for a blackhole route). Anything else (a reset, a
/// close, a TLS error) is an answer, not silence: `None`, and the message stays "lost".
fn by_tcp(cfg: &DbConfig, e: &tokio_postgres::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            let silent = matches!(
                io.raw_os_error(),
                Some(
                    libc::ETIMEDOUT
                        | libc::EHOSTUNREACH
                        | libc::ENETUNREACH
                        | libc::ENETDOWN
                        | libc::EINVAL
                )
            );
            if !silent {
                return None;
            }
            return Some(format!(
                "the connection to {} stopped answering (the kernel gave it up after {} s \
                 without an acknowledgement: {io})",
                place(cfg),
                cfg.net_timeout.as_secs()
            ));
        }
        source = s.source();
    }
    None
}

/// What the fresh connection saw of the load's session.
#[derive(Debug)]
enum Seen {
    /// No fresh connection, or no answer to it, within the bound.
    Unreachable(String),
    /// The server answered the fresh connection with an error: it is alive.
    Refused(String),
    /// No session with the load's pid.
    Gone,
    /// The session's `state` and `wait_event`.
    Session {
        state: Option<String>,
        wait_event: Option<String>,
    },
}

/// The connection as the watchdog measures it when it looks.
#[derive(Debug, Clone, Copy)]
struct Quiet {
    /// Since a byte last moved either way.
    quiet: Duration,
    /// A request of the loader's is unanswered (counted exactly, [`super::wire`]).
    owed: bool,
    /// How long the socket has refused the loader's bytes.
    write_stuck: Duration,
}

/// What to do: give up (with why), or look again once the connection has been quiet this
/// long.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Dead(String),
    LookAgainAt(Duration),
}

/// Decides from what was seen (see the module's list).
fn verdict(seen: &Seen, q: Quiet, t: Duration, pid: i32, brief: Duration) -> Verdict {
    let secs = |d: Duration| format!("{:.1} s", d.as_secs_f64());
    let quiet = secs(q.quiet);
    let soon = q.quiet + (t / 4).max(Duration::from_millis(250));
    match seen {
        Seen::Unreachable(e) => Verdict::Dead(format!(
            "no byte for {quiet} while the loader waited on it, and a fresh connection could not \
             be made within {}: {e}",
            secs(brief)
        )),
        Seen::Refused(e) => {
            tracing::debug!("the liveness check was refused ({e}); the server is up");
            Verdict::LookAgainAt(soon)
        }
        Seen::Gone => Verdict::Dead(format!(
            "no byte for {quiet} while the loader waited on it, and the server has no session \
             {pid} any more"
        )),
        Seen::Session { state, wait_event } => {
            let state = state.as_deref().unwrap_or("");
            let wait = wait_event.as_deref().unwrap_or("");
            // An idle session (in a transaction or not) that owes the loader an answer has
            // lost it, or never got the request. One that owes nothing is a loader busy
            // elsewhere (hashing the next file, reading S3 under its own bound): nothing to
            // say about the path yet.
            if state.starts_with("idle") {
                if q.owed {
                    return Verdict::Dead(format!(
                        "no byte for {quiet} while the loader waited on it, but the server's \
                         session {pid} is {state}: the answer or the request was lost on the way"
                    ));
                }
                return Verdict::LookAgainAt(q.quiet + t);
            }
            match wait {
                "ClientWrite" => Verdict::Dead(format!(
                    "no byte for {quiet} while the server's session {pid} was blocked sending to \
                     the loader"
                )),
                "ClientRead" if q.write_stuck >= t / 2 => Verdict::Dead(format!(
                    "for {quiet} the loader could send nothing while the server's session {pid} \
                     waited for data"
                )),
                "ClientRead" if q.quiet >= t + t * 3 / 4 => Verdict::Dead(format!(
                    "the server's session {pid} waited {quiet} for data that never arrived (the \
                     path lost it, or the loader's input stalled)"
                )),
                _ => Verdict::LookAgainAt(soon),
            }
        }
    }
}

/// Watches until the connection is to be given up; returns why.
async fn watch(cfg: &DbConfig, p: &Progress, pid: &AtomicI32) -> String {
    let t = cfg.net_timeout.max(Duration::from_secs(1));
    let tick = (t / 10).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut next = t;
    loop {
        tokio::time::sleep(tick).await;
        let quiet = p.quiet();
        if quiet < t {
            next = t;
            continue;
        }
        let pid = pid.load(Ordering::Relaxed);
        if quiet < next || !p.waiting_to_read() || pid == 0 {
            continue;
        }
        let (seen, check) = look(cfg, pid).await;
        // Bytes may have moved while it looked.
        let q = Quiet {
            quiet: p.quiet(),
            owed: p.owed(),
            write_stuck: p.write_stuck(),
        };
        if q.quiet < t {
            next = t;
            continue;
        }
        tracing::debug!(?seen, ?q, "liveness check");
        match verdict(&seen, q, t, pid, cfg.brief()) {
            Verdict::LookAgainAt(at) => next = at,
            Verdict::Dead(detail) => {
                // Awaited (the check's connection has just answered, so this takes
                // milliseconds; bounded all the same): the process may exit soon after.
                if let Some(c) = check {
                    end_session(&c, pid, cfg.brief() / 2).await;
                }
                return format!(
                    "the connection to {} stopped answering ({detail})",
                    place(cfg)
                );
            }
        }
    }
}

/// Looks for session `pid` on a fresh connection; the connection too, if one was made.
async fn look(cfg: &DbConfig, pid: i32) -> (Seen, Option<Client>) {
    let brief = cfg.brief();
    let attempt = async {
        let c = match connect_check(cfg).await {
            Ok(c) => c,
            Err(e) if e.answered() => return (Seen::Refused(e.text()), None),
            Err(e) => return (Seen::Unreachable(e.text()), None),
        };
        let q = format!("SELECT state, wait_event FROM pg_stat_activity WHERE pid = {pid}");
        let seen = match c.simple_query(&q).await {
            Ok(rows) => rows
                .iter()
                .find_map(|m| match m {
                    SimpleQueryMessage::Row(r) => Some(Seen::Session {
                        state: r.get(0).map(str::to_string),
                        wait_event: r.get(1).map(str::to_string),
                    }),
                    _ => None,
                })
                .unwrap_or(Seen::Gone),
            Err(e) if e.code().is_some() => Seen::Refused(super::chain(&e)),
            Err(e) => Seen::Unreachable(super::chain(&e)),
        };
        (seen, Some(c))
    };
    tokio::time::timeout(brief, attempt).await.unwrap_or((
        Seen::Unreachable(format!("no answer within {:.1} s", brief.as_secs_f64())),
        None,
    ))
}

/// Ends the given-up session from the fresh connection: its transaction then rolls back at
/// once and its locks go, instead of when the server notices (never, behind a stuck proxy
/// that holds its socket open).
async fn end_session(c: &Client, pid: i32, within: Duration) {
    let q = format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = {pid}");
    match tokio::time::timeout(within, c.simple_query(&q)).await {
        Ok(Ok(_)) => tracing::debug!("ended session {pid}"),
        Ok(Err(e)) => tracing::debug!("could not end session {pid}: {e}"),
        Err(_) => tracing::debug!("could not end session {pid}: no answer"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(4);

    /// The verdict on `seen` after `quiet` ms, with the loader having spoken last or not,
    /// and its bytes refused by the socket for `stuck` ms.
    fn v(seen: &Seen, quiet: u64, owed: bool, stuck: u64) -> Verdict {
        let q = Quiet {
            quiet: Duration::from_millis(quiet),
            owed,
            write_stuck: Duration::from_millis(stuck),
        };
        verdict(seen, q, T, 7, Duration::from_secs(2))
    }

    fn session(state: &str, wait: Option<&str>) -> Seen {
        Seen::Session {
            state: Some(state.into()),
            wait_event: wait.map(str::to_string),
        }
    }

    fn dead(v: &Verdict) -> bool {
        matches!(v, Verdict::Dead(_))
    }

    #[test]
    fn a_server_at_work_is_waited_for() {
        for wait in [
            None,
            Some("DataFileRead"),
            Some("relation"),
            Some("WALWrite"),
        ] {
            let got = v(&session("active", wait), 4000, true, 0);
            assert_eq!(
                got,
                Verdict::LookAgainAt(Duration::from_secs(5)),
                "{wait:?}"
            );
        }
        // It answers, if only to refuse: it is alive.
        assert!(!dead(&v(&Seen::Refused("53300".into()), 4000, true, 0)));
    }

    #[test]
    fn a_lost_answer_a_gone_session_or_no_path_is_dead() {
        let got = v(
            &session("idle in transaction", Some("ClientRead")),
            4000,
            true,
            0,
        );
        assert!(
            matches!(&got, Verdict::Dead(m) if m.contains("session 7 is idle in transaction")),
            "{got:?}"
        );
        assert!(dead(&v(&session("idle", None), 4000, true, 0)));
        assert!(dead(&v(&Seen::Gone, 4000, true, 0)));
        let got = v(&Seen::Unreachable("timed out".into()), 4000, true, 0);
        assert!(
            matches!(&got, Verdict::Dead(m) if m.contains("within 2.0 s: timed out")),
            "{got:?}"
        );
        assert!(dead(&v(
            &session("active", Some("ClientWrite")),
            4000,
            true,
            0
        )));
    }

    #[test]
    fn an_idle_session_nobody_waits_on_is_left_alone() {
        // Nothing owed: the loader is busy elsewhere, in a transaction or between files.
        for state in ["idle", "idle in transaction"] {
            let got = v(&session(state, Some("ClientRead")), 4000, false, 0);
            assert_eq!(got, Verdict::LookAgainAt(Duration::from_secs(8)), "{state}");
        }
    }

    #[test]
    fn a_copy_waiting_for_data_is_dead_once_the_socket_refuses_or_at_seven_quarters() {
        let copy = session("active", Some("ClientRead"));
        // The loader's input may be what is slow: not yet.
        assert!(!dead(&v(&copy, 4000, true, 0)));
        assert!(!dead(&v(&copy, 6000, true, 1000)));
        assert!(!dead(&v(&copy, 6900, true, 0)));
        // Bytes the socket will not take, while the server waits for bytes.
        assert!(dead(&v(&copy, 4000, true, 2000)));
        // Nothing at all for 1.75 T.
        assert!(dead(&v(&copy, 7000, true, 0)));
    }
}
