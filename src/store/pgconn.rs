//! Connecting to PostgreSQL: what a `--db` value that names a server means,
//! where the password comes from, and TLS.
//!
//! This is the only place that turns a connection string into a
//! `postgres::Client`; the rest of the store never sees a host, a password
//! or a certificate.
//!
//! A connection is described the way libpq (psql, pg_dump) describes it, so
//! that an admin's existing set-up works unchanged: a `postgres://` or
//! `postgresql://` URI or a `key=value` string, then the service named by
//! `service=` or `PGSERVICE` (from `PGSERVICEFILE` or `~/.pg_service.conf`,
//! else `PGSYSCONFDIR/pg_service.conf`), then the `PG*` environment
//! variables, then the defaults (the local socket directory, port 5432, the
//! login name as user and database). The first of these that sets a keyword
//! wins, as in libpq.
//!
//! Passwords. A `--db` value is on the command line (`ps`, shell history,
//! cron mail) or in `MB_DB`/mb.toml, which are copied around freely, so a
//! connection string that carries a password is refused, wherever it came
//! from. The password comes from the password file (`PGPASSFILE`, else
//! `~/.pgpass`, libpq's format and matching, ignored with a warning unless
//! it is private, i.e. mode 0600 or stricter), or from a service file that
//! is itself private (a `password=` in a group- or world-readable service
//! file is refused). `PGPASSWORD` is ignored with a warning: libpq's own
//! documentation advises against it, and other processes of the same user
//! (and root) can read it in `/proc/PID/environ`.
//!
//! TLS. mb's default for a TCP host is `sslmode=verify-full` against the
//! system's roots (libpq's default, `prefer`, accepts any certificate and
//! even a clear-text downgrade, which is no default for billing data that
//! crosses a network). `sslrootcert=FILE` (or `PGSSLROOTCERT`, or libpq's
//! `~/.postgresql/root.crt` when it exists) trusts a private CA instead;
//! `sslrootcert=system` names the system roots explicitly. The libpq modes
//! are all accepted: `disable`; `allow` and `prefer` (TLS when the server
//! offers it, no certificate check; `allow` is treated as `prefer`);
//! `require` (TLS, no certificate check unless a root certificate is given,
//! then as `verify-ca`, like libpq); `verify-ca` (the chain, not the name);
//! `verify-full` (the chain and the host name). A unix-socket host never
//! uses TLS (the server does not offer it there; the kernel's peer
//! credentials authenticate the client).
//!
//! Why these crates: `postgres` (the synchronous face of `tokio-postgres`,
//! sfackler's, the de-facto PostgreSQL client for Rust) keeps the store's
//! code as plain blocking calls like rusqlite's; its TLS is pluggable, and
//! `tokio-postgres-rustls` plugs in rustls, a memory-safe TLS stack with no
//! system library to install or keep patched (OpenSSL through
//! `postgres-openssl` would add a C dependency and its version skew;
//! `native-tls` cannot express `verify-ca`). rustls uses the `ring`
//! provider (no C compiler or cmake beyond what `ring` already builds), the
//! system roots come from `rustls-native-certs`, and PEM files are read with
//! `rustls-pki-types`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};

/// Whether a `--db` value names a PostgreSQL server rather than a SQLite
/// file: a `postgres://` or `postgresql://` URI, or a libpq key=value
/// string (`host=... dbname=...`, `service=...`).
pub fn is_postgres(spec: &str) -> bool {
    let s = spec.trim_start();
    // A key=value string counts only when every key is a libpq keyword,
    // so a SQLite file named `x=1.db` stays a file.
    s.starts_with("postgres://")
        || s.starts_with("postgresql://")
        || parse_kv(s).is_ok_and(|kv| {
            !kv.is_empty() && kv.iter().all(|(k, _)| KEYWORDS.contains(&k.as_str()))
        })
}

/// `spec` with any password removed, for messages and `Error::Db` paths.
pub fn display(spec: &str) -> String {
    let s = spec.trim();
    if let Some(rest) = strip_scheme(s) {
        let scheme = &s[..s.len() - rest.len()];
        let (main, query) = match rest.split_once('?') {
            Some((m, q)) => (m, Some(q)),
            None => (rest, None),
        };
        // userinfo ends at the last '@' before the path.
        let auth_end = main.find('/').unwrap_or(main.len());
        let mut out = String::from(scheme);
        match main[..auth_end].rfind('@') {
            Some(at) => {
                let user = &main[..at];
                let user = user.split_once(':').map_or(user, |(u, _)| u);
                out.push_str(user);
                if main[..at].contains(':') {
                    out.push_str(":***");
                }
                out.push_str(&main[at..]);
            }
            None => out.push_str(main),
        }
        if let Some(q) = query {
            out.push('?');
            let parts: Vec<String> = q
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if is_password_key(k) => format!("{k}=***"),
                    _ => p.to_string(),
                })
                .collect();
            out.push_str(&parts.join("&"));
        }
        return out;
    }
    match parse_kv(s) {
        Ok(kv) => kv
            .iter()
            .map(|(k, v)| {
                if k == "password" {
                    format!("{k}=***")
                } else {
                    format!("{k}={}", quote_kv(v))
                }
            })
            .collect::<Vec<_>>()
            .join(" "),
        Err(_) if s.contains("password") => {
            "(a connection string with a password, not shown)".to_string()
        }
        Err(_) => s.to_string(),
    }
}

/// Open a connection to the server `spec` names.
pub fn connect(spec: &str) -> Result<postgres::Client> {
    let shown = display(spec);
    let params = resolve(spec, &SystemEnv).map_err(|msg| Error::Db {
        path: shown.clone().into(),
        msg,
    })?;
    for w in &params.warnings {
        crate::cli::warn(format!("warning: {w}"));
    }
    let (cfg, tls) = params.config().map_err(|msg| Error::Db {
        path: shown.clone().into(),
        msg,
    })?;
    cfg.connect(tls).map_err(|e| Error::Db {
        path: shown.into(),
        msg: connect_message(&e, &params),
    })
}

