//! The loader's own socket to the server: TCP keepalive and `TCP_USER_TIMEOUT` from
//! `--net-timeout`, and a record of when bytes last moved each way.
//!
//! tokio-postgres can set keepalive and the user timeout on a socket it opens itself, but
//! then it keeps the socket and says nothing about its traffic. A statement that waits for
//! its result sends nothing, so the kernel's user timeout never fires, and keepalive probes
//! are answered by any live box in the path (a stuck proxy, a NAT that lost its state but
//! not its socket). Telling "the server is working" from "the path is gone" then needs to
//! know when the last byte came, so the socket is opened here, the same options are set on
//! it, and it is handed to `Config::connect_raw` inside a [`Watched`] stream that keeps
//! [`Progress`] for the watchdog ([`super::watch`]).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use socket2::{SockRef, TcpKeepalive};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

use super::wire::{Owed, Wire};
use super::DbConfig;

/// A TCP connection, or a Unix socket when the host is a directory (as libpq reads it).
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// When bytes last moved on one connection, each way, and what it is waiting for. Times are
/// milliseconds since the connection opened (see `now`), so that they fit in atomics.
#[derive(Debug)]
pub struct Progress {
    origin: Instant,
    last_read: AtomicU64,
    last_write: AtomicU64,
    /// The answers the loader waits for, counted from the protocol ([`super::wire`]).
    owed: Owed,
    /// The connection asked for bytes from the server and has none yet.
    read_pending: AtomicBool,
    /// Since when (0: not) the connection has had bytes to send that the socket would not
    /// take.
    write_pending_since: AtomicU64,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            origin: Instant::now(),
            last_read: AtomicU64::new(0),
            last_write: AtomicU64::new(0),
            owed: Owed::default(),
            read_pending: AtomicBool::new(false),
            write_pending_since: AtomicU64::new(0),
        }
    }

    /// Milliseconds since the connection opened, plus one: zero stays "never".
    fn now(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64 + 1
    }

    /// How long since a byte last moved either way.
    pub fn quiet(&self) -> Duration {
        let last = self
            .last_read
            .load(Ordering::Relaxed)
            .max(self.last_write.load(Ordering::Relaxed));
        Duration::from_millis(self.now().saturating_sub(last))
    }

    /// The loader waits for an answer on this connection: a request of its own is out and
    /// unanswered.
    pub fn owed(&self) -> bool {
        self.owed.any()
    }

    /// The connection is waiting for bytes from the server (not held back by a slow reader
    /// in the loader).
    pub fn waiting_to_read(&self) -> bool {
        self.read_pending.load(Ordering::Relaxed)
    }

    /// How long the socket has refused bytes the loader has to send (zero: it has not).
    pub fn write_stuck(&self) -> Duration {
        match self.write_pending_since.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            since => Duration::from_millis(self.now().saturating_sub(since)),
        }
    }
}

/// The socket, keeping [`Progress`] as bytes move.
pub struct Watched {
    inner: Stream,
    progress: Arc<Progress>,
    /// The plaintext protocol's framing, until TLS takes the socket over.
    wire: Wire,
}

impl Watched {
    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }
}

