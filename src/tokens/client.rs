//! The `client` value of api lines: a keyed hash of the proxy client key.
//!
//! `client` names which proxy key made a request without storing the key.
//! A plain hash is not enough: proxy keys are often short or follow a
//! pattern (`sk-vm-team-a-7f3e`), and a small search recovers them from an
//! unsalted SHA-256. So `client` is the first 32 hex digits (128 bits) of
//! HMAC-SHA256 keyed with a per-installation secret that never leaves the
//! host: without the secret the value reveals nothing about the key.
//!
//! **The secret** is 32 random bytes, stored as 64 hex digits in
//! `<state_dir>/client.key` (`/var/lib/mb/client.key` for root,
//! `~/.local/state/mb/client.key` otherwise; `[tokens] client_key` or
//! `--client-key FILE` elsewhere). It is created on first use, mode 0600 in
//! a 0700 directory, atomically (a concurrent first run reads the same
//! secret); one readable by group or others is refused. Back it up with the
//! state: a new secret changes every `client` value from then on.
//!
//! **Old lines.** Before the keyed hash, `client` was the first 16 hex
//! digits of the plain SHA-256 ([`legacy_hash`]). The two forms cannot be
//! confused (16 against 32 digits), and mb-ingest treats a re-read line whose
//! `client` is in the other form as the same event ([`same_client`]): the id
//! already pins the request, so re-reading an old log gives duplicates, not
//! conflicts or new rows. Key maps accept the key in clear, its keyed hash,
//! or the legacy hash.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Hex digits of a keyed `client` value.
pub const KEYED_LEN: usize = 32;
/// Hex digits of a legacy (plain SHA-256) `client` value.
pub const LEGACY_LEN: usize = 16;

/// The pre-keyed `client` value: the first 16 hex digits of the SHA-256 of
/// the key (`printf %s KEY | sha256sum | cut -c1-16`). Read, never written.
pub fn legacy_hash(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes())[..LEGACY_LEN / 2])
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether two `client` values may name the same key: equal, or one in each
/// form (keyed and legacy), which cannot be compared without the key.
pub fn same_client(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => {
            a == b
                || (is_hex(a, LEGACY_LEN) && is_hex(b, KEYED_LEN))
                || (is_hex(a, KEYED_LEN) && is_hex(b, LEGACY_LEN))
        }
        (a, b) => a == b,
    }
}

/// HMAC-SHA256 keyed with the installation secret.
#[derive(Clone)]
pub struct ClientHasher {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for ClientHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientHasher(..)")
    }
}

impl ClientHasher {
    /// A hasher keyed with `secret` (32 bytes from the secret file).
    pub fn new(secret: &[u8]) -> ClientHasher {
        // HMAC accepts a key of any length; this cannot fail.
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        ClientHasher { mac }
    }

    /// The `client` value of a proxy key: 32 hex digits of its keyed hash.
    pub fn hash(&self, key: &str) -> String {
        let mut m = self.mac.clone();
        m.update(key.as_bytes());
        hex(&m.finalize().into_bytes()[..KEYED_LEN / 2])
    }

    /// Read the secret at `path`, creating it when missing.
    pub fn load_or_create(path: &Path) -> Result<ClientHasher> {
        match read_secret(path) {
            Ok(Some(s)) => return Ok(ClientHasher::new(&s)),
            Ok(None) => {}
            Err(e) => return Err(e),
        }
        create_secret(path)?;
        match read_secret(path)? {
            Some(s) => Ok(ClientHasher::new(&s)),
            None => Err(Error::Invalid(format!(
                "{}: the client-key secret vanished right after it was created",
                path.display()
            ))),
        }
    }
}

/// The default secret path: `<state_dir>/client.key`.
pub fn default_path(state_dir: &Path) -> PathBuf {
    state_dir.join("client.key")
}

fn read_secret(path: &Path) -> Result<Option<Vec<u8>>> {
    let mut f = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let md = f.metadata().map_err(|e| Error::io(path, e))?;
    if md.mode() & 0o077 != 0 {
        return Err(Error::Usage(format!(
            "{}: the client-key secret is readable by group or others (mode {:o}); \
             run: chmod 600 {}",
            path.display(),
            md.mode() & 0o777,
            path.display()
        )));
    }
    let mut text = String::new();
    Read::by_ref(&mut f)
        .take(1024)
        .read_to_string(&mut text)
        .map_err(|e| Error::io(path, e))?;
    let t = text.trim();
    if !is_hex(t, 64) {
        return Err(Error::Invalid(format!(
            "{}: not a client-key secret (expected 64 hex digits); restore it from backup, \
             or remove it to start a new one (every client value changes then)",
            path.display()
        )));
    }
    let bytes = (0..32)
        .map(|i| u8::from_str_radix(&t[2 * i..2 * i + 2], 16).unwrap_or(0))
        .collect();
    Ok(Some(bytes))
}

/// Create the secret without ever exposing a partial file: write a private
/// temporary file, fsync it, then hard-link it into place (which fails if
/// another run got there first, whose secret then wins).
fn create_secret(path: &Path) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(d) = dir {
        if !d.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(d)
                .map_err(|e| Error::io(d, e))?;
        }
    }
    let mut secret = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut r| r.read_exact(&mut secret))
        .map_err(|e| Error::io("/dev/urandom", e))?;
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "client.key".into()),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        // The umask may have narrowed the mode; never widened it, but be sure.
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
        writeln!(f, "{}", hex(&secret))?;
        f.sync_all()
    };
    let res = write().and_then(|()| match fs::hard_link(&tmp, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    });
    let _ = fs::remove_file(&tmp);
    res.map_err(|e| Error::io(path, e))?;
    if let Some(d) = dir {
        if let Ok(d) = fs::File::open(d) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        // printf %s abc | sha256sum -> ba7816bf8f01cfea...
        assert_eq!(legacy_hash("abc"), "ba7816bf8f01cfea");
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?"
        // HMAC-SHA256 = 5bdcc146bf60754e6a042426089575c7 5a003f089d2739839dec58b964ec3843
        let h = ClientHasher::new(b"Jefe");
        assert_eq!(
            h.hash("what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c7"
        );
        let (l, k) = ("ba7816bf8f01cfea", "5bdcc146bf60754e6a042426089575c7");
        assert!(same_client(Some(l), Some(k)));
        assert!(same_client(Some(k), Some(l)));
        assert!(same_client(None, None));
        assert!(!same_client(Some(l), Some("ba7816bf8f01cfeb")));
        assert!(!same_client(Some(k), None));
    }
}