/// The keywords mb understands (libpq's names). Others are refused, as
/// libpq refuses them ("invalid connection option"), so that a typo such
/// as `sslmdoe=verify-full` cannot silently fall back to a default.
const KEYWORDS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "service",
    "sslmode",
    "sslrootcert",
    "connect_timeout",
    "application_name",
    "options",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "target_session_attrs",
    "channel_binding",
];

/// libpq's environment variables and the keyword each one sets.
/// (PGPASSWORD is handled apart: it is never used.)
const ENV_VARS: &[(&str, &str)] = &[
    ("PGHOST", "host"),
    ("PGHOSTADDR", "hostaddr"),
    ("PGPORT", "port"),
    ("PGDATABASE", "dbname"),
    ("PGUSER", "user"),
    ("PGPASSFILE", "passfile"),
    ("PGSSLMODE", "sslmode"),
    ("PGSSLROOTCERT", "sslrootcert"),
    ("PGCONNECT_TIMEOUT", "connect_timeout"),
    ("PGAPPNAME", "application_name"),
    ("PGOPTIONS", "options"),
    ("PGTARGETSESSIONATTRS", "target_session_attrs"),
    ("PGCHANNELBINDING", "channel_binding"),
];

/// How long a connection attempt may take when `connect_timeout` is not
/// given (libpq waits forever; a cron job should not hang on a dead route).
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where mb gets environment variables, the home directory and the login
/// name; a trait so the unit tests can give their own.
trait Env {
    fn var(&self, name: &str) -> Option<String>;
    fn home(&self) -> Option<PathBuf>;
    fn login(&self) -> Option<String>;
    /// libpq's compiled-in socket directory.
    fn default_socket_dir(&self) -> String;
}

struct SystemEnv;

impl Env for SystemEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
    fn home(&self) -> Option<PathBuf> {
        self.var("HOME")
            .map(PathBuf::from)
            .or_else(|| passwd_entry().map(|(_, home)| home))
    }
    fn login(&self) -> Option<String> {
        passwd_entry().map(|(name, _)| name)
    }
    fn default_socket_dir(&self) -> String {
        // Debian's and Red Hat's libpq use /var/run/postgresql (a link to
        // /run/postgresql); upstream's default is /tmp.
        if Path::new("/var/run/postgresql").is_dir() {
            "/var/run/postgresql".into()
        } else {
            "/tmp".into()
        }
    }
}

/// The effective user's name and home directory from the password
/// database, as libpq takes the default user name.
fn passwd_entry() -> Option<(String, PathBuf)> {
    use std::ffi::CStr;
    use std::os::unix::ffi::OsStrExt;
    let mut buf = vec![0u8; 16384];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwuid_r writes into `pwd` and `buf`, both live and sized as
    // passed; `result` is either null or points at `pwd`.
    let rc = unsafe {
        libc::getpwuid_r(
            libc::geteuid(),
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        return None;
    }
    // SAFETY: on success pw_name and pw_dir point at NUL-terminated strings
    // inside `buf`, which outlives this block.
    let (name, dir) = unsafe { (CStr::from_ptr(pwd.pw_name), CStr::from_ptr(pwd.pw_dir)) };
    Some((
        name.to_string_lossy().into_owned(),
        PathBuf::from(std::ffi::OsStr::from_bytes(dir.to_bytes())),
    ))
}

/// libpq's sslmode values, in increasing strength.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> std::result::Result<SslMode, String> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(format!(
                    "invalid sslmode {other:?} (disable, allow, prefer, require, verify-ca, verify-full)"
                ))
            }
        })
    }

    fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Which certificates a verifying connection trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Roots {
    System,
    File(PathBuf),
}

/// A connection fully resolved from the string, the service, the
/// environment and the defaults.
#[derive(Debug)]
struct Params {
    /// Every keyword that ended up set (never `password`).
    kw: BTreeMap<String, String>,
    hosts: Vec<String>,
    ports: Vec<u16>,
    user: String,
    dbname: String,
    /// The effective mode (`Disable` for unix sockets).
    ssl: SslMode,
    roots: Roots,
    password: Option<String>,
    warnings: Vec<String>,
}

/// Split `spec` into keyword/value pairs (URI or key=value form).
fn parse(spec: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let s = spec.trim();
    if strip_scheme(s).is_some() {
        parse_uri(s)
    } else {
        parse_kv(s)
    }
}

fn strip_scheme(s: &str) -> Option<&str> {
    s.strip_prefix("postgresql://")
        .or_else(|| s.strip_prefix("postgres://"))
}

fn is_password_key(k: &str) -> bool {
    k == "password"
}

