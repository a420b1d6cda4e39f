//! `mb-tokens pull`: drain CLIProxyAPI's usage queue into a durable file.
//!
//! The queue keeps records only for `redis-usage-queue-retention-seconds`
//! (60 s by default, 3600 at most), and every pop removes what it returns,
//! so the puller is the only copy of a record once the response arrives.
//! Hence, for every pull:
//!
//! 1. `GET <url>/v0/management/usage-queue?count=N` with the management key;
//! 2. every complete record of the response is appended to `--out` in one
//!    `write` and the file is `fsync`ed **before the next pull**;
//! 3. if the connection drops mid-response, the complete records received
//!    so far are still saved (the body is parsed element by element), and
//!    the loss, if a record was cut, is reported with its size: the server
//!    already removed it, and no client can get it back;
//! 4. a connection refused or dropped before the response simply retries on
//!    the next interval: nothing was popped.
//!
//! A full page (N records) is followed at once by another pull, so a backlog
//! drains without waiting for the interval. A crash in the middle of a write
//! can leave a last line without its newline; the next start terminates it,
//! so the fragment becomes one visible bad line for mb-tokens instead of
//! corrupting the next record.
//!
//! The HTTP client is a minimal HTTP/1.1 client over `std::net::TcpStream`
//! (`Connection: close`, Content-Length or chunked bodies): the management
//! API listens on the proxy host, plain HTTP, and a minimal client keeps
//! mb free of a TLS and HTTP stack for one GET. `https://` is refused with a
//! hint (tunnel it, or run pull on the proxy host).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::value::RawValue;

use crate::cli;
use crate::error::{Error, Result};

/// A parsed `http://host:port/prefix` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Host name or address.
    pub host: String,
    /// TCP port (80 if absent).
    pub port: u16,
    /// Path prefix without a trailing `/` (usually empty).
    pub prefix: String,
}

impl Url {
    /// Parse a base URL; only `http://` is supported.
    pub fn parse(s: &str) -> std::result::Result<Url, String> {
        let rest = if let Some(r) = s.strip_prefix("http://") {
            r
        } else if s.starts_with("https://") {
            return Err(format!(
                "{s}: https is not supported; run pull on the proxy host (the management API \
                 listens there) or tunnel it (ssh -L 8317:127.0.0.1:8317 host)"
            ));
        } else {
            return Err(format!("{s}: expected a URL like http://127.0.0.1:8317"));
        };
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => {
                let port = p
                    .parse::<u16>()
                    .map_err(|_| format!("{s}: bad port {p:?}"))?;
                (h, port)
            }
            _ => (hostport, 80),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("{s}: no host"));
        }
        Ok(Url {
            host: host.to_string(),
            port,
            prefix: path.trim_end_matches('/').to_string(),
        })
    }
}

/// An HTTP response, possibly cut short.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// The body received (de-chunked).
    pub body: Vec<u8>,
    /// False when the connection ended before the body was complete.
    pub complete: bool,
}

/// Why a request got no response at all (nothing was popped).
#[derive(Debug)]
pub struct NoResponse(pub String);