/// Opens the socket `cfg` names (the caller bounds the time it may take). On TCP, Nagle is
/// off (the protocol's messages are already batched), and keepalive and the user timeout
/// follow `--net-timeout`.
pub async fn open(cfg: &DbConfig) -> io::Result<Watched> {
    let inner = if cfg.host.starts_with('/') {
        Stream::Unix(UnixStream::connect(format!("{}/.s.PGSQL.{}", cfg.host, cfg.port)).await?)
    } else {
        let mut last = None;
        let mut found = None;
        for addr in tokio::net::lookup_host((cfg.host.as_str(), cfg.port)).await? {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    found = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let s = match (found, last) {
            (Some(s), _) => s,
            (None, Some(e)) => return Err(e),
            (None, None) => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} resolves to no address", cfg.host),
                ))
            }
        };
        s.set_nodelay(true)?;
        let (idle, interval, count) = cfg.keepalive();
        let sock = SockRef::from(&s);
        sock.set_tcp_keepalive(
            &TcpKeepalive::new()
                .with_time(idle)
                .with_interval(interval)
                .with_retries(count),
        )?;
        // Unacknowledged data (or a window that stays shut) for longer than this, and the
        // kernel gives the connection up: a dead path while the loader sends, as in a COPY.
        #[cfg(target_os = "linux")]
        sock.set_tcp_user_timeout(Some(cfg.net_timeout.max(Duration::from_secs(1))))?;
        Stream::Tcp(s)
    };
    Ok(Watched {
        inner,
        progress: Arc::new(Progress::new()),
        wire: Wire::default(),
    })
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = match &mut this.inner {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        };
        let p = &this.progress;
        match &polled {
            Poll::Pending => p.read_pending.store(true, Ordering::Relaxed),
            Poll::Ready(result) => {
                p.read_pending.store(false, Ordering::Relaxed);
                if result.is_ok() && buf.filled().len() > before {
                    p.last_read.store(p.now(), Ordering::Relaxed);
                    this.wire.got(&buf.filled()[before..], &p.owed);
                }
            }
        }
        polled
    }
}