/// libpq's URI form: `postgresql://[user[:password]@][host[:port][,...]][/dbname][?key=value&...]`,
/// percent-encoded, an IPv6 host in brackets.
fn parse_uri(s: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let rest = strip_scheme(s).ok_or("not a postgres:// URI")?;
    let mut out = Vec::new();
    let (main, query) = match rest.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match main.find('/') {
        Some(i) => (&main[..i], Some(&main[i + 1..])),
        None => (main, None),
    };
    let hostpart = match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.split_once(':') {
                Some((u, p)) => {
                    if !u.is_empty() {
                        out.push(("user".into(), percent_decode(u)?));
                    }
                    out.push(("password".into(), percent_decode(p)?));
                }
                None if !userinfo.is_empty() => {
                    out.push(("user".into(), percent_decode(userinfo)?))
                }
                None => {}
            }
            &authority[at + 1..]
        }
        None => authority,
    };
    if !hostpart.is_empty() {
        let mut hosts = Vec::new();
        let mut ports = Vec::new();
        for h in hostpart.split(',') {
            let (host, port) = if let Some(r) = h.strip_prefix('[') {
                let end = r.find(']').ok_or(format!("unterminated [ in host {h:?}"))?;
                let after = &r[end + 1..];
                let port = match after.strip_prefix(':') {
                    Some(p) => Some(p),
                    None if after.is_empty() => None,
                    None => return Err(format!("unexpected {after:?} after IPv6 host")),
                };
                (r[..end].to_string(), port)
            } else {
                match h.rsplit_once(':') {
                    Some((host, port)) => (percent_decode(host)?, Some(port)),
                    None => (percent_decode(h)?, None),
                }
            };
            hosts.push(host);
            ports.push(port.map(percent_decode).transpose()?.unwrap_or_default());
        }
        if hosts.iter().any(|h| !h.is_empty()) {
            out.push(("host".into(), hosts.join(",")));
        }
        if ports.iter().any(|p| !p.is_empty()) {
            out.push(("port".into(), ports.join(",")));
        }
    }
    if let Some(p) = path {
        if !p.is_empty() {
            out.push(("dbname".into(), percent_decode(p)?));
        }
    }
    if let Some(q) = query {
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or(format!("missing \"=\" after {pair:?} in the URI's query"))?;
            let k = percent_decode(k)?;
            // libpq accepts these two JDBC-style spellings too.
            let k = match k.as_str() {
                "ssl" if v == "true" => {
                    out.push(("sslmode".into(), "require".into()));
                    continue;
                }
                _ => k,
            };
            out.push((k, percent_decode(v)?));
        }
    }
    Ok(out)
}

fn percent_decode(s: &str) -> std::result::Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(format!("invalid percent-encoding in {s:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("percent-encoding in {s:?} is not UTF-8"))
}

/// libpq's key=value form: `key = value` pairs separated by white space, a
/// value in single quotes may hold spaces, `\'` and `\\` escape.
fn parse_kv(s: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut it = s.chars().peekable();
    loop {
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        if it.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(c) = it.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        if it.next() != Some('=') {
            return Err(format!(
                "missing \"=\" after {key:?} in the connection string"
            ));
        }
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        let mut val = String::new();
        if it.next_if_eq(&'\'').is_some() {
            loop {
                match it.next() {
                    None => {
                        return Err("unterminated quoted string in the connection string".into())
                    }
                    Some('\'') => break,
                    Some('\\') => match it.next() {
                        Some(c) => val.push(c),
                        None => {
                            return Err("unterminated quoted string in the connection string".into())
                        }
                    },
                    Some(c) => val.push(c),
                }
            }
        } else {
            while let Some(c) = it.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    if let Some(n) = it.next() {
                        val.push(n);
                    }
                } else {
                    val.push(c);
                }
            }
        }
        out.push((key, val));
    }
}

fn quote_kv(v: &str) -> String {
    if !v.is_empty() && !v.contains(|c: char| c.is_whitespace() || c == '\'' || c == '\\') {
        return v.to_string();
    }
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Whether a file may hold a secret: a regular file with no group or
/// world permission bits (libpq's rule for the password file).
fn is_private(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.is_file() && meta.permissions().mode() & 0o077 == 0
}

/// The keywords of service `name`: the first of the user's service file
/// (`PGSERVICEFILE`, else `~/.pg_service.conf`) and the system one
/// (`PGSYSCONFDIR/pg_service.conf`) that defines it. A password there is
/// accepted only from a private file.
fn service(name: &str, env: &dyn Env) -> std::result::Result<Vec<(String, String)>, String> {
    let user_file = env
        .var("PGSERVICEFILE")
        .map(PathBuf::from)
        .or_else(|| env.home().map(|h| h.join(".pg_service.conf")));
    let sys_dir = env
        .var("PGSYSCONFDIR")
        .unwrap_or_else(|| "/etc/postgresql-common".into());
    let sys_file = Path::new(&sys_dir).join("pg_service.conf");
    let mut looked = Vec::new();
    for file in user_file.into_iter().chain([sys_file]) {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                looked.push(file.display().to_string());
                continue;
            }
            Err(e) => return Err(format!("service file {}: {e}", file.display())),
        };
        looked.push(file.display().to_string());
        if let Some(kv) = service_section(&text, name, &file)? {
            if kv.iter().any(|(k, _)| k == "password") {
                let private = std::fs::metadata(&file).is_ok_and(|m| is_private(&m));
                if !private {
                    return Err(format!(
                        "service file {} holds a password but is readable by others; \
                         chmod 0600 it, or move the password to the password file (PGPASSFILE, ~/.pgpass)",
                        file.display()
                    ));
                }
            }
            return Ok(kv);
        }
    }
    Err(format!(
        "definition of service {name:?} not found (looked in {})",
        looked.join(", ")
    ))
}

