//! A real PostgreSQL server for the tests: one throwaway cluster per test
//! process, started on first use and stopped when the process ends.
//!
//! The cluster is made the way an admin would make one by hand: `initdb` as
//! an unprivileged user (PostgreSQL refuses to run as root, and CI runs as
//! root, so a system user `mbpgtest` is created and the server runs as it),
//! in a temp directory, with its unix socket there and a free loopback TCP
//! port, `ssl = on` with a CA and a server certificate for `localhost` and
//! 127.0.0.1 made by rcgen, trust on the socket (the kernel knows who
//! connects) and SCRAM passwords over TCP, so the TCP tests go through the
//! password file like a VM does.
//!
//! `MB_TEST_PG` names a running server to use instead (a libpq connection
//! string for a superuser, without dbname: `host=/run/postgresql
//! user=postgres`); each test still gets its own database. Tests that stop
//! the server or need its CA always start a private cluster.
//!
//! Without PostgreSQL the tests skip with a message saying how to install
//! it; with `CI=true` they fail instead, so CI cannot pass without running
//! them. The binaries are looked for where Debian puts them
//! (/usr/lib/postgresql/VERSION/bin, which is not on PATH), then on PATH.

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// The superuser role the test clusters are created with.
pub const SUPERUSER: &str = "mbtest";
/// Its password (for TCP, via the password file).
pub const SUPERUSER_PASSWORD: &str = "mbtest-secret";
/// The system user the server runs as when the tests run as root.
const OS_USER: &str = "mbpgtest";

/// How to get PostgreSQL, for the skip message.
pub const INSTALL_HINT: &str = "apt-get install -y postgresql";
/// How to get pgbouncer, for the skip message.
pub const BOUNCER_HINT: &str = "apt-get install -y pgbouncer";

/// A running test cluster.
pub struct Pg {
    /// The temp directory (data, socket, certificates, log).
    pub dir: PathBuf,
    /// The unix-socket directory.
    pub socket_dir: PathBuf,
    /// The TCP port on 127.0.0.1.
    pub port: u16,
    /// The test CA's certificate (PEM).
    pub ca: PathBuf,
    /// The PostgreSQL bin directory.
    pub bin: PathBuf,
    /// Whether this harness owns the server (false for MB_TEST_PG).
    owned: bool,
    /// For MB_TEST_PG: the superuser connection string.
    external: Option<String>,
    /// Whether the server runs as OS_USER.
    as_os_user: bool,
    watchdog: Option<std::process::Child>,
}

static SHARED: OnceLock<Option<Pg>> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);
static NEXT_BOUNCER: AtomicU32 = AtomicU32::new(0);

/// The process's shared server, or None (with a message on stderr) when
/// PostgreSQL is not installed and this is not CI.
pub fn server() -> Option<&'static Pg> {
    SHARED
        .get_or_init(|| {
            if let Ok(spec) = std::env::var("MB_TEST_PG") {
                return Some(Pg::external(spec));
            }
            start_or_skip()
        })
        .as_ref()
}

/// A private cluster for one test (one that stops the server, or needs its
/// CA), or None when PostgreSQL is missing and this is not CI.
pub fn private_server() -> Option<Pg> {
    start_or_skip()
}

fn start_or_skip() -> Option<Pg> {
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    match Pg::start() {
        Ok(pg) => Some(pg),
        Err(why) if in_ci => panic!(
            "CI=true and the PostgreSQL test server cannot be started: {why} \
             (.ci/run installs it with: {INSTALL_HINT})"
        ),
        Err(why) => {
            eprintln!(
                "skipping PostgreSQL test: {why}. To run the PostgreSQL tests, install it \
                 ({INSTALL_HINT}; the tests find /usr/lib/postgresql/*/bin), or set \
                 MB_TEST_PG to a superuser connection string of a running server"
            );
            None
        }
    }
}

/// `Some(server)`, or return from the test (it was skipped).
#[macro_export]
macro_rules! pg_or_skip {
    () => {
        match $crate::pg::server() {
            Some(pg) => pg,
            None => return,
        }
    };
}

