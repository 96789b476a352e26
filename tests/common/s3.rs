//! S3 test harness: one moto server per test binary, plus a proxy that cuts object bodies.
//!
//! moto (`moto_server`, installed by `make setup` into target/venv) listens on a free
//! 127.0.0.1 port and is killed when the test binary exits. Its state lives in memory and is
//! shared by every test of the binary: give each test its own bucket (`new_bucket`), and call
//! `reset` only from a test that runs alone.
//!
//! moto accepts any credentials and checks no signatures, but it answers 403 to an object
//! GET/HEAD/DELETE that carries no `Authorization` header at all (anonymous access to a
//! private object), so the raw requests made here send a dummy one. A PUT body must not be
//! sent as a form (`application/x-www-form-urlencoded`): the server would swallow it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

pub struct S3Server {
    pub port: u16,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    pid: libc::pid_t,
    log: PathBuf,
}

static SERVER: OnceLock<S3Server> = OnceLock::new();
static BUCKETS: AtomicUsize = AtomicUsize::new(0);

/// Sent with every raw request: moto wants some `Authorization`, and checks nothing in it.
const DUMMY_AUTH: &str = "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/s3/aws4_request, \
                          SignedHeaders=host, Signature=0000";
const IO_TIMEOUT: Duration = Duration::from_secs(300);

