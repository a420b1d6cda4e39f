//! The PostgreSQL store against a real server (tests/pg): connecting (TLS,
//! the password file), and, as the backend lands, the same guarantees and
//! byte-identical output as SQLite.

use std::path::Path;

use mb::store::pgconn;

use crate::pg::{self, Pg, SUPERUSER, SUPERUSER_PASSWORD};
use crate::pg_or_skip;

/// A private password file for the superuser over TCP, in `dir`.
fn pgpass(pg: &Pg, dir: &Path) -> String {
    let p = dir.join("pgpass");
    Pg::write_pgpass(
        &p,
        &[format!("*:{}:*:{SUPERUSER}:{SUPERUSER_PASSWORD}", pg.port)],
    );
    p.display().to_string()
}

fn owned(pg: &Pg) -> bool {
    if pg.ca.as_os_str().is_empty() {
        eprintln!("skipping: MB_TEST_PG names an external server whose CA the tests do not know");
        return false;
    }
    true
}

fn ssl_in_use(c: &mut ::postgres::Client) -> bool {
    c.query_one(
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        &[],
    )
    .unwrap()
    .get(0)
}

#[test]
fn harness_serves_socket_and_tcp() {
    let pg = pg_or_skip!();
    let db = pg.new_db();
    assert_eq!(pg.query(&db, "SELECT 1 + 1"), ["2"]);
    assert_eq!(pg.query(&db, "SELECT current_database()"), [db.as_str()]);
    // The library connects over the unix socket without TLS (none is offered there).
    let mut c = pgconn::connect(&pg.socket_db(&db)).unwrap();
    let one: i32 = c.query_one("SELECT 1", &[]).unwrap().get(0);
    assert_eq!(one, 1);
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND NOT ssl",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}

#[test]
fn tls_verify_full_with_the_test_ca() {
    let pg = pg_or_skip!();
    if !owned(pg) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let pass = pgpass(pg, t.path());
    let db = pg.new_db();
    // The default sslmode is verify-full: by name and by address (both in the certificate).
    for host in ["localhost", "127.0.0.1"] {
        let spec = format!(
            "host={host} port={} dbname={db} user={SUPERUSER} sslrootcert={} passfile={pass}",
            pg.port,
            pg.ca.display()
        );
        let mut c = pgconn::connect(&spec).unwrap_or_else(|e| panic!("{host}: {e}"));
        assert!(ssl_in_use(&mut c), "{host}: TLS in use");
    }
    // The URI form, with the CA from the query string.
    let mut c = pgconn::connect(&format!("{}&passfile={pass}", pg.tcp_db(&db, SUPERUSER))).unwrap();
    assert!(ssl_in_use(&mut c));
}

#[test]
fn tls_wrong_host_name_or_unknown_ca_is_refused() {
    let pg = pg_or_skip!();
    if !owned(pg) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let pass = pgpass(pg, t.path());
    let db = pg.new_db();
    let base = format!(
        "port={} dbname={db} user={SUPERUSER} passfile={pass}",
        pg.port
    );
    let ca = pg.ca.display();

    // The right server (hostaddr), reached under a name its certificate does not carry.
    let wrong = format!("host=db.wrong.example hostaddr=127.0.0.1 {base} sslrootcert={ca}");
    let err = pgconn::connect(&wrong).err().unwrap().to_string();
    assert!(
        err.contains("certificate does not name host \"db.wrong.example\"")
            && err.contains("sslmode=verify-full"),
        "{err}"
    );
    assert!(!err.contains(SUPERUSER_PASSWORD));
    // verify-ca checks the chain only: the same connection is accepted.
    let mut c = pgconn::connect(&format!("{wrong} sslmode=verify-ca")).unwrap();
    assert!(ssl_in_use(&mut c));

    // No CA given: the system roots do not know the test CA.
    let err = pgconn::connect(&format!("host=localhost {base}"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("not signed by a CA in the system's root certificates")
            && err.contains("sslrootcert=FILE or PGSSLROOTCERT"),
        "{err}"
    );
    // A CA file that is not the server's: refused, naming the file.
    let other = t.path().join("other-ca.pem");
    std::fs::write(&other, rcgen_ca()).unwrap();
    let err = pgconn::connect(&format!(
        "host=localhost {base} sslrootcert={}",
        other.display()
    ))
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains(&format!("not signed by a CA in {}", other.display())),
        "{err}"
    );

    // require encrypts without checking (libpq's meaning), when no CA file is given.
    let mut c = pgconn::connect(&format!(
        "host=db.wrong.example hostaddr=127.0.0.1 {base} sslmode=require sslrootcert=system"
    ))
    .unwrap();
    assert!(ssl_in_use(&mut c));
    // disable: clear text over TCP only when asked for.
    let mut c = pgconn::connect(&format!("host=localhost {base} sslmode=disable")).unwrap();
    assert!(!ssl_in_use(&mut c));
}

#[test]
fn password_comes_from_a_private_password_file_only() {
    let pg = pg_or_skip!();
    if !owned(pg) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let db = pg.new_db();
    let pass = t.path().join("pgpass");
    let spec = |extra: &str| {
        format!(
            "host=localhost port={} dbname={db} user={SUPERUSER} sslrootcert={} passfile={} {extra}",
            pg.port,
            pg.ca.display(),
            pass.display()
        )
    };
    // A line for another port does not match; the server asks and gets no password.
    Pg::write_pgpass(
        &pass,
        &[format!("localhost:1:*:{SUPERUSER}:{SUPERUSER_PASSWORD}")],
    );
    let err = pgconn::connect(&spec("")).err().unwrap().to_string();
    assert!(err.contains("password file"), "{err}");
    // Escapes and wildcards as libpq reads them.
    Pg::write_pgpass(
        &pass,
        &[format!(
            "localhost:{}:{db}:{SUPERUSER}:{SUPERUSER_PASSWORD}",
            pg.port
        )],
    );
    pgconn::connect(&spec("")).unwrap();
    // Readable by others: ignored (with a warning), so authentication fails.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(pgconn::connect(&spec("")).is_err());
    // A password in the connection string is refused before connecting.
    let err = pgconn::connect(&format!(
        "postgresql://{SUPERUSER}:{SUPERUSER_PASSWORD}@localhost:{}/{db}",
        pg.port
    ))
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("refused") && err.contains("PGPASSFILE"),
        "{err}"
    );
    assert!(!err.contains(SUPERUSER_PASSWORD), "{err}");
}

/// A CA certificate of no server (PEM).
fn rcgen_ca() -> String {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.self_signed(&rcgen::KeyPair::generate().unwrap())
        .unwrap()
        .pem()
}

#[test]
fn a_second_cluster_can_be_stopped_and_restarted() {
    let Some(pg) = pg::private_server() else {
        return;
    };
    let db = pg.new_db();
    pg.stop_server();
    assert!(
        ::postgres::Client::connect(&pg.admin_spec(&db), ::postgres::NoTls).is_err(),
        "stopped"
    );
    pg.start_server().unwrap();
    assert_eq!(pg.query(&db, "SELECT 42"), ["42"]);
}
