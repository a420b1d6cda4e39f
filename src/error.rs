//! The one error type of the toolkit, and how it maps to exit codes.
//!
//! Every fallible library function returns [`Result`]. Variants carry the
//! context a user needs to act (which file, which line, which field), because
//! a bare "invalid type" is useless to an admin reading a cron mail. The
//! binaries print `mb-TOOL: <message>` and exit with [`Error::exit_code`]:
//! 2 for everything in this type (usage, I/O, database, config), since a
//! rejected *input line* is not an error but a counted outcome (exit 1, see
//! [`crate::cli::Outcome`]).

use std::io;
use std::path::PathBuf;

/// Result alias used across the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can end a run early.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad command-line usage or a bad argument value.
    #[error("{0}")]
    Usage(String),

    /// An I/O error on a named file or stream.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or stream name (`-` for stdin).
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// An I/O error on stdout/stderr or an unnamed stream.
    #[error("{0}")]
    Stream(#[from] io::Error),

    /// The configuration file is unreadable or invalid.
    #[error("config {}: {msg}", path.display())]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },

    /// A database error, with what we were doing when it happened.
    #[error("database {}: {msg}", path.display())]
    Db {
        /// The database path.
        path: PathBuf,
        /// Context and the SQLite message.
        msg: String,
    },

    /// The database was written by a newer mb than this binary.
    #[error(
        "database {}: schema version {found} is newer than this mb supports ({supported}); \
         upgrade mb, or point --db at another file",
        path.display()
    )]
    SchemaTooNew {
        /// The database path.
        path: PathBuf,
        /// `PRAGMA user_version` found in the file.
        found: i64,
        /// The newest version this binary knows.
        supported: i64,
    },

    /// A domain rule was violated (unknown customer, bad tier, ...), or the
    /// system refused something the arguments asked for correctly (a port
    /// in use). Unlike [`Error::Usage`] it gets no "try --help" hint.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// The process exit status for this error (DESIGN.md section 8).
    ///
    /// All variants are fatal (2). The variant is kept as a function so that a
    /// future non-fatal kind has one obvious place to go.
    pub fn exit_code(&self) -> u8 {
        2
    }

    /// True when the error is a closed pipe on our output (`| head`), which a
    /// Unix tool treats as a normal end, not a failure.
    pub fn is_broken_pipe(&self) -> bool {
        let io = match self {
            Error::Io { source, .. } => source,
            Error::Stream(e) => e,
            _ => return false,
        };
        io.kind() == io::ErrorKind::BrokenPipe
    }

    /// Build an [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// The error for a database SQLite could not open. SQLite only says
    /// "unable to open database file"; when the cause is a permission,
    /// say so, with the file's owner and mode and who we are, because that
    /// is what the admin has to fix (`sudo -u mb`, or `chmod`).
    pub fn db_open(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        match permission_problem(path) {
            Some(why) => Error::Db {
                path: path.to_path_buf(),
                msg: format!("cannot open: {why}"),
            },
            None => Error::db(path, "cannot open", e),
        }
    }

    /// Build an [`Error::Db`] for `path` with a context message.
    pub fn db(path: impl Into<PathBuf>, ctx: &str, e: impl std::fmt::Display) -> Self {
        Error::Db {
            path: path.into(),
            msg: format!("{ctx}: {e}"),
        }
    }
}

/// Why the current user cannot read `path` (or its WAL side files, or
/// create them in its directory), if a permission is the reason.
fn permission_problem(path: &std::path::Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let denied = |p: &std::path::Path| -> Option<String> {
        match std::fs::File::open(p) {
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                let m = std::fs::metadata(p).ok();
                let (owner, mode) = m.map_or((String::from("?"), 0), |m| {
                    (user_name(m.uid()), m.mode() & 0o7777)
                });
                Some(format!(
                    "permission denied: {} is owned by {owner} (mode {mode:04o}) and this runs \
                     as {}; run as {owner} (sudo -u {owner} ...) or ask for read access",
                    p.display(),
                    user_name(rustix::process::geteuid().as_raw())
                ))
            }
            _ => None,
        }
    };
    // SQLite also opens the WAL side files (`-wal`, `-shm`) next to it.
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        if let Some(why) = denied(std::path::Path::new(&p)) {
            return Some(why);
        }
    }
    // A directory we cannot enter hides the file itself.
    match std::fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty())?;
            let owner = std::fs::metadata(dir)
                .map(|m| user_name(m.uid()))
                .unwrap_or_else(|_| "?".into());
            Some(format!(
                "permission denied: the directory {} (owned by {owner}) is not readable by {}",
                dir.display(),
                user_name(rustix::process::geteuid().as_raw())
            ))
        }
        _ => None,
    }
}

/// The login name of `uid` from /etc/passwd, else the number.
fn user_name(uid: u32) -> String {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let id = f.nth(1)?.parse::<u32>().ok()?;
            (id == uid).then(|| name.to_string())
        })
        .next()
        .unwrap_or_else(|| format!("uid {uid}"))
}
