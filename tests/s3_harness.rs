//! Checks of the S3 test harness itself (tests/common/s3.rs): moto and the cutting proxy.
mod common;

use common::s3::{cut_proxy, object_path, request, s3};
use std::io::{Read, Write};
use std::sync::{RwLock, RwLockReadGuard};

/// `reset` wipes the shared server: the test using it runs alone (write lock).
static SERVER_STATE: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    SERVER_STATE.read().unwrap_or_else(|e| e.into_inner())
}

fn body(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

#[test]
fn put_then_raw_get_returns_the_body_and_reset_wipes_it() {
    let _alone = SERVER_STATE.write().unwrap_or_else(|e| e.into_inner());
    let s = s3();
    assert_eq!(s.endpoint, format!("http://127.0.0.1:{}", s.port));
    let bucket = s.new_bucket("raw");
    let etag = s.put(&bucket, "pif/CED01-15R.PIP", b"hello|world\n");

    // A hand-written request, independent of the harness's HTTP client.
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    write!(
        conn,
        "GET /{bucket}/pif/CED01-15R.PIP?x-id=GetObject HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/s3/aws4_request, \
         SignedHeaders=host, Signature=0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    conn.read_to_string(&mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(raw.ends_with("\r\n\r\nhello|world\n"), "{raw}");
    assert!(raw.contains(&format!("\"{etag}\"")), "{raw}");

    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), b"from a file").unwrap();
    s.put_file(&bucket, "f.PIP", file.path());
    assert_eq!(s.get(&bucket, "f.PIP").body, b"from a file");

    s.delete(&bucket, "f.PIP");
    assert_eq!(s.get(&bucket, "f.PIP").status, 404);
    s.reset();
    let r = s.get(&bucket, "pif/CED01-15R.PIP");
    assert_eq!(r.status, 404);
    assert!(r.text().contains("NoSuchBucket"), "{}", r.text());
}

#[test]
fn etag_is_the_hex_md5_of_the_body() {
    let _shared = shared();
    let s = s3();
    let bucket = s.new_bucket("etag");
    let etag = s.put(&bucket, "a", &body(1000));
    assert_eq!(etag.len(), 32, "{etag}");
    assert!(etag.bytes().all(|b| b.is_ascii_hexdigit()), "{etag}");
    assert_eq!(
        s.put(&bucket, "empty", b""),
        "d41d8cd98f00b204e9800998ecf8427e"
    );
    let r = s.get(&bucket, "a");
    assert_eq!(r.header("etag"), Some(format!("\"{etag}\"").as_str()));
    let env = common::s3::aws_env(&s.endpoint);
    assert!(env.contains(&("AWS_ENDPOINT_URL".into(), s.endpoint.clone())));
}

#[test]
fn proxy_cuts_the_first_object_bodies_then_passes_them_whole() {
    let _shared = shared();
    let s = s3();
    let bucket = s.new_bucket("cut");
    let data = body(5000);
    s.put(&bucket, "pif/x.PIP", &data);
    let proxy = cut_proxy(s.port, 10, 2);
    assert_eq!(proxy.endpoint, format!("http://127.0.0.1:{}", proxy.port));
    let path = object_path(&bucket, "pif/x.PIP");

    // HEAD is never cut and uses no cut.
    let r = request(proxy.port, "HEAD", &path, &[], b"");
    assert_eq!((r.status, r.body.len(), proxy.hits()), (200, 0, 0));

    let r = request(
        proxy.port,
        "GET",
        &format!("{path}?x-id=GetObject"),
        &[],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("5000"));
    assert_eq!(r.body, &data[..10]);
    assert_eq!(proxy.hits(), 1);

    let r = request(proxy.port, "GET", &path, &[("Range", "bytes=100-")], b"");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-length"), Some("4900"));
    assert_eq!(r.body, &data[100..110]);
    assert_eq!(proxy.hits(), 2);

    for _ in 0..2 {
        let r = request(proxy.port, "GET", &path, &[], b"");
        assert_eq!((r.status, r.body.len()), (200, 5000));
        assert_eq!(r.body, data);
    }
    // Errors pass through too.
    let r = request(proxy.port, "GET", &object_path(&bucket, "nope"), &[], b"");
    assert_eq!(r.status, 404);
    assert_eq!(proxy.hits(), 2);
}

#[test]
fn listings_and_puts_through_the_proxy_are_never_cut() {
    let _shared = shared();
    let s = s3();
    let bucket = s.new_bucket("list");
    let proxy = cut_proxy(s.port, 5, usize::MAX);
    let data = body(3000);
    let r = request(
        proxy.port,
        "PUT",
        &object_path(&bucket, "pif/CED01-15R.PIP"),
        &[("Content-Type", "application/octet-stream")],
        &data,
    );
    assert_eq!(r.status, 200, "{}", r.text());

    for target in [
        format!("/{bucket}?list-type=2"),
        format!("/{bucket}/?list-type=2&prefix=pif%2F"),
        format!("/{bucket}"),
    ] {
        let r = request(proxy.port, "GET", &target, &[], b"");
        assert_eq!(r.status, 200, "{target}: {}", r.text());
        assert_eq!(
            r.header("content-length"),
            Some(r.body.len().to_string().as_str()),
            "{target}"
        );
        assert!(
            r.text().contains("<Key>pif/CED01-15R.PIP</Key>"),
            "{target}"
        );
    }
    assert_eq!(proxy.hits(), 0);
    assert_eq!(s.get(&bucket, "pif/CED01-15R.PIP").body, data);

    let r = request(
        proxy.port,
        "GET",
        &object_path(&bucket, "pif/CED01-15R.PIP"),
        &[],
        b"",
    );
    assert_eq!(r.body, &data[..5]);
    assert_eq!(proxy.hits(), 1);
}
