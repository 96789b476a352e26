//! S3 test harness: one moto server per test binary, plus a fault proxy in front of it that
//! cuts object bodies or answers S3 errors (500, 503, `SlowDown`) instead of forwarding.
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
use std::sync::{Arc, Mutex, OnceLock};
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

/// What kind of request a fault rule applies to (path-style addressing: `/bucket/key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Any GET of an object, whole or ranged.
    ObjectGet,
    /// A GET of an object without `Range` (the loader's first, whole-object request).
    WholeGet,
    /// A GET of an object with `Range` (a resume, or a part of a parallel download).
    RangedGet,
    /// A HEAD of an object.
    ObjectHead,
    /// A ListObjectsV2 page (`GET /bucket?list-type=2…`).
    List,
    /// Any request at all.
    Any,
}

/// What a rule does to the requests it claims.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and body (for HEAD: no body) instead of forwarding: the
    /// server never sees the request.
    Status { status: u16, body: String },
    /// Forward, and cut a 200/206 response's body after `after` bytes, then close.
    Cut { after: usize },
}

/// Runs when a rule serves a fault: for `Status` before the answer is written, for `Cut`
/// after the partial body and before the connection closes. The client cannot go on
/// before it returns, so a test can change the server's state at an exact point.
pub type Hook = Arc<dyn Fn() + Send + Sync>;

/// One fault rule: the first `times` requests of `kind` (and, with `key`, whose path
/// contains it) get `fault`. Rules are tried in order; the first with budget left wins.
#[derive(Clone)]
pub struct Rule {
    pub kind: Kind,
    pub key: Option<String>,
    pub fault: Fault,
    pub times: usize,
    pub hook: Option<Hook>,
}

/// An S3 error document, as S3 sends it with a 4xx/5xx.
pub fn s3_error_body(code: &str, message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
         <Message>{message}</Message><RequestId>FAULTPROXY</RequestId>\
         <HostId>fault-proxy</HostId></Error>"
    )
}

impl Rule {
    /// Answers `status` with `body` to the first `times` requests of `kind`.
    pub fn status(kind: Kind, status: u16, body: impl Into<String>, times: usize) -> Rule {
        Rule {
            kind,
            key: None,
            fault: Fault::Status {
                status,
                body: body.into(),
            },
            times,
            hook: None,
        }
    }

    /// S3's `500 InternalError`.
    pub fn internal_error(kind: Kind, times: usize) -> Rule {
        let body = s3_error_body(
            "InternalError",
            "We encountered an internal error. Please try again.",
        );
        Rule::status(kind, 500, body, times)
    }

    /// S3's `503 ServiceUnavailable`.
    pub fn service_unavailable(kind: Kind, times: usize) -> Rule {
        let body = s3_error_body("ServiceUnavailable", "Please reduce your request rate.");
        Rule::status(kind, 503, body, times)
    }

    /// S3's throttling answer, `503 SlowDown`.
    pub fn slow_down(kind: Kind, times: usize) -> Rule {
        let body = s3_error_body("SlowDown", "Please reduce your request rate.");
        Rule::status(kind, 503, body, times)
    }

    /// Cuts the body of the first `times` 200/206 answers to `kind` after `after` bytes.
    pub fn cut(kind: Kind, after: usize, times: usize) -> Rule {
        Rule {
            kind,
            key: None,
            fault: Fault::Cut { after },
            times,
            hook: None,
        }
    }

    /// Only requests whose path contains `key` (e.g. `CED01-15A.PIP`).
    pub fn key(mut self, key: &str) -> Rule {
        self.key = Some(key.to_string());
        self
    }

    /// Runs `hook` each time this rule serves its fault.
    pub fn then(mut self, hook: impl Fn() + Send + Sync + 'static) -> Rule {
        self.hook = Some(Arc::new(hook));
        self
    }
}

/// A request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// The target, e.g. `/bucket/pif/CED01-15R.PIP?x-id=GetObject`.
    pub target: String,
    pub range: Option<String>,
    /// The index of the rule that faulted it, if any.
    pub fault: Option<usize>,
}

