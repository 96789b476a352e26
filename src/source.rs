//! Where a file's bytes come from.
//!
//! The loader only needs a name, a type, a size hint and a `Read`; S3 objects will plug in
//! here as another `Origin` without touching parsing, COPY or the merge.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::error::Error;
use crate::layout::FileType;

#[derive(Debug, Clone)]
pub enum Origin {
    Local(PathBuf),
    S3 {
        client: aws_sdk_s3::Client,
        bucket: String,
        key: String,
        etag: String,
        transfer: crate::s3::Transfer,
    },
}

/// An opened input: its bytes, and for S3 the count of mid-stream resumes so far.
pub struct Opened {
    pub reader: Box<dyn Read + Send>,
    pub resumes: Option<Arc<AtomicU32>>,
}

/// One file to load, checked to exist and to have a known type before anything connects.
#[derive(Debug, Clone)]
pub struct Input {
    /// The bare file name, as messages show it (`CED01-15E.PIP`).
    pub name: String,
    /// Path or URI, as the journal records it.
    pub source: String,
    pub file_type: FileType,
    pub size: Option<u64>,
    /// The business day the file is for, when known (set by whoever found the file).
    pub business_date: Option<chrono::NaiveDate>,
    pub origin: Origin,
}

impl Input {
    /// A local file; its type comes from `--type` or the name's `R/E/A.PIP` suffix.
    pub fn local(path: &Path, type_override: Option<FileType>) -> Result<Input, Error> {
        let shown = path.display();
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::NoInput(format!("{shown}: no such file")),
            io::ErrorKind::PermissionDenied => {
                Error::NoInput(format!("{shown}: permission denied"))
            }
            _ => Error::NoInput(format!("{shown}: {e}")),
        })?;
        if meta.is_dir() {
            return Err(Error::NoInput(format!(
                "{shown}: is a directory, not a PIP file (loading a directory by date comes with --dir)"
            )));
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| shown.to_string());
        let file_type = match type_override.or_else(|| FileType::from_file_name(&name)) {
            Some(t) => t,
            None => {
                return Err(Error::Usage(format!(
                    "{shown}: cannot tell the file type from its name (expected a name ending in \
                     R.PIP, E.PIP or A.PIP); give --type issuer|issue|issue_attr"
                )))
            }
        };
        let source = std::fs::canonicalize(path)
            .unwrap_or_else(|_| path.to_path_buf())
            .display()
            .to_string();
        Ok(Input {
            name,
            source,
            file_type,
            size: Some(meta.len()),
            business_date: None,
            origin: Origin::Local(path.to_path_buf()),
        })
    }

    /// An S3 object found by listing or HEAD; its identity is its ETag.
    pub fn s3(
        client: &aws_sdk_s3::Client,
        bucket: &str,
        obj: &crate::s3::Listed,
        file_type: FileType,
        transfer: crate::s3::Transfer,
    ) -> Input {
        let name = crate::s3::basename(&obj.key).to_string();
        Input {
            name,
            source: crate::s3::uri(bucket, &obj.key),
            file_type,
            size: Some(obj.size),
            business_date: None,
            origin: Origin::S3 {
                client: client.clone(),
                bucket: bucket.to_string(),
                key: obj.key.clone(),
                etag: obj.etag.clone(),
                transfer,
            },
        }
    }

    /// The identity known before reading: the ETag for S3 (local files are hashed).
    pub fn etag(&self) -> Option<&str> {
        match &self.origin {
            Origin::S3 { etag, .. } => Some(etag),
            Origin::Local(_) => None,
        }
    }

    pub fn local_path(&self) -> Option<&Path> {
        match &self.origin {
            Origin::Local(p) => Some(p),
            Origin::S3 { .. } => None,
        }
    }

    /// Opens the bytes for reading (for S3: starts the download task).
    pub fn open(&self) -> Result<Opened, Error> {
        match &self.origin {
            Origin::Local(p) => {
                let f = File::open(p).map_err(|e| match e.kind() {
                    io::ErrorKind::NotFound => {
                        Error::NoInput(format!("{}: no such file", p.display()))
                    }
                    _ => Error::NoInput(format!("{}: cannot open: {e}", p.display())),
                })?;
                Ok(Opened {
                    reader: Box::new(f),
                    resumes: None,
                })
            }
            Origin::S3 {
                client,
                bucket,
                key,
                etag,
                transfer,
            } => {
                let resumes = Arc::new(AtomicU32::new(0));
                let size = self.size.unwrap_or(0);
                let r = crate::s3::open(
                    client.clone(),
                    bucket.clone(),
                    key.clone(),
                    etag.clone(),
                    size,
                    *transfer,
                    resumes.clone(),
                );
                Ok(Opened {
                    reader: Box::new(r),
                    resumes: Some(resumes),
                })
            }
        }
    }
}

/// SHA-256 of a local file, read whole at once: what the journal records for it, the same
/// digest [`Hashing`] computes beside a load (tests compare a journalled digest with it).
pub fn sha256_file(path: &Path) -> Result<String, Error> {
    let f = open_to_hash(path)?;
    hash_all(f, path, &AtomicBool::new(false))
}

fn open_to_hash(path: &Path) -> Result<File, Error> {
    File::open(path).map_err(|e| Error::NoInput(format!("{}: cannot open: {e}", path.display())))
}