/// GET `path` from `url` with a bearer key. A response that arrives only in
/// part is returned with `complete: false`.
pub fn get(
    url: &Url,
    path: &str,
    key: &str,
    timeout: Duration,
) -> std::result::Result<Response, NoResponse> {
    let addrs: Vec<_> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| NoResponse(format!("cannot resolve {}: {e}", url.host)))?
        .collect();
    let mut last = String::from("no address");
    let mut stream = None;
    for a in &addrs {
        match TcpStream::connect_timeout(a, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = format!("connect to {a}: {e}"),
        }
    }
    let mut s = stream.ok_or(NoResponse(last))?;
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    let host = if url.host.contains(':') {
        format!("[{}]:{}", url.host, url.port)
    } else {
        format!("{}:{}", url.host, url.port)
    };
    let req = format!(
        "GET {}{} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n\
         Accept: application/json\r\nUser-Agent: mb-tokens/{}\r\nConnection: close\r\n\r\n",
        url.prefix,
        path,
        env!("CARGO_PKG_VERSION")
    );
    s.write_all(req.as_bytes())
        .map_err(|e| NoResponse(format!("sending the request: {e}")))?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    let mut read_ok = true;
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                read_ok = false;
                break;
            }
        }
    }
    let Some(hdr_end) = find(&raw, b"\r\n\r\n") else {
        return Err(NoResponse(if raw.is_empty() {
            "the connection closed before any response".into()
        } else {
            "the connection closed in the middle of the response headers".into()
        }));
    };
    let head = String::from_utf8_lossy(&raw[..hdr_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| NoResponse(format!("not an HTTP response: {status_line:?}")))?;
    let mut length = None;
    let mut chunked = false;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            let v = v.trim();
            if k == "content-length" {
                length = v.parse::<usize>().ok();
            } else if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
                chunked = true;
            }
        }
    }
    let rest = &raw[hdr_end + 4..];
    let (body, complete) = if chunked {
        dechunk(rest)
    } else if let Some(n) = length {
        if rest.len() >= n {
            (rest[..n].to_vec(), true)
        } else {
            (rest.to_vec(), false)
        }
    } else {
        (rest.to_vec(), read_ok)
    };
    Ok(Response {
        status,
        body,
        complete,
    })
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// Decode a chunked body; `complete` only if the final 0-size chunk came.
fn dechunk(mut b: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(eol) = find(b, b"\r\n") else {
            return (out, false);
        };
        let size_txt = String::from_utf8_lossy(&b[..eol]);
        let size_txt = size_txt.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_txt, 16) else {
            return (out, false);
        };
        b = &b[eol + 2..];
        if size == 0 {
            return (out, true);
        }
        if b.len() < size {
            out.extend_from_slice(b);
            return (out, false);
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size..];
        b = b.strip_prefix(b"\r\n").unwrap_or(b);
    }
}

/// The records of a usage-queue response body, as compact one-line JSON
/// objects, and the number of bytes of a trailing record cut short.
///
/// The body is a JSON array of record objects (or of strings holding one,
/// as the RESP side returns them); `null`, an empty body or `[]` is no
/// record. The array is read element by element so that a truncated body
/// still yields every complete record before the cut.
pub fn records(body: &[u8]) -> std::result::Result<(Vec<String>, usize), String> {
    let text = std::str::from_utf8(body).map_err(|_| "the response is not UTF-8".to_string())?;
    let t = text.trim_start();
    if t.is_empty() || t.trim_end() == "null" {
        return Ok((Vec::new(), 0));
    }
    let mut rest = t.strip_prefix('[').ok_or_else(|| {
        format!(
            "expected a JSON array of records, got {:?}",
            t.chars().take(40).collect::<String>()
        )
    })?;
    let mut out = Vec::new();
    loop {
        rest = rest.trim_start().trim_start_matches(',').trim_start();
        if rest.is_empty() {
            return Ok((out, 0));
        }
        if rest.starts_with(']') {
            return Ok((out, 0));
        }
        let mut it = serde_json::Deserializer::from_str(rest).into_iter::<&RawValue>();
        match it.next() {
            Some(Ok(raw)) => {
                let used = it.byte_offset();
                out.push(one_line(raw)?);
                rest = &rest[used..];
            }
            Some(Err(e)) if e.is_eof() => return Ok((out, rest.len())),
            Some(Err(e)) => return Err(format!("bad JSON in the response: {e}")),
            None => return Ok((out, rest.len())),
        }
    }
}

/// A record as one compact line: objects as they came (re-serialised only
/// if they span lines), strings unwrapped (the RESP form of a record).
fn one_line(raw: &RawValue) -> std::result::Result<String, String> {
    let s = raw.get();
    let inner: String;
    let obj = if s.starts_with('"') {
        inner = serde_json::from_str::<String>(s).map_err(|e| e.to_string())?;
        inner.as_str()
    } else {
        s
    };
    if !obj.trim_start().starts_with('{') {
        return Err(format!(
            "a queue element is not a record object: {:.60}",
            obj
        ));
    }
    if obj.contains(['\n', '\r']) {
        let v: serde_json::Value = serde_json::from_str(obj).map_err(|e| e.to_string())?;
        return Ok(v.to_string());
    }
    Ok(obj.to_string())
}

/// Settings of a pull run.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// CLIProxyAPI base URL.
    pub url: Url,
    /// The management key.
    pub key: String,
    /// The JSONL file records are appended to.
    pub out: PathBuf,
    /// Records per request.
    pub count: u32,
    /// Wait between pulls when the queue was drained, and before a retry.
    pub interval: Duration,
    /// Connect/read timeout.
    pub timeout: Duration,
    /// Stop once the queue is empty (or after `retries` failed attempts).
    pub once: bool,
    /// Failed attempts in a row before `--once` gives up.
    pub retries: u32,
}

