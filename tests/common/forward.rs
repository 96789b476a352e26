//! A TCP forwarder that can play a dead network path: it stops passing bytes while it keeps
//! both sockets open, which TCP keepalive cannot see through (the forwarder's kernel answers
//! every probe). `tests/net.rs` and the soak (`tests/soak.rs`) put it between the loader and
//! PostgreSQL or S3.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A TCP forwarder on 127.0.0.1 in front of `target`, one pair of threads per connection.
/// `freeze` stops every connection open at that moment from passing bytes, both ways,
/// while both of its sockets stay open (new connections still pass); `freeze_all` also
/// accepts new connections and passes nothing on them. Dropping it closes everything.
pub struct Forwarder {
    pub port: u16,
    shared: Arc<Shared>,
}

struct Shared {
    target: SocketAddr,
    /// The frozen flag of each connection opened so far.
    flags: Mutex<Vec<Arc<AtomicBool>>>,
    freeze_new: AtomicBool,
    /// Every socket, to be shut down on drop (and kept open until then).
    sockets: Mutex<Vec<TcpStream>>,
    stop: AtomicBool,
}

impl Forwarder {
    pub fn start(target: SocketAddr) -> Forwarder {
        Forwarder::on(TcpListener::bind("127.0.0.1:0").unwrap(), target)
    }

    /// A forwarder accepting on `listener` (which may live in another network namespace:
    /// a socket keeps the namespace it was made in).
    pub fn on(listener: TcpListener, target: SocketAddr) -> Forwarder {
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            target,
            flags: Mutex::new(Vec::new()),
            freeze_new: AtomicBool::new(false),
            sockets: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = conn else { continue };
                s.sockets.lock().unwrap().push(client.try_clone().unwrap());
                if s.freeze_new.load(Ordering::SeqCst) {
                    continue; // accepted, held open, never served
                }
                let Ok(server) = TcpStream::connect(s.target) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                s.sockets.lock().unwrap().push(server.try_clone().unwrap());
                let frozen = Arc::new(AtomicBool::new(false));
                s.flags.lock().unwrap().push(frozen.clone());
                for (from, to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let (frozen, shared) = (frozen.clone(), s.clone());
                    std::thread::spawn(move || pump(from, to, &frozen, &shared.stop));
                }
            }
        });
        Forwarder { port, shared }
    }

    /// Every connection open now stops passing bytes; both of its sockets stay open.
    pub fn freeze(&self) {
        for f in self.shared.flags.lock().unwrap().iter() {
            f.store(true, Ordering::SeqCst);
        }
    }

    /// `freeze`, and new connections too are accepted and then left unanswered.
    pub fn freeze_all(&self) {
        self.shared.freeze_new.store(true, Ordering::SeqCst);
        self.freeze();
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for s in self.shared.sockets.lock().unwrap().iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Copies `from` to `to` until either closes; while `frozen`, reads nothing (the bytes stay
/// in the kernel's buffers, then the window shuts).
fn pump(mut from: TcpStream, mut to: TcpStream, frozen: &AtomicBool, stop: &AtomicBool) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(20)));
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::SeqCst) {
        if frozen.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            // Read just as the freeze came: held back, like everything after it.
            Ok(_) if frozen.load(Ordering::SeqCst) => {}
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    let _ = from.shutdown(Shutdown::Both);
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            // Reset (a process that exits with bytes unread resets its socket): pass it on,
            // or the other side would wait on an open socket for ever.
            Err(_) => {
                let _ = to.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}