/// Hashes the rest of `f`, giving up between chunks once `cancel` is set.
fn hash_all(mut f: File, path: &Path, cancel: &AtomicBool) -> Result<String, Error> {
    let fail = |e: io::Error| Error::NoInput(format!("{}: read failed: {e}", path.display()));
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(fail(io::Error::new(
                io::ErrorKind::Interrupted,
                "not needed any more",
            )));
        }
        match f.read(&mut buf) {
            Ok(0) => return Ok(hex(&hash.finalize())),
            Ok(n) => hash.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(fail(e)),
        }
    }
}

/// A local file's SHA-256, its identity in the journal, computed on a thread of its own
/// while the load goes on. The load runs ahead of it only as far as the rerun rule allows:
/// whatever it did is undone if the digest then says the file was loaded already. Waiting
/// for the digest first cost the unchanged reload of a 1 M attribute file (305 MB) about
/// 0.3 s of its 4.9 (docs/performance.md). Dropping it stops the thread at its next chunk.
///
/// A file that changes while it loads is caught by what it was when opened here: its
/// device, inode, size and times (as GNU tar tells a file that changed as it was read), and
/// the digest, which the content read for the load must match.
#[derive(Debug)]
pub struct Hashing {
    done: watch::Receiver<Option<Result<String, String>>>,
    cancel: Arc<AtomicBool>,
    path: PathBuf,
    opened: Option<Stamp>,
}

/// What tells a file that was written to, or replaced, since it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

impl Hashing {
    /// Opens the file (failing now, as reading it whole first would) and starts hashing it.
    pub fn start(path: &Path) -> Result<Hashing, Error> {
        let f = open_to_hash(path)?;
        let opened = f.metadata().ok().map(|m| Stamp::of(&m));
        let (tx, done) = watch::channel(None);
        let cancel = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&cancel);
        let owned = path.to_path_buf();
        std::thread::Builder::new()
            .name("sha256".into())
            .spawn(move || {
                let digest = hash_all(f, &owned, &stop).map_err(|e| e.to_string());
                let _ = tx.send(Some(digest));
            })
            .map_err(|e| Error::Internal(format!("cannot start the hashing thread: {e}")))?;
        Ok(Hashing {
            done,
            cancel,
            path: path.to_path_buf(),
            opened,
        })
    }

    /// The digest, once the whole file has been read.
    pub async fn wait(&self) -> Result<String, Error> {
        let mut done = self.done.clone();
        let got = done
            .wait_for(Option::is_some)
            .await
            .map_err(|_| Error::Internal("the hashing thread ended without a digest".into()))?;
        match got.as_ref() {
            Some(Ok(digest)) => Ok(digest.clone()),
            Some(Err(why)) => Err(Error::NoInput(why.clone())),
            None => Err(Error::Internal(
                "the hashing thread ended without a digest".into(),
            )),
        }
    }

    /// Whether the file at its path is no longer the one opened: another file, or this one
    /// written to since. A file that cannot be looked at any more has changed.
    pub fn changed(&self) -> bool {
        let now = std::fs::metadata(&self.path).ok().map(|m| Stamp::of(&m));
        now.is_none() || now != self.opened
    }
}

impl Drop for Hashing {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

/// The date's files in a local directory, in load order, plus the types that are missing.
pub fn dir_date(
    dir: &Path,
    entries: &[(String, PathBuf)],
    date: chrono::NaiveDate,
    allow_missing: bool,
) -> Result<(Vec<Input>, Vec<FileType>), Error> {
    let place = format!("{}/", dir.display());
    let picked = crate::locate::pick(entries, date, &place, "", allow_missing)?;
    let inputs = picked
        .found
        .iter()
        .map(|(t, p)| Input::local(p, Some(*t)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((inputs, picked.missing))
}

/// A directory's entries as `(name, path)`, sorted, listed once for all the dates of a run.
pub fn list_dir(dir: &Path) -> Result<Vec<(String, PathBuf)>, Error> {
    let rd = std::fs::read_dir(dir).map_err(|e| {
        Error::NoInput(format!("{}: cannot list the directory: {e}", dir.display()))
    })?;
    let mut entries = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        entries.push((name, e.path()));
    }
    entries.sort();
    Ok(entries)
}

/// Passes bytes through while computing their SHA-256, the local file's identity in the
/// journal, so fingerprinting costs no second read.
pub struct Fingerprint<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Fingerprint<R> {
    pub fn new(inner: R) -> Self {
        Fingerprint {
            inner,
            hash: Sha256::new(),
        }
    }

    /// Lower-case hex digest of everything read so far.
    pub fn hex(self) -> String {
        hex(&self.digest())
    }

    /// The digest of everything read so far.
    pub fn digest(self) -> [u8; 32] {
        self.hash.finalize().into()
    }
}

/// Lower-case hex, as the journal stores digests.
pub fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl<R: Read> Read for Fingerprint<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_sha256() {
        let mut f = Fingerprint::new(&b"abc"[..]);
        let mut v = Vec::new();
        f.read_to_end(&mut v).unwrap();
        assert_eq!(
            f.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn type_and_existence_are_checked_up_front() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ced01-15e.pip");
        std::fs::write(&p, b"x").unwrap();
        assert_eq!(Input::local(&p, None).unwrap().file_type, FileType::Issue);
        assert_eq!(
            Input::local(&p, Some(FileType::Issuer)).unwrap().file_type,
            FileType::Issuer
        );
        let q = dir.path().join("data.txt");
        std::fs::write(&q, b"x").unwrap();
        assert!(matches!(Input::local(&q, None), Err(Error::Usage(_))));
        assert!(matches!(
            Input::local(&dir.path().join("nope"), None),
            Err(Error::NoInput(_))
        ));
        assert!(matches!(
            Input::local(dir.path(), None),
            Err(Error::NoInput(_))
        ));
    }
}
