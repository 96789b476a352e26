//! The answers a connection is owed, counted from the protocol's own framing as the bytes go
//! by.
//!
//! The watchdog ([`super::watch`]) must know whether the loader waits for an answer on a
//! quiet connection: a session the server shows idle is a lost answer if one is owed, and a
//! loader busy elsewhere (hashing the next file) if not. Guessing it from who spoke last is
//! wrong both ways, because tokio-postgres pipelines: a dropped prepared statement's
//! `Close` and `Sync` go out in the same write as the next request (a `COMMIT`, say), and
//! their answer comes back first. After it the loader has "heard last" while the `COMMIT`'s
//! own answer is still owed, and a path that died in between was waited on for ever (the
//! soak's seed 271441065 hung so in CI).
//!
//! Counting is exact instead. In protocol 3 every `Query` (`Q`), `Sync` (`S`) and
//! `FunctionCall` (`F`) the client sends is answered by exactly one `ReadyForQuery` (`Z`),
//! whatever comes between (an error skips ahead to the `Sync`; a COPY ends with its
//! `CommandComplete`, then the `Z`), and the startup ends with one `Z` of its own. So the
//! answers owed are requests written minus `Z`s read. Messages are a type byte and a length
//! (which counts itself), except in the startup phase, where the client's messages (an
//! `SSLRequest`, the `StartupMessage`) are a length and a 4-byte code, and the server
//! answers an `SSLRequest` with one bare byte. Once TLS is negotiated the socket carries
//! records, and the counting moves above TLS ([`super::socket::Counted`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The startup phase's request codes (the 4 bytes after the length).
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;

/// Requests and answers of one connection, shared with the watchdog.
#[derive(Debug, Default)]
pub struct Owed {
    asked: AtomicU64,
    answered: AtomicU64,
    /// The framing stopped making sense (a length too short to be one): the count cannot be
    /// trusted, so it says "owed", which at worst gives a quiet, idle connection up, where
    /// "not owed" could wait on a dead one for ever.
    lost_track: AtomicBool,
}

impl Owed {
    /// The loader waits for at least one answer on this connection.
    pub fn any(&self) -> bool {
        self.lost_track.load(Ordering::Relaxed)
            || self.asked.load(Ordering::Relaxed) > self.answered.load(Ordering::Relaxed)
    }
}

/// One direction's framing: where the next message header starts.
#[derive(Debug, Default)]
struct Framer {
    /// The header so far: a type byte and the length (5 bytes), or in the startup phase the
    /// length and the code (8 bytes).
    head: [u8; 8],
    have: usize,
    /// Body bytes still to pass before the next header.
    skip: usize,
}

impl Framer {
    /// Passes body bytes, then gathers a header of `len` bytes; returns it once complete.
    fn feed(&mut self, b: &mut &[u8], len: usize) -> Option<[u8; 8]> {
        let n = self.skip.min(b.len());
        self.skip -= n;
        *b = &b[n..];
        if b.is_empty() {
            return None;
        }
        let n = (len - self.have).min(b.len());
        self.head[self.have..self.have + n].copy_from_slice(&b[..n]);
        self.have += n;
        *b = &b[n..];
        if self.have < len {
            return None;
        }
        self.have = 0;
        Some(self.head)
    }

