//! The access token: where it comes from, how a request proves it, and
//! the bind rule that makes one mandatory.
//!
//! A request is authenticated by `Authorization: Bearer TOKEN`, or by the
//! `mb_dashboard_token` cookie. A browser gets the cookie by opening any URL
//! once with `?token=TOKEN`: the server answers with a redirect to the same
//! URL without the token (so it leaves the address bar and the history) and
//! sets the cookie `HttpOnly; SameSite=Strict` (plus `Secure` when the
//! reverse proxy says the request came over HTTPS).
//!
//! Comparison is constant-time over the SHA-256 digests of the candidate
//! and the token, so neither the content nor the length of the token leaks
//! through timing.

use std::net::IpAddr;
use std::path::Path;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};

/// Name of the session cookie.
pub const COOKIE: &str = "mb_dashboard_token";

/// Shortest token accepted: 16 characters (a `openssl rand -hex 16` gives 32).
pub const MIN_TOKEN_LEN: usize = 16;

/// A configured access token, kept as its digest.
#[derive(Clone)]
pub struct Token {
    digest: [u8; 32],
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// A token from its text (surrounding whitespace, such as the newline
    /// of a token file, is trimmed). Refuses short or non-printable tokens,
    /// which could not travel in a header or cookie anyway.
    pub fn new(text: &str, origin: &str) -> Result<Token> {
        let t = text.trim();
        if t.len() < MIN_TOKEN_LEN {
            return Err(Error::Usage(format!(
                "{origin}: the token must be at least {MIN_TOKEN_LEN} characters \
                 (make one with: openssl rand -hex 32)"
            )));
        }
        if !t.bytes().all(|b| b.is_ascii_graphic()) || t.contains([';', ',', '"', '\\']) {
            return Err(Error::Usage(format!(
                "{origin}: the token must be printable ASCII without spaces, ';', ',', '\"' or '\\'"
            )));
        }
        Ok(Token {
            digest: Sha256::digest(t.as_bytes()).into(),
        })
    }

    /// Read the token from `--token-file` (preferred: not visible in the
    /// process list or environment) or from `MB_DASHBOARD_TOKEN`.
    pub fn load(file: Option<&Path>, env: Option<&str>) -> Result<Option<Token>> {
        if let Some(f) = file {
            let text = crate::fsutil::read_secret(f, "--token-file")?;
            return Token::new(&text, &f.display().to_string()).map(Some);
        }
        match env {
            Some(v) if !v.is_empty() => Token::new(v, "MB_DASHBOARD_TOKEN").map(Some),
            _ => Ok(None),
        }
    }

    /// Whether `candidate` is the token, in constant time.
    pub fn matches(&self, candidate: &str) -> bool {
        let d: [u8; 32] = Sha256::digest(candidate.as_bytes()).into();
        d.ct_eq(&self.digest).into()
    }
}

/// The bind rule (DESIGN.md section 10): a loopback address is always
/// allowed; any other address needs both `--allow-remote` and a token. The
/// error says which of the two is missing and how to provide it.
pub fn check_bind(ip: IpAddr, allow_remote: bool, has_token: bool) -> Result<()> {
    if ip.is_loopback() {
        return Ok(());
    }
    let mut missing = Vec::new();
    if !allow_remote {
        missing.push("--allow-remote");
    }
    if !has_token {
        missing.push("an access token (--token-file FILE or MB_DASHBOARD_TOKEN)");
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "refusing to listen on {ip}: it is not a loopback address, and serving usage data \
         beyond this machine needs {}. To reach the dashboard from elsewhere, keep it on \
         127.0.0.1 behind a reverse proxy, or pass both",
        missing.join(" and ")
    )))
}

/// The token presented by a request: the bearer header first, then the
/// cookie. Returns `None` when neither is present.
pub fn presented<'a>(authorization: Option<&'a str>, cookie: Option<&'a str>) -> Option<&'a str> {
    if let Some(a) = authorization {
        let (scheme, rest) = a.split_once(' ').unwrap_or((a, ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            return Some(rest.trim());
        }
    }
    cookie.and_then(|c| {
        c.split(';').find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == COOKIE).then_some(v)
        })
    })
}

/// The raw `token` value of a query string, if any (percent escapes are not
/// expected in a valid token, which is checked to be plain ASCII).
pub fn query_token(query: Option<&str>) -> Option<&str> {
    query?.split('&').find_map(|kv| kv.strip_prefix("token="))
}

/// The query string without its `token` parameter (for the redirect).
pub fn strip_token(query: &str) -> String {
    query
        .split('&')
        .filter(|kv| !kv.is_empty() && !kv.starts_with("token=") && *kv != "token")
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_rules_and_matching() {
        let t = Token::new("0123456789abcdef\n", "test").unwrap();
        assert!(t.matches("0123456789abcdef"));
        assert!(!t.matches("0123456789abcdeF"));
        assert!(!t.matches("0123456789abcdef0"));
        assert!(!t.matches(""));
        assert!(Token::new("short", "test").is_err());
        assert!(Token::new("0123456789 abcdef", "test").is_err());
        assert!(Token::new("0123456789abcdef;x", "test").is_err());
    }

    #[test]
    fn bind_rule() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let lo6: IpAddr = "::1".parse().unwrap();
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        assert!(check_bind(lo, false, false).is_ok());
        assert!(check_bind(lo6, false, false).is_ok());
        let e = check_bind(any, false, true).unwrap_err().to_string();
        assert!(e.contains("--allow-remote"), "{e}");
        let e = check_bind(any, true, false).unwrap_err().to_string();
        assert!(e.contains("MB_DASHBOARD_TOKEN"), "{e}");
        assert!(check_bind(any, true, true).is_ok());
    }

    #[test]
    fn presented_tokens() {
        assert_eq!(presented(Some("Bearer abc"), None), Some("abc"));
        assert_eq!(presented(Some("bearer  abc "), None), Some("abc"));
        assert_eq!(
            presented(None, Some("a=1; mb_dashboard_token=xyz")),
            Some("xyz")
        );
        assert_eq!(presented(Some("Basic Zm9v"), None), None);
        assert_eq!(query_token(Some("period=day&token=t1")), Some("t1"));
        assert_eq!(
            strip_token("period=day&token=t1&date=x"),
            "period=day&date=x"
        );
    }
}