/// The PostgreSQL bin directory: MB_PG_BINDIR, the newest
/// /usr/lib/postgresql/*/bin, or the directory of `initdb` on PATH.
pub fn find_bindir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("MB_PG_BINDIR") {
        return Some(PathBuf::from(d));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, b)) = versions.pop() {
        return Some(b);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Make sure the unprivileged system user exists (root only).
fn ensure_os_user() -> Result<(), String> {
    let exists = Command::new("id")
        .arg("-u")
        .arg(OS_USER)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if exists {
        return Ok(());
    }
    let out = Command::new("useradd")
        .args(["--system", "--no-create-home", "--home-dir", "/nonexistent"])
        .args(["--shell", "/usr/sbin/nologin", OS_USER])
        .output()
        .map_err(|e| format!("useradd: {e}"))?;
    // A parallel test process may have created it meanwhile.
    if !out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("already exists") {
        return Err(format!(
            "useradd {OS_USER}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

fn chown(path: &Path) -> Result<(), String> {
    let st = Command::new("chown")
        .args(["-R", OS_USER])
        .arg(path)
        .status()
        .map_err(|e| format!("chown: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("chown {OS_USER} {}: failed", path.display()))
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The CA and server certificate, as PEM: (ca_cert, server_cert, server_key).
fn make_certs(names: &[&str]) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "mb test CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut leaf = CertificateParams::new(names).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &ca).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

impl Pg {
    fn external(spec: String) -> Pg {
        Pg {
            dir: PathBuf::new(),
            socket_dir: PathBuf::new(),
            port: 0,
            ca: PathBuf::new(),
            bin: find_bindir().unwrap_or_default(),
            owned: false,
            external: Some(spec),
            as_os_user: false,
            watchdog: None,
        }
    }

    /// initdb and start a new cluster.
    pub fn start() -> Result<Pg, String> {
        let bin = find_bindir().ok_or("PostgreSQL's initdb was not found")?;
        let as_os_user = is_root();
        if as_os_user {
            ensure_os_user()?;
        }
        // In /tmp whatever TMPDIR says: the server's user must be able to
        // reach it, and a socket path must stay under 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("mb-pg")
            .tempdir_in("/tmp")
            .map_err(|e| e.to_string())?
            .keep();
        let mut pg = Pg {
            socket_dir: dir.join("sock"),
            ca: dir.join("ca.crt"),
            dir,
            port: 0,
            bin,
            owned: true,
            external: None,
            as_os_user,
            watchdog: None,
        };
        std::fs::create_dir(&pg.socket_dir).map_err(|e| e.to_string())?;
        let (ca, cert, key) = make_certs(&["localhost", "127.0.0.1"]);
        std::fs::write(&pg.ca, ca).unwrap();
        std::fs::write(pg.dir.join("server.crt"), cert).unwrap();
        std::fs::write(pg.dir.join("server.key"), key).unwrap();
        std::fs::set_permissions(
            pg.dir.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::fs::write(pg.dir.join("pwfile"), SUPERUSER_PASSWORD).unwrap();
        if as_os_user {
            std::fs::set_permissions(&pg.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
            chown(&pg.dir)?;
        }
        pg.spawn_watchdog();
        let data = pg.data();
        let out = pg
            .pg_cmd("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", SUPERUSER, "-E", "UTF8", "--locale=C", "--no-sync"])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", pg.dir.join("pwfile").display()))
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let conf = format!(
            "listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{sock}'\n\
             max_connections = 300\n\
             ssl = on\n\
             ssl_cert_file = '{dir}/server.crt'\n\
             ssl_key_file = '{dir}/server.key'\n\
             # A throwaway cluster: durability is not what these tests measure.\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             shared_buffers = 64MB\n\
             log_min_messages = warning\n",
            sock = pg.socket_dir.display(),
            dir = pg.dir.display(),
        );
        let mut c = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        c.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), c).unwrap();
        // A port can be taken between choosing and binding it: retry.
        let mut last = String::new();
        for _ in 0..5 {
            pg.port = free_port();
            match pg.start_server() {
                Ok(()) => return Ok(pg),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A command for a PostgreSQL binary, as the server's OS user.
    fn pg_cmd(&self, name: &str) -> Command {
        let exe = self.bin.join(name);
        if self.as_os_user {
            let mut c = Command::new("runuser");
            c.args(["-u", OS_USER, "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    /// Start (or restart) the server on its port.
    pub fn start_server(&self) -> Result<(), String> {
        let out = self
            .pg_cmd("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-w", "-t", "60", "-o"])
            .arg(format!("-p {}", self.port))
            .arg("start")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("pg_ctl start: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            Err(format!(
                "pg_ctl start failed: {}; server log: {}",
                String::from_utf8_lossy(&out.stderr).trim(),
                log.lines().rev().take(5).collect::<Vec<_>>().join(" / ")
            ))
        }
    }

    /// Stop the server (fast shutdown: connections are ended).
    pub fn stop_server(&self) {
        let _ = self
            .pg_cmd("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "fast", "-w", "-t", "60", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// Stop the server and remove its files once this process is gone,
    /// whichever way it ends (a static is never dropped, and a killed test
    /// process runs no destructor).
    fn spawn_watchdog(&mut self) {
        let pg_ctl = if self.as_os_user {
            format!("runuser -u {OS_USER} -- {}/pg_ctl", self.bin.display())
        } else {
            format!("{}/pg_ctl", self.bin.display())
        };
        // pgbouncers started in front of this cluster (Pg::start_bouncer)
        // leave their pid files in the cluster's directory.
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             for f in '{dir}'/bouncer-*/pgbouncer.pid; do \
               [ -f \"$f\" ] && kill -TERM \"$(cat \"$f\")\" 2>/dev/null; done; \
             {pg_ctl} -D '{data}' -m immediate -w stop >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id(),
            data = self.data().display(),
            dir = self.dir.display(),
        );
        // In a process group of its own, so that a signal to the test's
        // group (a CI timeout, ^C) does not take the watchdog with it.
        use std::os::unix::process::CommandExt;
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the cluster's watchdog");
        self.watchdog = Some(child);
    }

    /// A superuser connection string (unix socket, trust) for `dbname`.
    pub fn admin_spec(&self, dbname: &str) -> String {
        match &self.external {
            Some(s) => format!("{s} dbname={dbname}"),
            None => format!(
                "host={} port={} user={SUPERUSER} dbname={dbname}",
                self.socket_dir.display(),
                self.port
            ),
        }
    }

    /// A superuser client connected to `dbname`.
    pub fn client(&self, dbname: &str) -> ::postgres::Client {
        ::postgres::Client::connect(&self.admin_spec(dbname), ::postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect to the test server ({dbname}): {e}"))
    }

    /// A new empty database; its name.
    pub fn new_db(&self) -> String {
        let name = format!(
            "mbt_{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::SeqCst)
        );
        self.client("postgres")
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        name
    }

    /// The `--db` value for `dbname` over the unix socket as the superuser.
    pub fn socket_db(&self, dbname: &str) -> String {
        self.admin_spec(dbname)
    }

    /// The `--db` URI for `dbname` over TCP on loopback as `user`, with
    /// verify-full against the test CA (the password from PGPASSFILE).
    pub fn tcp_db(&self, dbname: &str, user: &str) -> String {
        format!(
            "postgresql://{user}@localhost:{}/{dbname}?sslmode=verify-full&sslrootcert={}",
            self.port,
            self.ca.display()
        )
    }

    /// Write a private password file at `path` with `lines`
    /// (`host:port:db:user:password`).
    pub fn write_pgpass(path: &Path, lines: &[String]) {
        std::fs::write(path, lines.join("\n") + "\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    /// Rows of `sql` in `dbname`, each row's columns as text joined by `|`
    /// (NULL as `NULL`).
    pub fn query(&self, dbname: &str, sql: &str) -> Vec<String> {
        let mut c = self.client(dbname);
        c.simple_query(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .into_iter()
            .filter_map(|m| match m {
                ::postgres::SimpleQueryMessage::Row(r) => Some(
                    (0..r.len())
                        .map(|i| r.get(i).unwrap_or("NULL").to_string())
                        .collect::<Vec<_>>()
                        .join("|"),
                ),
                _ => None,
            })
            .collect()
    }

    /// After concurrent writers: `api_rows` api rows, each id once; the
    /// `runs` finished runs that read lines add up to `inserted`,
    /// `duplicates` and `read`; and the rollup sums exactly the rows.
    pub fn assert_reconciled(
        &self,
        dbname: &str,
        api_rows: usize,
        (runs, inserted, duplicates, read): (usize, usize, usize, usize),
    ) {
        assert_eq!(
            self.query(dbname, "SELECT count(*), count(DISTINCT id) FROM api_usage"),
            [format!("{api_rows}|{api_rows}")]
        );
        assert_eq!(
            self.query(
                dbname,
                "SELECT count(*), sum(inserted), sum(duplicates), sum(read) FROM ingest_runs \
                 WHERE status = 'ok' AND read > 0"
            ),
            [format!("{runs}|{inserted}|{duplicates}|{read}")]
        );
        assert_eq!(
            self.query(
                dbname,
                "SELECT (SELECT sum(requests) FROM api_rollup) = (SELECT count(*) FROM api_usage), \
                 (SELECT sum(cost_nusd) FROM api_rollup) = (SELECT sum(cost_nusd) FROM api_usage)"
            ),
            ["t|t"]
        );
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        if self.owned {
            self.stop_server();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

/// Wait until `f` holds, up to `limit`.
pub fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// A pgbouncer in front of a test cluster, as a fleet would run it: in
/// transaction mode, so that its few server connections are shared by every
/// client, one transaction at a time.
///
/// It runs as the cluster's unprivileged user (pgbouncer refuses root) in a
/// directory of the cluster's temp dir, listens on a free loopback port
/// with TLS (the cluster's certificate for localhost and 127.0.0.1, so mb
/// connects with its default sslmode=verify-full), authenticates clients
/// by SCRAM against its own auth file (the superuser's password), and
/// reaches the server over the unix socket (trust), as a pgbouncer on the
/// database host does. `server_round_robin` and `min_pool_size` make
/// consecutive transactions of one client land on different server
/// connections, so anything a client leaves in a session (a prepared
/// statement, a `SET`) shows at once rather than by chance. It is stopped
/// when dropped, and by the cluster's watchdog if the test process dies.
pub struct Bouncer {
    /// The listening port on 127.0.0.1.
    pub port: u16,
    /// Its directory (config, auth file, log, pid file, unix socket).
    pub dir: PathBuf,
    /// A password file for the superuser through this pgbouncer.
    pub passfile: PathBuf,
    ca: PathBuf,
    pool_size: u32,
}

/// pgbouncer's binary: MB_PGBOUNCER, /usr/sbin/pgbouncer (Debian), or on PATH.
pub fn find_pgbouncer() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MB_PGBOUNCER") {
        return Some(PathBuf::from(p));
    }
    let debian = PathBuf::from("/usr/sbin/pgbouncer");
    if debian.is_file() {
        return Some(debian);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("pgbouncer"))
        .find(|p| p.is_file())
}

/// A pgbouncer in front of `pg` with `pool_size` server connections per
/// database, or None (with a message) when pgbouncer is not installed or
/// the server is not the harness's own, and this is not CI.
pub fn bouncer_or_skip(pg: &Pg, pool_size: u32) -> Option<Bouncer> {
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    match pg.start_bouncer(pool_size) {
        Ok(b) => Some(b),
        Err(why) if in_ci => panic!(
            "CI=true and pgbouncer cannot be started: {why} (.ci/run installs it with: \
             {BOUNCER_HINT})"
        ),
        Err(why) => {
            eprintln!(
                "skipping pgbouncer test: {why}. To run the pgbouncer tests, install it \
                 ({BOUNCER_HINT}; the tests find /usr/sbin/pgbouncer, or set MB_PGBOUNCER)"
            );
            None
        }
    }
}

impl Pg {
    /// Start a pgbouncer in front of this cluster (see [`Bouncer`]).
    pub fn start_bouncer(&self, pool_size: u32) -> Result<Bouncer, String> {
        if !self.owned {
            return Err(
                "MB_TEST_PG names an external server, whose socket and certificate \
                        the harness does not know"
                    .into(),
            );
        }
        let exe = find_pgbouncer().ok_or("pgbouncer was not found")?;
        let dir = self.dir.join(format!(
            "bouncer-{}",
            NEXT_BOUNCER.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let auth = dir.join("userlist.txt");
        std::fs::write(&auth, format!("\"{SUPERUSER}\" \"{SUPERUSER_PASSWORD}\"\n")).unwrap();
        std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o600)).unwrap();
        if self.as_os_user {
            chown(&dir)?;
        }
        let passfile = dir.join("client.pgpass");
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let ini = dir.join("pgbouncer.ini");
            std::fs::write(
                &ini,
                format!(
                    "[databases]\n\
                     * = host={sock} port={server_port}\n\
                     [pgbouncer]\n\
                     listen_addr = 127.0.0.1\n\
                     listen_port = {port}\n\
                     unix_socket_dir = {dir}\n\
                     pool_mode = transaction\n\
                     default_pool_size = {pool_size}\n\
                     min_pool_size = {pool_size}\n\
                     server_round_robin = 1\n\
                     max_client_conn = 500\n\
                     auth_type = scram-sha-256\n\
                     auth_file = {auth}\n\
                     admin_users = {SUPERUSER}\n\
                     client_tls_sslmode = require\n\
                     client_tls_cert_file = {cdir}/server.crt\n\
                     client_tls_key_file = {cdir}/server.key\n\
                     logfile = {dir}/pgbouncer.log\n\
                     pidfile = {dir}/pgbouncer.pid\n\
                     log_connections = 0\n\
                     log_disconnections = 0\n",
                    sock = self.socket_dir.display(),
                    server_port = self.port,
                    dir = dir.display(),
                    auth = auth.display(),
                    cdir = self.dir.display(),
                ),
            )
            .unwrap();
            let mut c = if self.as_os_user {
                let mut c = Command::new("runuser");
                c.args(["-u", OS_USER, "--"]).arg(&exe);
                c
            } else {
                Command::new(&exe)
            };
            let out = c
                .arg("-d")
                .arg(&ini)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("{}: {e}", exe.display()))?;
            let log = || std::fs::read_to_string(dir.join("pgbouncer.log")).unwrap_or_default();
            if !out.status.success() {
                last = format!(
                    "pgbouncer -d failed: {} {}; log: {}",
                    String::from_utf8_lossy(&out.stderr).trim(),
                    String::from_utf8_lossy(&out.stdout).trim(),
                    log().lines().rev().take(5).collect::<Vec<_>>().join(" / ")
                );
                continue;
            }
            let up = wait_for(Duration::from_secs(20), || {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            });
            if up {
                Pg::write_pgpass(
                    &passfile,
                    &[format!("*:{port}:*:{SUPERUSER}:{SUPERUSER_PASSWORD}")],
                );
                return Ok(Bouncer {
                    port,
                    dir,
                    passfile,
                    ca: self.ca.clone(),
                    pool_size,
                });
            }
            let b = Bouncer {
                port,
                dir: dir.clone(),
                passfile: passfile.clone(),
                ca: self.ca.clone(),
                pool_size,
            };
            drop(b);
            last = format!(
                "pgbouncer did not listen on 127.0.0.1:{port}; log: {}",
                log().lines().rev().take(5).collect::<Vec<_>>().join(" / ")
            );
        }
        Err(last)
    }
}

impl Bouncer {
    /// The `--db` URI for `dbname` through this pgbouncer as the superuser:
    /// TLS verify-full against the test CA, the password from its
    /// password file.
    pub fn db(&self, dbname: &str) -> String {
        format!(
            "postgresql://{SUPERUSER}@localhost:{}/{dbname}?sslmode=verify-full&sslrootcert={}&passfile={}",
            self.port,
            self.ca.display(),
            self.passfile.display()
        )
    }

    /// Server connections per database and user.
    pub fn pool_size(&self) -> u32 {
        self.pool_size
    }

    /// pgbouncer's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }

    fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.dir.join("pgbouncer.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            // SIGTERM: immediate shutdown (SIGINT would wait for clients).
            // SAFETY: kill has no memory-safety preconditions.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
            wait_for(Duration::from_secs(10), || {
                // SAFETY: as above; signal 0 only checks the process exists.
                unsafe { libc::kill(pid, 0) != 0 }
            });
        }
    }
}