    /// At a message boundary: no header begun, no body left.
    fn between(&self) -> bool {
        self.have == 0 && self.skip == 0
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Both directions of one stream's plaintext protocol.
#[derive(Debug)]
pub struct Wire {
    sent: Framer,
    got: Framer,
    /// The client's messages are still the startup phase's (untyped).
    startup: bool,
    /// An `SSLRequest` (or `GSSENCRequest`) is out: the server's next byte is its answer.
    negotiating: bool,
    /// False once the bytes are no longer the plaintext protocol (TLS took over).
    counting: bool,
}

impl Default for Wire {
    fn default() -> Self {
        Wire {
            sent: Framer::default(),
            got: Framer::default(),
            startup: true,
            negotiating: false,
            counting: true,
        }
    }
}

impl Wire {
    /// From here on the bytes are TLS records: counted above TLS, if at all.
    pub fn stop(&mut self) {
        self.counting = false;
    }

    /// Bytes the client wrote.
    pub fn sent(&mut self, mut b: &[u8], owed: &Owed) {
        while self.counting && !b.is_empty() {
            let len = if self.startup { 8 } else { 5 };
            let Some(head) = self.sent.feed(&mut b, len) else {
                continue;
            };
            if self.startup {
                let (size, code) = (be32(&head[..4]) as usize, be32(&head[4..8]));
                let Some(skip) = size.checked_sub(8) else {
                    return self.lose(owed);
                };
                self.sent.skip = skip;
                match code {
                    SSL_REQUEST | GSSENC_REQUEST => self.negotiating = true,
                    CANCEL_REQUEST => {}
                    // The StartupMessage (protocol 3.x): answered, after authentication, by
                    // one `Z`; typed messages from here on.
                    v if v >> 16 == 3 => {
                        self.startup = false;
                        owed.asked.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => return self.lose(owed),
                }
            } else {
                let Some(skip) = (be32(&head[1..5]) as usize).checked_sub(4) else {
                    return self.lose(owed);
                };
                self.sent.skip = skip;
                if matches!(head[0], b'Q' | b'S' | b'F') {
                    owed.asked.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Bytes the client read.
    pub fn got(&mut self, mut b: &[u8], owed: &Owed) {
        while self.counting && !b.is_empty() {
            if self.negotiating && self.got.between() {
                // The answer to the negotiation request: one bare byte. Yes ('S', or 'G'
                // for GSS): what follows is encrypted.
                self.negotiating = false;
                if matches!(b[0], b'S' | b'G') {
                    self.counting = false;
                    return;
                }
                b = &b[1..];
                continue;
            }
            let Some(head) = self.got.feed(&mut b, 5) else {
                continue;
            };
            let Some(skip) = (be32(&head[1..5]) as usize).checked_sub(4) else {
                return self.lose(owed);
            };
            self.got.skip = skip;
            if head[0] == b'Z' {
                owed.answered.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn lose(&mut self, owed: &Owed) {
        self.counting = false;
        owed.lost_track.store(true, Ordering::Relaxed);
        tracing::debug!("lost track of the protocol's framing; every quiet wait counts as owed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A typed message: type, length, body.
    fn msg(t: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![t];
        m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    /// A startup-phase message: length, code, body.
    fn untyped(code: u32, body: &[u8]) -> Vec<u8> {
        let mut m = (body.len() as u32 + 8).to_be_bytes().to_vec();
        m.extend_from_slice(&code.to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    fn startup() -> Vec<u8> {
        untyped(196_608, b"user\0postgres\0database\0d\0\0")
    }

    fn ready() -> Vec<u8> {
        msg(b'Z', b"I")
    }

    /// Feeds `bytes` in pieces of `step` (1 = byte by byte), the way a socket may cut them.
    fn sent(w: &mut Wire, o: &Owed, bytes: &[u8], step: usize) {
        for piece in bytes.chunks(step) {
            w.sent(piece, o);
        }
    }

    fn got(w: &mut Wire, o: &Owed, bytes: &[u8], step: usize) {
        for piece in bytes.chunks(step) {
            w.got(piece, o);
        }
    }

    /// A session's first moments, without TLS: SSLRequest refused, startup, authentication,
    /// parameters, the first `Z`.
    fn session(w: &mut Wire, o: &Owed, step: usize) {
        sent(w, o, &untyped(SSL_REQUEST, b""), step);
        assert!(!o.any(), "an SSLRequest is not a request that owes a Z");
        got(w, o, b"N", step);
        sent(w, o, &startup(), step);
        assert!(o.any(), "the startup is answered by a Z");
        let mut answer = msg(b'R', &0u32.to_be_bytes());
        answer.extend(msg(b'S', b"client_encoding\0UTF8\0"));
        answer.extend(msg(b'K', &[0, 0, 0, 7, 1, 2, 3, 4]));
        answer.extend(ready());
        got(w, o, &answer, step);
        assert!(!o.any(), "the session is up");
    }

    #[test]
    fn a_pipelined_close_answered_first_leaves_the_commit_owed() {
        // The hang the soak found: Close + Sync of a dropped statement and the COMMIT in
        // one write; the Close's answer comes back, the COMMIT's is lost.
        for step in [1, 3, 64 * 1024] {
            let (mut w, o) = (Wire::default(), Owed::default());
            session(&mut w, &o, step);
            let mut out = msg(b'C', b"Ss1\0");
            out.extend(msg(b'S', b""));
            out.extend(msg(b'Q', b"COMMIT\0"));
            sent(&mut w, &o, &out, step);
            let mut back = msg(b'3', b"");
            back.extend(ready());
            got(&mut w, &o, &back, step);
            assert!(o.any(), "step {step}: the COMMIT's answer is still owed");
            let mut back = msg(b'C', b"COMMIT\0");
            back.extend(ready());
            got(&mut w, &o, &back, step);
            assert!(!o.any(), "step {step}");
        }
    }

    #[test]
    fn extended_queries_copy_and_errors_owe_one_answer_per_sync() {
        let (mut w, o) = (Wire::default(), Owed::default());
        session(&mut w, &o, 7);
        // Parse/Describe/Sync, then Bind/Execute/Sync, pipelined.
        let mut out = msg(b'P', b"s1\0SELECT 1\0\0\0");
        out.extend(msg(b'D', b"Ss1\0"));
        out.extend(msg(b'S', b""));
        out.extend(msg(b'B', b"\0s1\0\0\0\0\0\0\0"));
        out.extend(msg(b'E', b"\0\0\0\0\0"));
        out.extend(msg(b'S', b""));
        sent(&mut w, &o, &out, 5);
        let mut back = msg(b'1', b"");
        back.extend(msg(b't', &[0, 0]));
        back.extend(msg(b'T', &[0, 0]));
        back.extend(ready());
        got(&mut w, &o, &back, 2);
        assert!(o.any(), "the second Sync is owed");
        // An error answers the rest of the batch; still one Z.
        let mut back = msg(b'E', b"SERROR\0C42P01\0Mno\0\0");
        back.extend(ready());
        got(&mut w, &o, &back, 4);
        assert!(!o.any());
        // A COPY FROM STDIN: owed from the Sync through every CopyData to the final Z,
        // with a body far longer than any piece.
        let mut out = msg(b'B', b"\0\0\0\0\0\0\0\0");
        out.extend(msg(b'E', b"\0\0\0\0\0"));
        out.extend(msg(b'S', b""));
        sent(&mut w, &o, &out, 64 * 1024);
        got(&mut w, &o, &msg(b'G', &[1, 0, 0]), 1);
        let row = msg(b'd', &[b'Z'; 100_000]);
        sent(&mut w, &o, &row, 4096);
        sent(&mut w, &o, &msg(b'c', b""), 1);
        assert!(o.any(), "the COPY's answer is owed");
        let mut back = msg(b'C', b"COPY 1\0");
        back.extend(ready());
        got(&mut w, &o, &back, 64 * 1024);
        assert!(!o.any());
        // Notices and parameter changes come unasked, and owe nothing.
        got(&mut w, &o, &msg(b'N', b"SNOTICE\0Mhi\0\0"), 3);
        got(&mut w, &o, &msg(b'S', b"TimeZone\0UTC\0"), 3);
        assert!(!o.any());
        // Terminate is not answered.
        sent(&mut w, &o, &msg(b'X', b""), 1);
        assert!(!o.any());
    }

    #[test]
    fn tls_stops_the_count_below_it_and_a_fresh_wire_counts_above() {
        let (mut below, o) = (Wire::default(), Owed::default());
        sent(&mut below, &o, &untyped(SSL_REQUEST, b""), 8);
        got(&mut below, &o, b"S", 1);
        // Records now: nothing they hold is read as framing.
        sent(&mut below, &o, &[0x16, 3, 1, 0, 0x80, b'Q', b'S'], 1);
        got(&mut below, &o, &[0x16, 3, 3, 0, 0x10, b'Z', b'Z'], 1);
        assert!(!o.any());
        let mut above = Wire::default();
        sent(&mut above, &o, &startup(), 64);
        assert!(o.any());
        got(&mut above, &o, &ready(), 64);
        assert!(!o.any());
    }

    #[test]
    fn a_length_too_short_to_be_one_counts_as_owed() {
        let (mut w, o) = (Wire::default(), Owed::default());
        session(&mut w, &o, 64);
        got(&mut w, &o, &[b'Z', 0, 0, 0, 2], 64);
        assert!(o.any());
    }
}