impl Seen {
    fn parse(head: &[u8]) -> Seen {
        let text = String::from_utf8_lossy(head);
        let mut lines = text.split("\r\n");
        let mut parts = lines.next().unwrap_or("").split(' ');
        let method = parts.next().unwrap_or("").to_string();
        let mut target = parts.next().unwrap_or("").to_string();
        // absolute-form: http://host:port/bucket/key
        if let Some((_, rest)) = target.split_once("://") {
            target = rest
                .find('/')
                .map_or("/".to_string(), |i| rest[i..].to_string());
        }
        let range = lines
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("range"))
            .map(|(_, v)| v.trim().to_string());
        Seen {
            method,
            target,
            range,
            fault: None,
        }
    }

    /// (bucket, key, query) of a path-style target.
    fn parts(&self) -> (&str, &str, &str) {
        let (path, query) = self.target.split_once('?').unwrap_or((&self.target, ""));
        let mut segments = path.trim_start_matches('/').splitn(2, '/');
        let bucket = segments.next().unwrap_or("");
        let key = segments.next().unwrap_or("");
        (bucket, key, query)
    }

    /// True if this request is of `kind` and its path contains `key` (when given).
    pub fn is(&self, kind: Kind, key: Option<&str>) -> bool {
        let (bucket, k, query) = self.parts();
        let object = !bucket.is_empty() && !k.is_empty();
        let get = self.method == "GET";
        let of_kind = match kind {
            Kind::ObjectGet => get && object,
            Kind::WholeGet => get && object && self.range.is_none(),
            Kind::RangedGet => get && object && self.range.is_some(),
            Kind::ObjectHead => self.method == "HEAD" && object,
            Kind::List => {
                get && !bucket.is_empty() && k.is_empty() && query.contains("list-type=2")
            }
            Kind::Any => true,
        };
        of_kind
            && key.map_or(true, |key| {
                self.target.split('?').next().unwrap_or("").contains(key)
            })
    }
}

struct RuleState {
    rule: Rule,
    claimed: AtomicUsize,
    served: AtomicUsize,
}

impl RuleState {
    /// Takes one of the rule's `times`, if any is left.
    fn claim(&self) -> bool {
        self.claimed
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.rule.times).then_some(n + 1)
            })
            .is_ok()
    }
}

struct Shared {
    target_port: u16,
    rules: Vec<RuleState>,
    seen: Mutex<Vec<Seen>>,
}

impl Shared {
    /// The first rule with budget left that `req` matches and whose fault is decided at
    /// this stage (`Status` on the request, `Cut` on a 200/206 response).
    fn claim(&self, req: &Seen, response_status: Option<u16>) -> Option<usize> {
        self.rules.iter().position(|r| {
            let stage = match (&r.rule.fault, response_status) {
                (Fault::Status { .. }, None) => true,
                (Fault::Cut { .. }, Some(s)) => matches!(s, 200 | 206),
                _ => false,
            };
            stage && req.is(r.rule.kind, r.rule.key.as_deref()) && r.claim()
        })
    }

    fn served(&self, i: usize, seen_index: usize) {
        self.rules[i].served.fetch_add(1, Ordering::SeqCst);
        if let Some(s) = self.seen.lock().unwrap().get_mut(seen_index) {
            s.fault = Some(i);
        }
    }
}

/// A TCP proxy on 127.0.0.1 in front of `target_port` that serves faults by its rules and
/// passes everything else through unchanged. Each client connection carries one request
/// (`Connection: close` is forced on both request and response). It counts the faults it
/// actually served and records every request it saw.
pub struct FaultProxy {
    pub port: u16,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
}

/// The cutting proxy of `cut_proxy` (a `FaultProxy` with one `Cut` rule).
pub type CutProxy = FaultProxy;

impl FaultProxy {
    /// How many faults (of every rule) have been served so far.
    pub fn hits(&self) -> usize {
        self.shared
            .rules
            .iter()
            .map(|r| r.served.load(Ordering::SeqCst))
            .sum()
    }

    /// How many faults rule `i` (its index in the list given) has served.
    pub fn served(&self, i: usize) -> usize {
        self.shared.rules[i].served.load(Ordering::SeqCst)
    }