/// `$MOTO_SERVER`, else `target/venv/bin/moto_server` of this package.
fn moto_server() -> PathBuf {
    let path = std::env::var_os("MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/venv/bin/moto_server")
        });
    assert!(
        path.exists(),
        "moto_server not found at {}: run `make setup` (or set MOTO_SERVER)",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

extern "C" fn stop_server() {
    if let Some(s) = SERVER.get() {
        unsafe {
            libc::kill(s.pid, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(3);
            while libc::waitpid(s.pid, std::ptr::null_mut(), libc::WNOHANG) == 0 {
                if Instant::now() > deadline {
                    libc::kill(s.pid, libc::SIGKILL);
                    libc::waitpid(s.pid, std::ptr::null_mut(), 0);
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = std::fs::remove_file(&s.log);
    }
}

/// True once something on `port` answers an HTTP request.
fn answers(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req = format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    let mut buf = Vec::new();
    s.write_all(req.as_bytes()).is_ok()
        && s.read_to_end(&mut buf).is_ok()
        && buf.starts_with(b"HTTP/1.")
}

impl Drop for S3Server {
    /// Only servers started by `start_with` are ever dropped (the shared one lives in a
    /// static and is stopped at exit).
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

impl S3Server {
    fn start() -> S3Server {
        Self::start_with(&[])
    }

    /// A private moto server with extra environment (e.g. `INITIAL_NO_AUTH_ACTION_COUNT`),
    /// stopped when dropped.
    pub fn start_with(env: &[(&str, &str)]) -> S3Server {
        let exe = moto_server();
        let mut failure = String::new();
        // A port picked here may be taken before moto binds it: then moto exits; try again.
        for _ in 0..3 {
            let port = free_port();
            let log = std::env::temp_dir()
                .join(format!("cusip-test-moto-{}-{port}.log", std::process::id()));
            let out = std::fs::File::create(&log).unwrap();
            let mut child = Command::new(&exe)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}: run `make setup`", exe.display()));
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    failure = format!(
                        "moto_server exited ({status}):\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                    break;
                }
                if answers(port) {
                    return S3Server {
                        port,
                        endpoint: format!("http://127.0.0.1:{port}"),
                        pid: child.id() as libc::pid_t,
                        log,
                    };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    failure = format!(
                        "moto_server did not answer on port {port} within 60 s:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = std::fs::remove_file(&log);
        }
        panic!("cannot start moto_server: {failure}");
    }

    /// Creates `bucket` (no error if it exists already).
    pub fn create_bucket(&self, bucket: &str) {
        let r = request(self.port, "PUT", &format!("/{}", encode(bucket)), &[], b"");
        r.expect_ok(&format!("create bucket {bucket}"));
    }

    /// A new, empty bucket with a name unique to this test binary run.
    pub fn new_bucket(&self, tag: &str) -> String {
        let name = format!(
            "test-{}-{}",
            tag.to_ascii_lowercase().replace('_', "-"),
            BUCKETS.fetch_add(1, Ordering::SeqCst)
        );
        self.create_bucket(&name);
        name
    }

    /// Uploads `body` to `bucket/key` and returns its ETag, quotes stripped (moto: the hex
    /// MD5 of the body).
    pub fn put(&self, bucket: &str, key: &str, body: &[u8]) -> String {
        let r = request(
            self.port,
            "PUT",
            &object_path(bucket, key),
            &[("Content-Type", "application/octet-stream")],
            body,
        );
        r.expect_ok(&format!("put {bucket}/{key}"));
        r.header("etag")
            .unwrap_or_else(|| panic!("put {bucket}/{key}: no ETag in the response"))
            .trim_matches('"')
            .to_string()
    }

    pub fn put_file(&self, bucket: &str, key: &str, path: &Path) -> String {
        let body =
            std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        self.put(bucket, key, &body)
    }

    /// Deletes `bucket/key` (no error if it does not exist).
    pub fn delete(&self, bucket: &str, key: &str) {
        let r = request(self.port, "DELETE", &object_path(bucket, key), &[], b"");
        r.expect_ok(&format!("delete {bucket}/{key}"));
    }

    /// A plain GET of `bucket/key`, straight from the server.
    pub fn get(&self, bucket: &str, key: &str) -> Response {
        request(self.port, "GET", &object_path(bucket, key), &[], b"")
    }

    /// Wipes every bucket and object of the server (and any other moto state).
    pub fn reset(&self) {
        let r = request(self.port, "POST", "/moto-api/reset", &[], b"");
        r.expect_ok("moto reset");
    }
}

/// The shared moto server of this test binary, started on first use.
pub fn s3() -> &'static S3Server {
    SERVER.get_or_init(|| {
        let s = S3Server::start();
        unsafe {
            libc::atexit(stop_server);
        }
        s
    })
}

/// Environment for the loader process so it talks only to the server at `endpoint`.
pub fn aws_env(endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", endpoint),
        ("CUSIP_S3_FORCE_PATH_STYLE", "true"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/dev/null"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A raw HTTP response. `body` is everything the server sent after the head until it closed
/// the connection, so a cut body is shorter than its `Content-Length`.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn expect_ok(&self, what: &str) {
        assert!(
            (200..300).contains(&self.status),
            "{what}: HTTP {}: {}",
            self.status,
            self.text()
        );
    }
}

/// One HTTP/1.1 request to 127.0.0.1:`port` on a fresh connection (`Connection: close`),
/// with a dummy `Authorization` header unless `headers` has one. `target` is sent as is
/// (e.g. `/bucket/key?x=y`): see `object_path` for encoding keys.
pub fn request(
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
    {
        head.push_str(&format!("Authorization: {DUMMY_AUTH}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || matches!(method, "PUT" | "POST") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    // A connection cut mid-body may end in a reset: keep what arrived.
    let _ = s.read_to_end(&mut raw);
    parse_response(&raw).unwrap_or_else(|| {
        panic!(
            "{method} {target}: no HTTP response: {:?}",
            String::from_utf8_lossy(&raw)
        )
    })
}

fn parse_response(raw: &[u8]) -> Option<Response> {
    let end = find_head_end(raw)?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Some(Response {
        status,
        headers,
        body: raw[end..].to_vec(),
    })
}

/// `/bucket/key` with the key percent-encoded (its `/` kept).
pub fn object_path(bucket: &str, key: &str) -> String {
    format!("/{}/{}", encode(bucket), encode(key))
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Index just past the `\r\n\r\n` that ends an HTTP head.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// A TCP proxy on 127.0.0.1 in front of `target_port` that cuts the bodies of the first
/// `cuts` object GET responses (status 200 or 206) after `cut_after` bytes, then closes the
/// client connection. Each client connection carries one request (`Connection: close` is
/// forced on both request and response); everything else passes through unchanged.
pub struct CutProxy {
    pub port: u16,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl CutProxy {
    /// How many responses have been cut so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for CutProxy {
    /// Stops accepting; connections in flight finish on their own.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

struct CutRule {
    target_port: u16,
    cut_after: usize,
    cuts: usize,
    claimed: AtomicUsize,
    hits: Arc<AtomicUsize>,
}

pub fn cut_proxy(target_port: u16, cut_after: usize, cuts: usize) -> CutProxy {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let rule = Arc::new(CutRule {
        target_port,
        cut_after,
        cuts,
        claimed: AtomicUsize::new(0),
        hits: hits.clone(),
    });
    let stopped = stop.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            if stopped.load(Ordering::SeqCst) {
                break;
            }
            let Ok(client) = conn else { continue };
            let rule = rule.clone();
            std::thread::spawn(move || {
                let _ = proxy_one(&client, &rule);
                let _ = client.shutdown(Shutdown::Both);
            });
        }
    });
    CutProxy {
        port,
        endpoint: format!("http://127.0.0.1:{port}"),
        hits,
        stop,
    }
}

/// Reads from `s` (after the bytes already in `buf`) up to the end of an HTTP head.
/// Returns (head, bytes read past it), or None on EOF before a complete head.
fn read_head(s: &mut TcpStream, mut buf: Vec<u8>) -> std::io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = find_head_end(&buf) {
            let rest = buf.split_off(end);
            return Ok(Some((buf, rest)));
        }
        if buf.len() > 1 << 20 {
            return Err(std::io::Error::other("HTTP head over 1 MiB"));
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// `head` with `Connection: close` (any `Connection`/`Keep-Alive` headers replaced).
fn force_close(head: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let already = text.split("\r\n").skip(1).any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("connection") && v.trim().eq_ignore_ascii_case("close")
        })
    });
    if already {
        return head.to_vec();
    }
    let mut out = String::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        let name = line.split_once(':').map(|(k, _)| k.trim()).unwrap_or("");
        if name.eq_ignore_ascii_case("connection") || name.eq_ignore_ascii_case("keep-alive") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

/// A GET of an object: the path (before `?`) has a non-empty segment after the bucket.
fn is_object_get(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    let mut parts = text.split("\r\n").next().unwrap_or("").split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "GET" {
        return false;
    }
    let mut path = target.split('?').next().unwrap_or("");
    // absolute-form: http://host:port/bucket/key
    if let Some(rest) = path.split_once("://").map(|(_, r)| r) {
        path = rest.find('/').map_or("", |i| &rest[i..]);
    }
    let mut segments = path.trim_start_matches('/').splitn(2, '/');
    let bucket = segments.next().unwrap_or("");
    let key = segments.next().unwrap_or("");
    !bucket.is_empty() && !key.is_empty()
}

fn proxy_one(client: &TcpStream, rule: &CutRule) -> std::io::Result<()> {
    client.set_read_timeout(Some(IO_TIMEOUT))?;
    let _ = client.set_nodelay(true);
    let mut client_in = client.try_clone()?;
    let mut client_out = client.try_clone()?;
    let Some((req_head, req_rest)) = read_head(&mut client_in, Vec::new())? else {
        return Ok(());
    };
    let object_get = is_object_get(&req_head);

    let server = TcpStream::connect(("127.0.0.1", rule.target_port))?;
    server.set_read_timeout(Some(IO_TIMEOUT))?;
    let _ = server.set_nodelay(true);
    let mut server_out = server.try_clone()?;
    let mut server_in = server.try_clone()?;
    server_out.write_all(&force_close(&req_head))?;
    server_out.write_all(&req_rest)?;
    // The rest of the request body (whatever its framing) flows on until the client closes.
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_in, &mut server_out);
    });

    let result = relay_response(&mut server_in, &mut client_out, object_get, rule);
    let _ = server.shutdown(Shutdown::Both);
    result
}

fn relay_response(
    server: &mut TcpStream,
    client: &mut TcpStream,
    object_get: bool,
    rule: &CutRule,
) -> std::io::Result<()> {
    let mut pending = Vec::new();
    loop {
        let Some((head, rest)) = read_head(server, pending)? else {
            return Ok(());
        };
        let status: u16 = String::from_utf8_lossy(&head)
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if (100..200).contains(&status) {
            // Interim response (100 Continue): pass it on and read the real one.
            client.write_all(&head)?;
            pending = rest;
            continue;
        }
        let cut = object_get
            && matches!(status, 200 | 206)
            && rule
                .claimed
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                    (n < rule.cuts).then_some(n + 1)
                })
                .is_ok();
        client.write_all(&force_close(&head))?;
        if !cut {
            client.write_all(&rest)?;
            std::io::copy(server, client)?;
            return Ok(());
        }
        let mut left = rule.cut_after;
        let first = rest.len().min(left);
        client.write_all(&rest[..first])?;
        left -= first;
        let mut chunk = [0u8; 16 * 1024];
        while left > 0 {
            let n = server.read(&mut chunk[..left.min(16 * 1024)])?;
            if n == 0 {
                break;
            }
            client.write_all(&chunk[..n])?;
            left -= n;
        }
        client.flush()?;
        rule.hits.fetch_add(1, Ordering::SeqCst);
        let _ = client.shutdown(Shutdown::Both);
        return Ok(());
    }
}