/// The section `[name]` of a pg_service.conf text, or None.
fn service_section(
    text: &str,
    name: &str,
    file: &Path,
) -> std::result::Result<Option<Vec<(String, String)>>, String> {
    let mut in_section = false;
    let mut found = false;
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(sec) = line.strip_prefix('[') {
            let sec = sec.strip_suffix(']').ok_or(format!(
                "{}:{}: syntax error in service file",
                file.display(),
                i + 1
            ))?;
            if in_section {
                break;
            }
            in_section = sec == name;
            found |= in_section;
            continue;
        }
        if !in_section {
            continue;
        }
        let (k, v) = line.split_once('=').ok_or(format!(
            "{}:{}: syntax error in service file",
            file.display(),
            i + 1
        ))?;
        let (k, v) = (k.trim(), v.trim());
        if k == "service" {
            return Err(format!(
                "{}:{}: nested service specifications are not supported",
                file.display(),
                i + 1
            ));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(found.then_some(out))
}

/// One line of a password file split into its five fields, or None for a
/// comment, a blank or a line with fewer than five fields. `\` escapes the
/// next character; a field that is an unescaped `*` alone matches anything
/// (`Some(None)` here).
fn pgpass_fields(line: &str) -> Option<Vec<Option<String>>> {
    if line.starts_with('#') || line.trim().is_empty() {
        return None;
    }
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut star = true;
    let mut it = line.chars();
    while let Some(c) = it.next() {
        match c {
            '\\' => {
                cur.push(it.next()?);
                star = false;
            }
            ':' if fields.len() < 4 => {
                fields.push(if star && cur == "*" { None } else { Some(cur) });
                cur = String::new();
                star = true;
            }
            c => cur.push(c),
        }
    }
    if fields.len() < 4 {
        return None;
    }
    fields.push(Some(cur));
    Some(fields)
}

/// The password for (host, port, db, user) from password-file text, the
/// first matching line as in libpq.
fn pgpass_lookup(text: &str, host: &str, port: &str, db: &str, user: &str) -> Option<String> {
    for line in text.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let Some(f) = pgpass_fields(line) else {
            continue;
        };
        let want = [host, port, db, user];
        if f[..4]
            .iter()
            .zip(want)
            .all(|(field, w)| field.as_deref().is_none_or(|v| v == w))
        {
            return f[4].clone();
        }
    }
    None
}

/// Resolve `spec` into everything needed to connect.
fn resolve(spec: &str, env: &dyn Env) -> std::result::Result<Params, String> {
    let given = parse(spec)?;
    let mut kw: BTreeMap<String, String> = BTreeMap::new();
    let mut warnings = Vec::new();
    for (k, v) in &given {
        if !KEYWORDS.contains(&k.as_str()) {
            return Err(format!("invalid connection option {k:?}"));
        }
        if k == "password" {
            return Err(
                "a password in the connection string is refused: it would show in ps, shell \
                 history and cron mail; put it in the password file instead \
                 (~/.pgpass or the file PGPASSFILE names, mode 0600, lines \
                 host:port:database:user:password)"
                    .into(),
            );
        }
        kw.insert(k.clone(), v.clone());
    }
    let service_name = kw.get("service").cloned().or_else(|| env.var("PGSERVICE"));
    let mut service_password = None;
    if let Some(name) = &service_name {
        for (k, v) in service(name, env)? {
            if !KEYWORDS.contains(&k.as_str()) {
                return Err(format!("service {name:?}: invalid connection option {k:?}"));
            }
            if k == "password" {
                service_password = Some(v);
                continue;
            }
            kw.entry(k).or_insert(v);
        }
    }
    for (var, k) in ENV_VARS {
        if let Some(v) = env.var(var) {
            kw.entry(k.to_string()).or_insert(v);
        }
    }
    if env.var("PGPASSWORD").is_some() {
        warnings.push(
            "PGPASSWORD is ignored (other processes can read the environment); \
             put the password in the password file (~/.pgpass or PGPASSFILE, mode 0600)"
                .to_string(),
        );
    }

    let default_socket = env.default_socket_dir();
    let hosts: Vec<String> = kw
        .get("host")
        .map(|h| h.split(',').map(str::to_string).collect())
        .unwrap_or_else(|| vec![default_socket.clone()]);
    let hosts: Vec<String> = hosts
        .into_iter()
        .map(|h| {
            if h.is_empty() {
                default_socket.clone()
            } else {
                h
            }
        })
        .collect();
    let ports: Vec<u16> = match kw.get("port") {
        None => vec![5432],
        Some(p) => p
            .split(',')
            .map(|p| {
                if p.is_empty() {
                    Ok(5432)
                } else {
                    p.parse::<u16>()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or(format!("invalid port number {p:?}"))
                }
            })
            .collect::<std::result::Result<_, _>>()?,
    };
    if ports.len() != 1 && ports.len() != hosts.len() {
        return Err(format!(
            "{} ports for {} hosts (give one port, or one per host)",
            ports.len(),
            hosts.len()
        ));
    }
    let unix: Vec<bool> = hosts.iter().map(|h| h.starts_with('/')).collect();
    if unix.iter().any(|u| *u) && unix.iter().any(|u| !*u) {
        return Err("a host list that mixes unix sockets and TCP hosts is not supported".into());
    }
    let user = match kw.get("user") {
        Some(u) => u.clone(),
        None => env
            .login()
            .ok_or("no user name: the effective user has no entry in the password database; set user= or PGUSER")?,
    };
    let dbname = kw.get("dbname").cloned().unwrap_or_else(|| user.clone());

    let requested = match kw.get("sslmode") {
        Some(m) => SslMode::parse(m)?,
        None => SslMode::VerifyFull,
    };
    let ssl = if unix[0] { SslMode::Disable } else { requested };
    let roots = match kw.get("sslrootcert").map(String::as_str) {
        Some("system") => Roots::System,
        Some(f) => Roots::File(PathBuf::from(f)),
        None => match env.home().map(|h| h.join(".postgresql/root.crt")) {
            Some(p) if p.is_file() => Roots::File(p),
            _ => Roots::System,
        },
    };
    // libpq: with a root certificate file, require verifies like verify-ca.
    let ssl = match (ssl, &roots) {
        (SslMode::Require, Roots::File(_)) => SslMode::VerifyCa,
        (m, _) => m,
    };

    // The password file, looked up per host as libpq does; one password
    // must serve all hosts (the client sends the same one to each).
    let password = match service_password {
        Some(p) => Some(p),
        None => {
            let file = kw
                .get("passfile")
                .map(PathBuf::from)
                .or_else(|| env.home().map(|h| h.join(".pgpass")));
            match file {
                None => None,
                Some(file) => match std::fs::metadata(&file) {
                    Err(_) => None,
                    Ok(m) if !is_private(&m) => {
                        if m.is_file() {
                            warnings.push(format!(
                                "password file {} has group or world access and is ignored; \
                                 permissions should be u=rw (0600) or less",
                                file.display()
                            ));
                        }
                        None
                    }
                    Ok(_) => {
                        let text = std::fs::read_to_string(&file)
                            .map_err(|e| format!("password file {}: {e}", file.display()))?;
                        let mut found: Option<String> = None;
                        for (i, h) in hosts.iter().enumerate() {
                            let port = ports.get(i).unwrap_or(&ports[0]).to_string();
                            // libpq matches the default socket directory as "localhost".
                            let h = if *h == default_socket {
                                "localhost"
                            } else {
                                h.as_str()
                            };
                            if let Some(p) = pgpass_lookup(&text, h, &port, &dbname, &user) {
                                match &found {
                                    Some(f) if *f != p => {
                                        return Err(format!(
                                            "password file {} has different passwords for the hosts of this connection; \
                                             mb sends one password to every host",
                                            file.display()
                                        ))
                                    }
                                    _ => found = Some(p),
                                }
                            }
                        }
                        found
                    }
                },
            }
        }
    };

    Ok(Params {
        kw,
        hosts,
        ports,
        user,
        dbname,
        ssl,
        roots,
        password,
        warnings,
    })
}