    /// Every request seen so far, in arrival order.
    pub fn requests(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// How many requests of `kind` (with `key` in the path, if given) were seen.
    pub fn seen(&self, kind: Kind, key: Option<&str>) -> usize {
        self.requests().iter().filter(|s| s.is(kind, key)).count()
    }

    /// The requests seen, one line each, for assertion messages.
    pub fn log(&self) -> String {
        self.requests()
            .iter()
            .map(|s| {
                format!(
                    "{} {}{}{}\n",
                    s.method,
                    s.target,
                    s.range
                        .as_ref()
                        .map(|r| format!(" Range: {r}"))
                        .unwrap_or_default(),
                    s.fault
                        .map(|i| format!(" <- fault of rule {i}"))
                        .unwrap_or_default()
                )
            })
            .collect()
    }
}

impl Drop for FaultProxy {
    /// Stops accepting; connections in flight finish on their own.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// A proxy in front of `target_port` applying `rules` (see `Rule`).
pub fn fault_proxy(target_port: u16, rules: Vec<Rule>) -> FaultProxy {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(Shared {
        target_port,
        rules: rules
            .into_iter()
            .map(|rule| RuleState {
                rule,
                claimed: AtomicUsize::new(0),
                served: AtomicUsize::new(0),
            })
            .collect(),
        seen: Mutex::new(Vec::new()),
    });
    let stopped = stop.clone();
    let state = shared.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            if stopped.load(Ordering::SeqCst) {
                break;
            }
            let Ok(client) = conn else { continue };
            let state = state.clone();
            std::thread::spawn(move || {
                let _ = proxy_one(&client, &state);
                let _ = client.shutdown(Shutdown::Both);
            });
        }
    });
    FaultProxy {
        port,
        endpoint: format!("http://127.0.0.1:{port}"),
        shared,
        stop,
    }
}

/// A proxy that cuts the bodies of the first `cuts` object GET responses (status 200 or
/// 206) after `cut_after` bytes, then closes the client connection.
pub fn cut_proxy(target_port: u16, cut_after: usize, cuts: usize) -> CutProxy {
    fault_proxy(
        target_port,
        vec![Rule::cut(Kind::ObjectGet, cut_after, cuts)],
    )
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

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        412 => "Precondition Failed",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Fault",
    }
}

fn proxy_one(client: &TcpStream, shared: &Shared) -> std::io::Result<()> {
    client.set_read_timeout(Some(IO_TIMEOUT))?;
    let _ = client.set_nodelay(true);
    let mut client_in = client.try_clone()?;
    let mut client_out = client.try_clone()?;
    let Some((req_head, req_rest)) = read_head(&mut client_in, Vec::new())? else {
        return Ok(());
    };
    let req = Seen::parse(&req_head);
    let index = {
        let mut seen = shared.seen.lock().unwrap();
        seen.push(req.clone());
        seen.len() - 1
    };

    if let Some(i) = shared.claim(&req, None) {
        let rule = &shared.rules[i].rule;
        let Fault::Status { status, body } = &rule.fault else {
            unreachable!("only Status faults are claimed on the request")
        };
        if let Some(hook) = &rule.hook {
            hook();
        }
        // A HEAD answer has no body (its Content-Length would describe the GET's).
        let body = if req.method == "HEAD" {
            ""
        } else {
            body.as_str()
        };
        let head = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
             x-amz-request-id: FAULTPROXY\r\nConnection: close\r\n\r\n",
            reason(*status),
            body.len()
        );
        // GET and HEAD carry no body: nothing of the request is left unread.
        client_out.write_all(head.as_bytes())?;
        client_out.write_all(body.as_bytes())?;
        client_out.flush()?;
        shared.served(i, index);
        return Ok(());
    }

    let server = TcpStream::connect(("127.0.0.1", shared.target_port))?;
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

    let result = relay_response(&mut server_in, &mut client_out, &req, index, shared);
    let _ = server.shutdown(Shutdown::Both);
    result
}

fn relay_response(
    server: &mut TcpStream,
    client: &mut TcpStream,
    req: &Seen,
    index: usize,
    shared: &Shared,
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
        let cut = shared.claim(req, Some(status));
        client.write_all(&force_close(&head))?;
        let Some(i) = cut else {
            client.write_all(&rest)?;
            std::io::copy(server, client)?;
            return Ok(());
        };
        let Fault::Cut { after } = shared.rules[i].rule.fault else {
            unreachable!("only Cut faults are claimed on the response")
        };
        let mut left = after;
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
        if let Some(hook) = &shared.rules[i].rule.hook {
            hook();
        }
        shared.served(i, index);
        let _ = client.shutdown(Shutdown::Both);
        return Ok(());
    }
}

/// Creates a secret on the test server and returns its ARN.
pub fn create_secret(name: &str, value: &str) -> String {
    let body = serde_json::json!({ "Name": name, "SecretString": value }).to_string();
    let r = request(
        s3().port,
        "POST",
        "/",
        &[
            ("X-Amz-Target", "secretsmanager.CreateSecret"),
            ("Content-Type", "application/x-amz-json-1.1"),
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/secretsmanager/aws4_request, \
                 SignedHeaders=host, Signature=0",
            ),
        ],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_str(&r.text()).unwrap();
    v["ARN"].as_str().unwrap().to_string()
}