/// Open `path` for appending (0600, created if needed), terminating a last
/// line a crash left without its newline.
pub fn open_out(path: &Path) -> Result<File> {
    let mut f = crate::fsutil::open(
        crate::fsutil::options()
            .create(true)
            .append(true)
            .read(true),
        path,
    )
    .map_err(|e| Error::io(path, e))?;
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    if len > 0 {
        let mut last = [0u8; 1];
        f.seek(SeekFrom::Start(len - 1))
            .map_err(|e| Error::io(path, e))?;
        f.read_exact(&mut last).map_err(|e| Error::io(path, e))?;
        if last[0] != b'\n' {
            cli::warn(format!(
                "{}: the last line has no newline (an interrupted write); terminating it",
                path.display()
            ));
            f.write_all(b"\n").map_err(|e| Error::io(path, e))?;
            f.sync_data().map_err(|e| Error::io(path, e))?;
        }
    }
    Ok(f)
}

/// What a pull run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PullStats {
    /// Records appended.
    pub saved: u64,
    /// Requests that failed (no response, HTTP error, bad body).
    pub failures: u64,
    /// Bytes of records cut by a dropped connection (lost at the server).
    pub lost_bytes: u64,
}

/// Upstream's `usage-statistics-enabled` (GET
/// /v0/management/usage-statistics-enabled, `{"usage-statistics-enabled":
/// BOOL}`), when the proxy answers it. It defaults to false, and while it
/// is false nothing is ever queued.
fn statistics_enabled(o: &PullOptions) -> Option<bool> {
    let r = get(
        &o.url,
        "/v0/management/usage-statistics-enabled",
        &o.key,
        o.timeout,
    )
    .ok()?;
    if r.status != 200 || !r.complete {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
    v.get("usage-statistics-enabled")
        .or_else(|| v.get("value"))
        .and_then(serde_json::Value::as_bool)
}

/// Warn when upstream says statistics are off: the queue then stays empty
/// whatever the traffic.
fn warn_if_disabled(o: &PullOptions) {
    if statistics_enabled(o) == Some(false) {
        cli::warn(
            "pull: CLIProxyAPI reports usage-statistics-enabled: false, so it queues no usage \
             at all; set usage-statistics-enabled: true in its config.yaml (or PUT \
             /v0/management/usage-statistics-enabled)",
        );
    }
}

/// The longest retention upstream allows (`redis-usage-queue-retention-
/// seconds`, at most 3600): an empty queue for longer than this while the
/// proxy runs is worth a look.
const MAX_RETENTION: Duration = Duration::from_secs(3600);

/// Pull until stopped (or, with `once`, until the queue is empty).
pub fn run(o: &PullOptions) -> Result<PullStats> {
    let mut out = open_out(&o.out)?;
    let mut st = PullStats::default();
    let path = format!("/v0/management/usage-queue?count={}", o.count);
    let mut failed_in_row = 0u32;
    warn_if_disabled(o);
    let mut empty_since = std::time::Instant::now();
    loop {
        let mut drained = true;
        match get(&o.url, &path, &o.key, o.timeout) {
            Err(NoResponse(why)) => {
                st.failures += 1;
                failed_in_row += 1;
                cli::warn(format!("pull: {why}; nothing was popped, retrying"));
            }
            Ok(r) if r.status == 401 || r.status == 403 => {
                return Err(Error::Usage(format!(
                    "pull: HTTP {}: the management key was refused (check --key-file)",
                    r.status
                )));
            }
            Ok(r) if r.status == 404 => {
                return Err(Error::Usage(
                    "pull: HTTP 404: the usage queue is not enabled; CLIProxyAPI needs \
                     remote-management.secret-key and usage-statistics-enabled: true"
                        .into(),
                ));
            }
            Ok(r) if r.status != 200 => {
                st.failures += 1;
                failed_in_row += 1;
                cli::warn(format!("pull: HTTP {}; retrying", r.status));
            }
            Ok(r) => {
                let (recs, cut) = match records(&r.body) {
                    Ok(x) => x,
                    Err(why) => {
                        // Keep the body for a person to recover from.
                        let keep = save_unreadable(&o.out, &r.body);
                        cli::warn(format!("pull: {why}; the raw response is kept in {keep}"));
                        st.failures += 1;
                        failed_in_row += 1;
                        (Vec::new(), 0)
                    }
                };
                if !recs.is_empty() {
                    append(&mut out, &o.out, &recs)?;
                    st.saved += recs.len() as u64;
                    empty_since = std::time::Instant::now();
                } else if empty_since.elapsed() > MAX_RETENTION {
                    // Empty for longer than any retention: ask again whether
                    // upstream queues anything at all.
                    warn_if_disabled(o);
                    empty_since = std::time::Instant::now();
                }
                if !r.complete || cut > 0 {
                    st.failures += 1;
                    failed_in_row += 1;
                    st.lost_bytes += cut as u64;
                    cli::warn(format!(
                        "pull: the connection dropped in the middle of the response; {} complete \
                         records saved{}",
                        recs.len(),
                        if cut > 0 {
                            format!(
                                ", {cut} bytes of a cut record lost (the queue already removed it)"
                            )
                        } else {
                            String::new()
                        }
                    ));
                } else {
                    failed_in_row = 0;
                    drained = recs.len() < o.count as usize;
                }
            }
        }
        if o.once && ((drained && failed_in_row == 0) || failed_in_row > o.retries) {
            return Ok(st);
        }
        if drained || failed_in_row > 0 {
            std::thread::sleep(o.interval);
        }
    }
}

/// Append records in one write and fsync, before anything else is popped.
/// If that fails the records exist nowhere else: print them on stdout as a
/// last resort before failing.
fn append(out: &mut File, path: &Path, recs: &[String]) -> Result<()> {
    let mut buf = String::with_capacity(recs.iter().map(|r| r.len() + 1).sum());
    for r in recs {
        buf.push_str(r);
        buf.push('\n');
    }
    let res = out.write_all(buf.as_bytes()).and_then(|_| out.sync_data());
    if let Err(e) = res {
        let mut so = io::stdout().lock();
        let _ = so.write_all(buf.as_bytes());
        let _ = so.flush();
        return Err(Error::Invalid(format!(
            "{}: {e}; the {} popped records were printed on stdout instead",
            path.display(),
            recs.len()
        )));
    }
    Ok(())
}

fn save_unreadable(out: &Path, body: &[u8]) -> String {
    let p = PathBuf::from(format!(
        "{}.unreadable-{}",
        out.display(),
        crate::time::now().format("%Y%m%dT%H%M%S%.fZ")
    ));
    let written = crate::fsutil::create(&p).and_then(|mut f| f.write_all(body));
    match written {
        Ok(()) => p.display().to_string(),
        Err(e) => format!("nowhere ({}: {e})", p.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            Url::parse("http://127.0.0.1:8317").unwrap(),
            Url {
                host: "127.0.0.1".into(),
                port: 8317,
                prefix: String::new()
            }
        );
        assert_eq!(Url::parse("http://h/x/").unwrap().prefix, "/x");
        assert_eq!(Url::parse("http://[::1]:9").unwrap().host, "::1");
        assert!(Url::parse("https://h").is_err());
        assert!(Url::parse("h:1").is_err());
    }

    #[test]
    fn truncated_bodies_keep_complete_records() {
        let (r, cut) = records(br#"[{"a":1}, {"b":"x\ny"},{"c":"#).unwrap();
        assert_eq!(
            r,
            vec![r#"{"a":1}"#.to_string(), r#"{"b":"x\ny"}"#.to_string()]
        );
        assert_eq!(cut, 5);
        let (r, cut) = records(b"[\"{\\\"a\\\":1}\"]").unwrap();
        assert_eq!((r, cut), (vec![r#"{"a":1}"#.to_string()], 0));
        assert_eq!(records(b"null").unwrap().0.len(), 0);
        assert_eq!(records(b"[]").unwrap().0.len(), 0);
        assert!(records(b"{}").is_err());
        let (r, _) = records(b"[{\n \"a\": 1\n}]").unwrap();
        assert_eq!(r, vec![r#"{"a":1}"#.to_string()]);
    }

    #[test]
    fn chunked() {
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"),
            (b"abcde".to_vec(), true)
        );
        assert_eq!(dechunk(b"3\r\nabc\r\n5\r\nde"), (b"abcde".to_vec(), false));
    }
}