impl Params {
    /// The client configuration and the TLS connector.
    fn config(
        &self,
    ) -> std::result::Result<(postgres::Config, tokio_postgres_rustls::MakeRustlsConnect), String>
    {
        let mut c = postgres::Config::new();
        for h in &self.hosts {
            c.host(h);
        }
        for p in &self.ports {
            c.port(*p);
        }
        if let Some(addrs) = self.kw.get("hostaddr") {
            for a in addrs.split(',') {
                c.hostaddr(a.parse().map_err(|_| format!("invalid hostaddr {a:?}"))?);
            }
        }
        c.user(&self.user).dbname(&self.dbname);
        if let Some(p) = &self.password {
            c.password(p);
        }
        c.application_name(
            self.kw
                .get("application_name")
                .map_or_else(|| crate::cli::tool(), String::as_str),
        );
        if let Some(o) = self.kw.get("options") {
            c.options(o);
        }
        let timeout = match self.kw.get("connect_timeout") {
            None => DEFAULT_CONNECT_TIMEOUT,
            Some(t) => {
                let s: u64 = t
                    .parse()
                    .map_err(|_| format!("invalid connect_timeout {t:?} (seconds)"))?;
                // libpq: 0 means wait forever, and less than 2 means 2.
                if s == 0 {
                    Duration::from_secs(u64::from(u32::MAX))
                } else {
                    Duration::from_secs(s.max(2))
                }
            }
        };
        c.connect_timeout(timeout);
        if let Some(k) = self.kw.get("keepalives") {
            c.keepalives(k != "0");
        }
        let secs = |key: &str| -> std::result::Result<Option<Duration>, String> {
            self.kw
                .get(key)
                .map(|v| {
                    v.parse()
                        .map(Duration::from_secs)
                        .map_err(|_| format!("invalid {key} {v:?} (seconds)"))
                })
                .transpose()
        };
        if let Some(d) = secs("keepalives_idle")? {
            c.keepalives_idle(d);
        }
        if let Some(d) = secs("keepalives_interval")? {
            c.keepalives_interval(d);
        }
        if let Some(v) = self.kw.get("keepalives_count") {
            c.keepalives_retries(
                v.parse()
                    .map_err(|_| format!("invalid keepalives_count {v:?}"))?,
            );
        }
        if let Some(v) = self.kw.get("target_session_attrs") {
            c.target_session_attrs(match v.as_str() {
                "any" => postgres::config::TargetSessionAttrs::Any,
                "read-write" => postgres::config::TargetSessionAttrs::ReadWrite,
                "read-only" => postgres::config::TargetSessionAttrs::ReadOnly,
                _ => {
                    return Err(format!(
                        "invalid target_session_attrs {v:?} (any, read-write, read-only)"
                    ))
                }
            });
        }
        if let Some(v) = self.kw.get("channel_binding") {
            c.channel_binding(match v.as_str() {
                "disable" => postgres::config::ChannelBinding::Disable,
                "prefer" => postgres::config::ChannelBinding::Prefer,
                "require" => postgres::config::ChannelBinding::Require,
                _ => {
                    return Err(format!(
                        "invalid channel_binding {v:?} (disable, prefer, require)"
                    ))
                }
            });
        }
        c.ssl_mode(match self.ssl {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            _ => postgres::config::SslMode::Require,
        });
        Ok((c, tls::connector(self.ssl, &self.roots)?))
    }
}

/// The message for a failed connection: the driver's, plus what to do for
/// the failures an admin meets first (a certificate, a password, a refused
/// connection).
fn connect_message(e: &postgres::Error, p: &Params) -> String {
    let mut chain = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let t = s.to_string();
        if !chain.contains(&t) {
            chain.push_str(": ");
            chain.push_str(&t);
        }
        src = s.source();
    }
    let target = format!(
        "{} port {} (user {}, database {})",
        p.hosts.join(","),
        p.ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(","),
        p.user,
        p.dbname
    );
    let hint = if chain.contains("NotValidForName") || chain.contains("not valid for name") {
        format!(
            "; the server's certificate does not name host {:?} (sslmode={} checks the name: \
             connect by the name in the certificate)",
            p.hosts[0],
            p.ssl.name()
        )
    } else if chain.contains("UnknownIssuer") || chain.contains("invalid peer certificate") {
        let roots = match &p.roots {
            Roots::System => "the system's root certificates".to_string(),
            Roots::File(f) => f.display().to_string(),
        };
        format!(
            "; the server's certificate is not signed by a CA in {roots} (sslmode={}); \
             give your CA with sslrootcert=FILE or PGSSLROOTCERT",
            p.ssl.name()
        )
    } else if chain.contains("password authentication failed") || chain.contains("password missing")
    {
        "; put the password in the password file (~/.pgpass or PGPASSFILE, mode 0600, \
         lines host:port:database:user:password)"
            .to_string()
    } else if chain.contains("server does not support TLS") {
        "; the server has ssl=off: turn it on, or (on a trusted network only) sslmode=disable"
            .to_string()
    } else {
        String::new()
    };
    format!("cannot connect to {target}: {chain}{hint}")
}