impl Watched {
    /// Keeps the times and counts the protocol for a write of `bufs` that `polled` says how
    /// much of was taken.
    fn wrote<'a>(
        &mut self,
        polled: &Poll<io::Result<usize>>,
        bufs: impl IntoIterator<Item = &'a [u8]>,
    ) {
        let p = &self.progress;
        if let Poll::Ready(Ok(n)) = polled {
            let mut left = *n;
            for b in bufs {
                let take = left.min(b.len());
                self.wire.sent(&b[..take], &p.owed);
                left -= take;
            }
        }
        match polled {
            Poll::Pending => {
                let _ = p.write_pending_since.compare_exchange(
                    0,
                    p.now(),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
            Poll::Ready(Ok(n)) if *n > 0 => {
                p.write_pending_since.store(0, Ordering::Relaxed);
                p.last_write.store(p.now(), Ordering::Relaxed);
            }
            Poll::Ready(_) => p.write_pending_since.store(0, Ordering::Relaxed),
        }
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = match &mut self.inner {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        };
        self.wrote(&polled, [buf]);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = match &mut self.inner {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        };
        self.wrote(&polled, bufs.iter().map(|b| &**b));
        polled
    }

    fn is_write_vectored(&self) -> bool {
        match &self.inner {
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::Unix(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.inner {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.inner {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// A TLS connector for a [`Watched`] socket: once TLS is up the socket carries records, so
/// the protocol is counted above TLS instead, by the [`Counted`] stream it hands out.
pub struct Counting<M>(pub M);

impl<M> MakeTlsConnect<Watched> for Counting<M>
where
    M: MakeTlsConnect<Watched>,
    <M::TlsConnect as TlsConnect<Watched>>::Future: Send + 'static,
    M::Stream: Send,
    <M::TlsConnect as TlsConnect<Watched>>::Error: Send,
{
    type Stream = Counted<M::Stream>;
    type TlsConnect = CountingConnect<M::TlsConnect>;
    type Error = M::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Self::TlsConnect, Self::Error> {
        self.0.make_tls_connect(domain).map(CountingConnect)
    }
}

/// [`Counting`]'s connector for one connection.
pub struct CountingConnect<C>(C);

type Handshake<S, E> = Pin<Box<dyn Future<Output = Result<S, E>> + Send>>;

impl<C> TlsConnect<Watched> for CountingConnect<C>
where
    C: TlsConnect<Watched>,
    C::Future: Send + 'static,
    C::Stream: Send,
    C::Error: Send,
{
    type Stream = Counted<C::Stream>;
    type Error = C::Error;
    type Future = Handshake<Counted<C::Stream>, C::Error>;

    fn connect(self, mut stream: Watched) -> Self::Future {
        // Whether the SSLRequest came first or TLS is direct, the socket's bytes are records
        // from here on.
        stream.wire.stop();
        let progress = stream.progress();
        let handshake = self.0.connect(stream);
        Box::pin(async move {
            Ok(Counted {
                inner: handshake.await?,
                progress,
                wire: Wire::default(),
            })
        })
    }
}

/// A TLS stream over a [`Watched`] socket, counting the protocol's requests and answers in
/// its plaintext.
pub struct Counted<S> {
    inner: S,
    progress: Arc<Progress>,
    wire: Wire,
}

impl<S: TlsStream + Unpin> TlsStream for Counted<S> {
    fn channel_binding(&self) -> ChannelBinding {
        self.inner.channel_binding()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            this.wire.got(&buf.filled()[before..], &this.progress.owed);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            this.wire
                .sent(&buf[..n.min(buf.len())], &this.progress.owed);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Progress as the watchdog reads it, over a real socket pair: the answers owed, and
    /// quiet time that starts again with every byte.
    #[tokio::test]
    async fn progress_follows_the_bytes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cfg = DbConfig {
            host: "127.0.0.1".into(),
            port,
            dbname: "d".into(),
            user: "u".into(),
            password: None,
            connect_timeout: Duration::from_secs(5),
            sslmode: crate::tls::SslMode::Disable,
            sslrootcert: None,
            connect_retry: Duration::ZERO,
            lock_timeout: Duration::ZERO,
            statement_timeout: Duration::ZERO,
            net_timeout: Duration::from_secs(3),
        };
        let (ours, accepted) = tokio::join!(open(&cfg), listener.accept());
        let mut ours = ours.unwrap();
        let (mut theirs, _) = accepted.unwrap();
        let p = ours.progress();
        // A typed message: type, length, body.
        let msg = |t: u8, body: &[u8]| {
            let mut m = vec![t];
            m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
            m.extend_from_slice(body);
            m
        };
        let mut startup = 16u32.to_be_bytes().to_vec();
        startup.extend_from_slice(&196_608u32.to_be_bytes());
        startup.extend_from_slice(b"user\0u\0\0");
        assert!(!p.owed());
        ours.write_all(&startup).await.unwrap();
        assert!(p.owed(), "the startup is answered by a ReadyForQuery");
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(p.quiet() >= Duration::from_millis(30));
        theirs.write_all(&msg(b'Z', b"I")).await.unwrap();
        let mut b = [0u8; 6];
        ours.read_exact(&mut b).await.unwrap();
        assert!(!p.owed());
        assert!(p.quiet() < Duration::from_millis(30));
        // A dropped statement's Close and Sync, and a COMMIT, in one vectored write; the
        // Close's answer comes first, and the COMMIT's is still owed after it.
        let close = [msg(b'C', b"Ss1\0"), msg(b'S', b"")].concat();
        let commit = msg(b'Q', b"COMMIT\0");
        let slices = [io::IoSlice::new(&close), io::IoSlice::new(&commit)];
        let n = ours.write_vectored(&slices).await.unwrap();
        ours.write_all(&[close.clone(), commit.clone()].concat()[n..])
            .await
            .unwrap();
        let mut seen = vec![0u8; close.len() + commit.len()];
        theirs.read_exact(&mut seen).await.unwrap();
        theirs
            .write_all(&[msg(b'3', b""), msg(b'Z', b"T")].concat())
            .await
            .unwrap();
        let mut b = [0u8; 11];
        ours.read_exact(&mut b).await.unwrap();
        assert!(p.owed(), "the COMMIT's answer is owed");
        theirs
            .write_all(&[msg(b'C', b"COMMIT\0"), msg(b'Z', b"I")].concat())
            .await
            .unwrap();
        let mut b = [0u8; 18];
        ours.read_exact(&mut b).await.unwrap();
        assert!(!p.owed());
        assert_eq!(p.write_stuck(), Duration::ZERO);
    }
}
