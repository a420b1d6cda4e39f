//! Private files and directories, and secret files checked the way ssh
//! checks a private key.
//!
//! Everything mb keeps on disk is either billing data (state files whose
//! baselines decide the billed usage, the database, ledgers, rejects that
//! quote input lines) or a secret (the dashboard token, the proxy's
//! management key). A writable `sample.state` lets a local user change the
//! baselines and so the bill, so each such file is created 0600 in a 0700
//! directory **whatever the umask**: the mode is given at `open(2)` time
//! (the umask can only take bits away from 0600/0700, never add any), and a
//! file that already exists with a wider mode (left by an older version or
//! created by hand) is narrowed with `fchmod` once we hold it open.
//!
//! Directories mb creates (with their missing parents) are 0700; an
//! existing directory is left as the admin made it.
//!
//! A secret mb only reads (a token or key file) is refused when group or
//! others may read it, with the `chmod` to run, as ssh refuses a private
//! key "with permissions too open": the secret may already have leaked,
//! and a silent warning in cron mail fixes nothing.
//!
//! Every site that creates such a file calls this module, so the rule lives
//! in one place.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::error::{Error, Result};

/// Mode of every file mb creates.
pub const FILE_MODE: u32 = 0o600;

/// Mode of every directory mb creates.
pub const DIR_MODE: u32 = 0o700;

/// Create `dir` and its missing parents with mode 0700. An existing
/// directory is fine and left unchanged.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
}

/// Create the parent directory of `path` (0700) if it has one and it is
/// missing.
pub fn create_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(d) => create_dir_all(d),
        None => Ok(()),
    }
}

/// `OpenOptions` that create with mode 0600. Use [`open`] to also narrow a
/// file that already exists.
pub fn options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.mode(FILE_MODE);
    o
}

/// Open `path` with `opts` (which should come from [`options`]) and make
/// sure the file is 0600 even if it already existed with a wider mode.
pub fn open(opts: &OpenOptions, path: &Path) -> io::Result<File> {
    let f = opts.open(path)?;
    narrow(&f)?;
    Ok(f)
}

/// Create or truncate `path` for writing, mode 0600 (`File::create` with a
/// private mode): for temp files renamed over state files.
pub fn create(path: &Path) -> io::Result<File> {
    open(options().write(true).create(true).truncate(true), path)
}

/// Open `path` for appending, created 0600 if missing (rejects files,
/// ledgers).
pub fn append(path: &Path) -> io::Result<File> {
    open(options().append(true).create(true), path)
}

/// Open (creating if needed) a lock file, 0600, without truncating it.
pub fn lock_file(path: &Path) -> io::Result<File> {
    open(
        options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false),
        path,
    )
}

/// Take group and other bits off an open file we own. A file owned by
/// someone else (root reading a user's file) is left alone: `fchmod` would
/// fail, and it is not ours to change.
fn narrow(f: &File) -> io::Result<()> {
    let md = f.metadata()?;
    let mode = md.permissions().mode() & 0o7777;
    if mode & 0o077 == 0 || md.uid() != rustix::process::geteuid().as_raw() {
        return Ok(());
    }
    f.set_permissions(fs::Permissions::from_mode(mode & 0o700))
}

/// Refuse a secret file (token, key) that group or others can read or
/// write, with the command that fixes it. `what` names the flag, like
/// `--token-file`.
pub fn check_secret(path: &Path, what: &str) -> Result<()> {
    let md = fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let mode = md.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::Invalid(format!(
            "{what} {}: permissions {mode:04o} are too open (group or others can read it); \
             run: chmod 600 {}",
            path.display(),
            shell_word(&path.to_string_lossy())
        )));
    }
    Ok(())
}

/// `s` as one shell word: as it is when plain, else single-quoted.
fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_@%+=:,./-".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Read a secret file after [`check_secret`].
pub fn read_secret(path: &Path, what: &str) -> Result<String> {
    check_secret(path, what)?;
    fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn created_files_and_dirs_are_private_and_wide_files_narrowed() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("a/b");
        create_dir_all(&d).unwrap();
        assert_eq!(mode(&t.path().join("a")), 0o700);
        assert_eq!(mode(&d), 0o700);
        let f = d.join("s");
        fs::write(&f, "x").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o666)).unwrap();
        drop(append(&f).unwrap());
        assert_eq!(mode(&f), 0o600);
        drop(create(&d.join("n")).unwrap());
        assert_eq!(mode(&d.join("n")), 0o600);
    }

    #[test]
    fn open_secrets_are_refused_with_the_fix() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("key");
        fs::write(&f, "k\n").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).unwrap();
        let e = read_secret(&f, "--key-file").unwrap_err().to_string();
        assert!(e.contains("permissions 0640 are too open"), "{e}");
        assert!(
            e.contains(&format!("run: chmod 600 {}", f.display())),
            "{e}"
        );
        fs::set_permissions(&f, fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(read_secret(&f, "--key-file").unwrap(), "k\n");
    }
}