/// The rustls side: a client configuration per sslmode.
mod tls {
    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::client::WebPkiServerVerifier;
    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
    use rustls_pki_types::pem::PemObject;

    use super::{Roots, SslMode};

    pub(super) fn connector(
        mode: SslMode,
        roots: &Roots,
    ) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS set-up: {e}"))?;
        let verifier: Arc<dyn ServerCertVerifier> = match mode {
            // Disable never starts TLS; Prefer/Require check no certificate
            // (libpq's meaning of those modes).
            SslMode::Disable | SslMode::Prefer | SslMode::Require => {
                Arc::new(AnyCert(provider.clone()))
            }
            SslMode::VerifyCa | SslMode::VerifyFull => {
                let store = Arc::new(root_store(roots)?);
                let webpki = WebPkiServerVerifier::builder_with_provider(store, provider.clone())
                    .build()
                    .map_err(|e| format!("TLS set-up: {e}"))?;
                if mode == SslMode::VerifyCa {
                    Arc::new(ChainOnly(webpki))
                } else {
                    webpki
                }
            }
        };
        let cfg = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(tokio_postgres_rustls::MakeRustlsConnect::new(cfg))
    }

    fn root_store(roots: &Roots) -> Result<RootCertStore, String> {
        let mut store = RootCertStore::empty();
        match roots {
            Roots::System => {
                let found = rustls_native_certs::load_native_certs();
                store.add_parsable_certificates(found.certs);
                if store.is_empty() {
                    return Err(
                        "no system root certificates found (install ca-certificates), \
                         or give the server's CA with sslrootcert=FILE or PGSSLROOTCERT"
                            .into(),
                    );
                }
            }
            Roots::File(f) => {
                let certs = CertificateDer::pem_file_iter(f)
                    .map_err(|e| format!("root certificate file {}: {e}", f.display()))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("root certificate file {}: {e}", f.display()))?;
                let (added, _) = store.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(format!(
                        "root certificate file {}: no certificate in it (PEM, \"BEGIN CERTIFICATE\")",
                        f.display()
                    ));
                }
            }
        }
        Ok(store)
    }

    /// `sslmode=prefer`/`require`: encryption without authentication.
    /// The handshake signatures are still checked (against the key in
    /// whatever certificate the server sent).
    #[derive(Debug)]
    struct AnyCert(Arc<CryptoProvider>);

    impl ServerCertVerifier for AnyCert {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    /// `sslmode=verify-ca`: the chain must lead to a trusted root; the
    /// name in the certificate is not compared with the host.
    #[derive(Debug)]
    struct ChainOnly(Arc<WebPkiServerVerifier>);

    impl ServerCertVerifier for ChainOnly {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            server_name: &ServerName<'_>,
            ocsp: &[u8],
            now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            match self
                .0
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            {
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                )) => Ok(ServerCertVerified::assertion()),
                other => other,
            }
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.0.verify_tls12_signature(message, cert, dss)
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.0.verify_tls13_signature(message, cert, dss)
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.supported_verify_schemes()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::os::unix::fs::PermissionsExt;

    struct TestEnv {
        vars: HashMap<&'static str, String>,
        home: PathBuf,
    }

    impl Env for TestEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.vars.get(name).cloned()
        }
        fn home(&self) -> Option<PathBuf> {
            Some(self.home.clone())
        }
        fn login(&self) -> Option<String> {
            Some("alice".into())
        }
        fn default_socket_dir(&self) -> String {
            "/var/run/postgresql".into()
        }
    }

    fn env(dir: &Path, vars: &[(&'static str, &str)]) -> TestEnv {
        TestEnv {
            vars: vars.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            home: dir.to_path_buf(),
        }
    }

    fn write(p: &Path, text: &str, mode: u32) {
        std::fs::write(p, text).unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn kv(spec: &str) -> Vec<(String, String)> {
        parse(spec).unwrap()
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn recognises_server_specs() {
        assert!(is_postgres("postgres://db.example/mb"));
        assert!(is_postgres("postgresql:///mb?host=/run/postgresql"));
        assert!(is_postgres("host=db.example dbname=mb"));
        assert!(is_postgres("service=billing"));
        assert!(is_postgres("host=/run/postgresql dbname=mb"));
        assert!(is_postgres("host = db dbname = 'my db'"));
        assert!(!is_postgres("/var/lib/mb/usage.db"));
        assert!(!is_postgres("usage.db"));
        assert!(!is_postgres("data/x=1.db"));
        assert!(!is_postgres("./a=b/usage.db"));
    }

    #[test]
    fn parses_uris() {
        assert_eq!(
            kv("postgresql://mb_ingest@db.example:6432/billing?sslmode=verify-ca&application_name=x"),
            pairs(&[
                ("user", "mb_ingest"),
                ("host", "db.example"),
                ("port", "6432"),
                ("dbname", "billing"),
                ("sslmode", "verify-ca"),
                ("application_name", "x"),
            ])
        );
        assert_eq!(
            kv("postgres:///mb?host=%2Frun%2Fpostgresql"),
            pairs(&[("dbname", "mb"), ("host", "/run/postgresql")])
        );
        assert_eq!(
            kv("postgres://[::1]:5433,db2:5434/mb"),
            pairs(&[("host", "::1,db2"), ("port", "5433,5434"), ("dbname", "mb")])
        );
        assert_eq!(kv("postgres://"), pairs(&[]));
        assert_eq!(
            kv("postgres://u%40x:p%3Aw@h/d"),
            pairs(&[
                ("user", "u@x"),
                ("password", "p:w"),
                ("host", "h"),
                ("dbname", "d")
            ])
        );
        assert!(parse("postgres://h/d?sslmode").is_err());
        assert!(parse("postgres://h/%zz").is_err());
    }

    #[test]
    fn parses_key_value_strings() {
        assert_eq!(
            kv("host=db.example  port = 5433 dbname='my db' user=o\\'brien"),
            pairs(&[
                ("host", "db.example"),
                ("port", "5433"),
                ("dbname", "my db"),
                ("user", "o'brien"),
            ])
        );
        assert_eq!(
            kv(r"application_name='a \'b\' \\c'"),
            pairs(&[("application_name", r"a 'b' \c")])
        );
        assert!(parse("host=x dbname='unterminated").is_err());
        assert!(parse("host").is_err());
    }

    #[test]
    fn refuses_passwords_and_unknown_options() {
        let d = tempfile::tempdir().unwrap();
        let e = env(d.path(), &[]);
        for spec in [
            "postgres://u:secret@h/d",
            "postgres://u@h/d?password=secret",
            "host=h password=secret",
        ] {
            let err = resolve(spec, &e).unwrap_err();
            assert!(
                err.contains("password in the connection string is refused"),
                "{err}"
            );
            assert!(err.contains("PGPASSFILE"), "{err}");
            assert!(!err.contains("secret"));
        }
        let err = resolve("host=h sslmdoe=disable", &e).unwrap_err();
        assert_eq!(err, "invalid connection option \"sslmdoe\"");
        let err = resolve("host=h sslmode=verify", &e).unwrap_err();
        assert!(err.starts_with("invalid sslmode \"verify\""), "{err}");
    }

    #[test]
    fn display_never_shows_a_password() {
        assert_eq!(
            display("postgres://u:s3cret@h:5432/d"),
            "postgres://u:***@h:5432/d"
        );
        assert_eq!(
            display("postgresql://u@h/d?sslmode=require&password=s3cret"),
            "postgresql://u@h/d?sslmode=require&password=***"
        );
        assert_eq!(
            display("host=h password='s3 cret' dbname=d"),
            "host=h password=*** dbname=d"
        );
        assert_eq!(
            display("host=h password='s3cret"),
            "(a connection string with a password, not shown)"
        );
        assert_eq!(display("postgres://h/d"), "postgres://h/d");
        assert_eq!(display("host=h dbname='my db'"), "host=h dbname='my db'");
        // The colon of a port is not a password separator.
        assert_eq!(display("postgres://h:5432/d"), "postgres://h:5432/d");
    }

    #[test]
    fn precedence_string_then_service_then_environment_then_defaults() {
        let d = tempfile::tempdir().unwrap();
        write(
            &d.path().join(".pg_service.conf"),
            "# billing\n[other]\nhost=wrong\n\n[billing]\nhost = svc.example\nport=6000\ndbname=svcdb\n",
            0o644,
        );
        let e = env(
            d.path(),
            &[
                ("PGSERVICE", "billing"),
                ("PGHOST", "env.example"),
                ("PGPORT", "7000"),
                ("PGUSER", "envuser"),
                ("PGDATABASE", "envdb"),
            ],
        );
        let p = resolve("dbname=given", &e).unwrap();
        assert_eq!(p.hosts, ["svc.example"]);
        assert_eq!(p.ports, [6000]);
        assert_eq!(p.user, "envuser");
        assert_eq!(p.dbname, "given");
        assert_eq!(p.ssl, SslMode::VerifyFull);

        // No service: the environment; nothing: the defaults.
        let e = env(
            d.path(),
            &[("PGHOST", "env.example"), ("PGSSLMODE", "require")],
        );
        let p = resolve("postgres://", &e).unwrap();
        assert_eq!((p.hosts[0].as_str(), p.ports[0]), ("env.example", 5432));
        assert_eq!((p.user.as_str(), p.dbname.as_str()), ("alice", "alice"));
        assert_eq!(p.ssl, SslMode::Require);
        let p = resolve("", &env(d.path(), &[])).unwrap();
        assert_eq!(p.hosts, ["/var/run/postgresql"]);
        assert_eq!(p.ssl, SslMode::Disable, "no TLS on a unix socket");

        let err = resolve("service=nope", &env(d.path(), &[])).unwrap_err();
        assert!(
            err.starts_with("definition of service \"nope\" not found"),
            "{err}"
        );
    }

    #[test]
    fn service_files_user_then_system_and_password_rules() {
        let d = tempfile::tempdir().unwrap();
        let sys = d.path().join("etc");
        std::fs::create_dir(&sys).unwrap();
        write(
            &sys.join("pg_service.conf"),
            "[sys]\nhost=sys.example\n[pw]\nhost=h\npassword=x\n",
            0o644,
        );
        let own = d.path().join("own.conf");
        write(&own, "[mine]\nhost=mine.example\npassword=pw1\n", 0o600);
        let sysdir = sys.to_str().unwrap();
        let ownf = own.to_str().unwrap();
        let e = env(
            d.path(),
            &[("PGSYSCONFDIR", sysdir), ("PGSERVICEFILE", ownf)],
        );
        let p = resolve("service=sys", &e).unwrap();
        assert_eq!(p.hosts, ["sys.example"]);
        let p = resolve("service=mine", &e).unwrap();
        assert_eq!(p.password.as_deref(), Some("pw1"));
        let err = resolve("service=pw", &e).unwrap_err();
        assert!(
            err.contains("holds a password but is readable by others"),
            "{err}"
        );
        write(&own, "[mine]\nservice=other\n", 0o600);
        assert!(resolve("service=mine", &e)
            .unwrap_err()
            .contains("nested service"));
    }

    #[test]
    fn pgpass_format_and_matching() {
        let text = "# comment\n\
                    db.example:5432:billing:mb_ingest:first\n\
                    db.example:5432:billing:mb_ingest:second\n\
                    *:*:*:report:any\\:thing\n\
                    host\\:colon:5432:d:u:esc\n\
                    localhost:5432:*:alice:sock\n\
                    \\*:5432:d:star:literal\n\
                    short:line\n";
        assert_eq!(
            pgpass_lookup(text, "db.example", "5432", "billing", "mb_ingest").as_deref(),
            Some("first")
        );
        assert_eq!(
            pgpass_lookup(text, "db.example", "5433", "billing", "mb_ingest"),
            None
        );
        assert_eq!(
            pgpass_lookup(text, "x", "1", "y", "report").as_deref(),
            Some("any:thing")
        );
        assert_eq!(
            pgpass_lookup(text, "host:colon", "5432", "d", "u").as_deref(),
            Some("esc")
        );
        assert_eq!(pgpass_lookup(text, "anything", "5432", "d", "star"), None);
        assert_eq!(
            pgpass_lookup(text, "*", "5432", "d", "star").as_deref(),
            Some("literal")
        );
        // A password may itself contain colons unescaped (the fifth field is the rest).
        assert_eq!(
            pgpass_lookup("h:1:d:u:a:b\n", "h", "1", "d", "u").as_deref(),
            Some("a:b")
        );
        assert_eq!(
            pgpass_lookup("h:1:d:u:crlf\r\n", "h", "1", "d", "u").as_deref(),
            Some("crlf")
        );
    }

    #[test]
    fn pgpass_file_is_used_only_when_private() {
        let d = tempfile::tempdir().unwrap();
        let pass = d.path().join(".pgpass");
        write(
            &pass,
            "localhost:5432:alice:alice:sockpw\ndb:5432:mb:alice:tcppw\n",
            0o600,
        );
        let e = env(d.path(), &[]);
        // The default socket directory is matched as "localhost".
        assert_eq!(resolve("", &e).unwrap().password.as_deref(), Some("sockpw"));
        assert_eq!(
            resolve("host=db dbname=mb", &e)
                .unwrap()
                .password
                .as_deref(),
            Some("tcppw")
        );
        assert_eq!(resolve("host=other", &e).unwrap().password, None);
        std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o644)).unwrap();
        let p = resolve("host=db dbname=mb", &e).unwrap();
        assert_eq!(p.password, None);
        assert!(
            p.warnings[0].contains("has group or world access"),
            "{:?}",
            p.warnings
        );
        // PGPASSFILE names another file; PGPASSWORD is never used.
        let other = d.path().join("other");
        write(&other, "*:*:*:*:frompassfile\n", 0o600);
        let e = env(
            d.path(),
            &[
                ("PGPASSFILE", other.to_str().unwrap()),
                ("PGPASSWORD", "no"),
            ],
        );
        let p = resolve("host=db", &e).unwrap();
        assert_eq!(p.password.as_deref(), Some("frompassfile"));
        assert!(p
            .warnings
            .iter()
            .any(|w| w.starts_with("PGPASSWORD is ignored")));
    }

    #[test]
    fn sslmodes_and_roots() {
        let d = tempfile::tempdir().unwrap();
        let e = env(d.path(), &[]);
        let p = resolve("host=db", &e).unwrap();
        assert_eq!((p.ssl, &p.roots), (SslMode::VerifyFull, &Roots::System));
        let p = resolve("host=db sslmode=allow", &e).unwrap();
        assert_eq!(p.ssl, SslMode::Prefer);
        let p = resolve("host=db sslmode=require sslrootcert=/ca.pem", &e).unwrap();
        assert_eq!(
            p.ssl,
            SslMode::VerifyCa,
            "require with a CA file verifies like libpq"
        );
        let p = resolve("host=db sslmode=require sslrootcert=system", &e).unwrap();
        assert_eq!(p.ssl, SslMode::Require);
        let p = resolve("host=/run/postgresql sslmode=verify-full", &e).unwrap();
        assert_eq!(p.ssl, SslMode::Disable);
        // libpq's per-user root certificate is used when present.
        std::fs::create_dir(d.path().join(".postgresql")).unwrap();
        write(&d.path().join(".postgresql/root.crt"), "x", 0o644);
        let p = resolve("host=db", &e).unwrap();
        assert_eq!(p.roots, Roots::File(d.path().join(".postgresql/root.crt")));
        let e = env(d.path(), &[("PGSSLROOTCERT", "/etc/mb/ca.pem")]);
        assert_eq!(
            resolve("host=db", &e).unwrap().roots,
            Roots::File("/etc/mb/ca.pem".into())
        );
        // A missing or empty root file is a clear error before connecting.
        let p = resolve("host=db sslrootcert=/nonexistent/ca.pem", &e).unwrap();
        let err = p.config().err().unwrap();
        assert!(
            err.starts_with("root certificate file /nonexistent/ca.pem"),
            "{err}"
        );
    }

    #[test]
    fn hosts_and_ports() {
        let d = tempfile::tempdir().unwrap();
        let e = env(d.path(), &[]);
        assert!(resolve("host=a,b port=1,2,3", &e)
            .unwrap_err()
            .contains("3 ports for 2 hosts"));
        assert!(resolve("host=a port=0", &e).is_err());
        assert!(resolve("host=/tmp,db", &e)
            .unwrap_err()
            .contains("mixes unix sockets"));
        let p = resolve("host=a,b port=1", &e).unwrap();
        assert_eq!(p.ports, [1]);
        assert!(p.config().is_ok());
    }
}
