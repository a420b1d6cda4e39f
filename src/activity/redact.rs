//! Redaction of secrets in command text, before anything is written.
//!
//! Commands typed on a VM carry credentials surprisingly often
//! (`curl -H "Authorization: Bearer ..."`, `mysql --password=...`,
//! `OPENAI_API_KEY=sk-... python run.py`). An activity log that keeps them
//! would turn the metering database into a credential store, so every
//! command text goes through [`Redactor::redact`] before an event is built.
//!
//! The built-in rules (each replaces the secret part with `***`):
//!
//! | rule | example | result |
//! |---|---|---|
//! | URL credentials | `https://bob:pw@host/x` | `https://bob:***@host/x` |
//! | auth headers | `-H "Authorization: Bearer abc"` | `-H "Authorization: Bearer ***"` |
//! | secret options | `--password=pw`, `--api-key pw` | `--password=***`, `--api-key ***` |
//! | secret assignments | `AWS_SECRET_ACCESS_KEY=x cmd` | `AWS_SECRET_ACCESS_KEY=*** cmd` |
//! | well-known keys | `sk-...`, `AKIA...`, `ghp_...` | `***` |
//!
//! Rules prefer hiding too much over too little: `--token-file /path` loses
//! its path, `MONKEY=3` its value. Extra patterns (config `[activity] redact`
//! and `--redact`) replace their whole match.
//!
//! Compiling a regex costs tens of microseconds, which matters for a tool
//! that runs once per shell command (the hook's budget is 5 ms). Each
//! built-in rule therefore lists literal triggers; a rule is compiled only
//! when the command contains one of them (ASCII case-insensitively), so the
//! common command (`ls -la`, `make`) compiles nothing.

use std::borrow::Cow;

use regex::Regex;

use crate::error::{Error, Result};

/// Longest command text kept, in bytes (4 KiB, cut on a character boundary).
pub const MAX_COMMAND_BYTES: usize = 4096;

/// The replacement text of a secret.
pub const MASK: &str = "***";

/// One built-in rule: the regex, its replacement, and the lower-case
/// literals one of which must occur for the regex to possibly match.
struct Rule {
    triggers: &'static [&'static str],
    pattern: &'static str,
    replacement: &'static str,
}

/// The built-in rules, applied in this order. Earlier rules mask values
/// that later ones would only partly catch (a header value that is also an
/// `sk-` key is masked once, as a header).
const RULES: &[Rule] = &[
    // scheme://user:password@host: keep the user, mask the password.
    Rule {
        triggers: &["://"],
        pattern: r#"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@'"]+:)[^/\s@'"]+@"#,
        replacement: "${1}***@",
    },
    // HTTP credential headers: mask everything after the scheme up to the
    // closing quote or the end of the line.
    Rule {
        triggers: &["authorization", "api-key", "auth-token", "cookie"],
        pattern: r#"(?i)\b((?:proxy-)?authorization|x-api-key|api-key|x-auth-token|cookie)(:[ \t]*(?:(?:bearer|basic|token|digest|negotiate|bot)[ \t]+)?)[^'"\r\n]+"#,
        replacement: "${1}${2}***",
    },
    // --password=x, --password x, -api-key x, --db-secret "x y".
    Rule {
        triggers: &[
            "password",
            "passwd",
            "passphrase",
            "secret",
            "token",
            "apikey",
            "api-key",
            "api_key",
        ],
        pattern: r#"(?i)(^|[\s'"])(--?[a-z0-9_-]*(?:password|passwd|passphrase|secret|token|api[_-]?key)[a-z0-9_-]*)(=|[ \t]+)("[^"]*"|'[^']*'|[^\s'"]+)"#,
        replacement: "${1}${2}${3}***",
    },
    // NAME=value where NAME contains TOKEN, SECRET, PASSWORD, PASSWD, KEY or
    // CREDENTIAL (env assignments, `export`, query strings).
    Rule {
        triggers: &["token", "secret", "password", "passwd", "key", "credential"],
        pattern: r#"(?i)(^|[\s;&|(?'"`])([a-z0-9_]*(?:token|secret|password|passwd|key|credential)[a-z0-9_]*=)("[^"]*"|'[^']*'|[^\s;&|)'"`]+)"#,
        replacement: "${1}${2}***",
    },
    // Well-known key formats: OpenAI/Anthropic (sk-), AWS access key ids
    // (AKIA/ASIA), GitHub (ghp_ ..., github_pat_), Slack (xox?-), Google
    // (AIza), GitLab (glpat-).
    Rule {
        triggers: &[
            "sk-",
            "akia",
            "asia",
            "ghp_",
            "gho_",
            "ghu_",
            "ghs_",
            "ghr_",
            "github_pat_",
            "xox",
            "aiza",
            "glpat-",
        ],
        pattern: r"\b(?:sk-[A-Za-z0-9_-]{16,}|(?:AKIA|ASIA)[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,}|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}|glpat-[A-Za-z0-9_-]{20,})",
        replacement: "***",
    },
];

/// Applies the built-in rules and the user's extra patterns.
#[derive(Debug, Default)]
pub struct Redactor {
    extra: Vec<Regex>,
}

impl Redactor {
    /// A redactor with the built-in rules plus `extra` patterns (from the
    /// config, then `--redact`). A pattern that does not compile is a usage
    /// error naming it and `origin` (`--redact` or the config file).
    pub fn new<'a>(extra: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Redactor> {
        let mut compiled = Vec::new();
        for (origin, pat) in extra {
            if pat.is_empty() {
                return Err(Error::Usage(format!("{origin}: empty redaction pattern")));
            }
            let re = Regex::new(pat).map_err(|e| {
                Error::Usage(format!("{origin}: invalid redaction pattern {pat:?}: {e}"))
            })?;
            compiled.push(re);
        }
        Ok(Redactor { extra: compiled })
    }

    /// Mask the secrets in `text` (see the module docs), then cap the result
    /// at [`MAX_COMMAND_BYTES`]. Redaction runs first so a cut can never
    /// split a secret into a part that no longer matches.
    pub fn redact(&self, text: &str) -> String {
        let lower = text.to_ascii_lowercase();
        let mut s: Cow<str> = Cow::Borrowed(text);
        for rule in RULES {
            if !rule.triggers.iter().any(|t| lower.contains(t)) {
                continue;
            }
            // The built-in patterns are constants covered by unit tests; a
            // failure to compile is a programming error caught there.
            let re = Regex::new(rule.pattern).expect("invariant: built-in patterns compile");
            if let Cow::Owned(o) = re.replace_all(&s, rule.replacement) {
                s = Cow::Owned(o);
            }
        }
        for re in &self.extra {
            if let Cow::Owned(o) = re.replace_all(&s, MASK) {
                s = Cow::Owned(o);
            }
        }
        cap(&s, MAX_COMMAND_BYTES).to_string()
    }
}

/// The longest prefix of `s` that has at most `max` bytes and ends on a
/// character boundary.
pub fn cap(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> String {
        Redactor::default().redact(s)
    }

    #[test]
    fn builtin_patterns_compile() {
        for rule in RULES {
            Regex::new(rule.pattern).unwrap();
            for t in rule.triggers {
                assert_eq!(*t, t.to_ascii_lowercase(), "triggers are lower case");
            }
        }
    }

    #[test]
    fn plain_commands_are_untouched() {
        for c in [
            "ls -la",
            "make -j4",
            "git commit -m 'fix the key lookup'",
            "task-runner --sort-key=name",
            "cargo test --test integration",
        ] {
            assert_eq!(r(c), c);
        }
    }

    #[test]
    fn url_credentials() {
        assert_eq!(
            r("git clone https://bob:hunter2@example.com/r.git"),
            "git clone https://bob:***@example.com/r.git"
        );
        assert_eq!(
            r("psql postgres://app:s3cr3t@db:5432/x"),
            "psql postgres://app:***@db:5432/x"
        );
        assert_eq!(
            r("curl https://example.com:8443/x"),
            "curl https://example.com:8443/x"
        );
    }

    #[test]
    fn auth_headers() {
        assert_eq!(
            r(r#"curl -H "Authorization: Bearer abc.def-123" https://api.example.com"#),
            r#"curl -H "Authorization: Bearer ***" https://api.example.com"#
        );
        assert_eq!(
            r("curl -H 'authorization:Basic dXNlcjpwYXNz' x"),
            "curl -H 'authorization:Basic ***' x"
        );
        assert_eq!(
            r("curl -H 'x-api-key: abc123' x"),
            "curl -H 'x-api-key: ***' x"
        );
        assert_eq!(
            r("curl -H 'Proxy-Authorization: Digest u=1, r=2' x"),
            "curl -H 'Proxy-Authorization: Digest ***' x"
        );
    }

    #[test]
    fn secret_options() {
        assert_eq!(r("mysql --password=hunter2 db"), "mysql --password=*** db");
        assert_eq!(r("mysql --password hunter2 db"), "mysql --password *** db");
        assert_eq!(
            r("tool --api-key=\"a b\" --x 1"),
            "tool --api-key=*** --x 1"
        );
        assert_eq!(
            r("gh auth --with-token 'abc def'"),
            "gh auth --with-token ***"
        );
        assert_eq!(
            r("vault --client-secret=s -v"),
            "vault --client-secret=*** -v"
        );
    }

    #[test]
    fn secret_assignments() {
        assert_eq!(
            r("GITHUB_TOKEN=abc123 gh pr list"),
            "GITHUB_TOKEN=*** gh pr list"
        );
        assert_eq!(
            r("export AWS_SECRET_ACCESS_KEY='x y'; aws s3 ls"),
            "export AWS_SECRET_ACCESS_KEY=***; aws s3 ls"
        );
        assert_eq!(
            r("DB_PASSWORD=pw API_KEY=k ./run"),
            "DB_PASSWORD=*** API_KEY=*** ./run"
        );
        assert_eq!(
            r("curl 'https://x/y?api_key=abc&q=1'"),
            "curl 'https://x/y?api_key=***&q=1'"
        );
        assert_eq!(r("HOME=/tmp PATH=/bin ls"), "HOME=/tmp PATH=/bin ls");
    }

    #[test]
    fn well_known_keys() {
        assert_eq!(
            r("echo sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv | x"),
            "echo *** | x"
        );
        assert_eq!(
            r("aws configure set aws_access_key_id AKIAIOSFODNN7EXAMPLE"),
            "aws configure set aws_access_key_id ***"
        );
        assert_eq!(
            r("git push https://ghp_0123456789abcdefghijABCDEFGHIJ012345@github.com/x"),
            "git push https://***@github.com/x"
        );
        assert_eq!(
            r("pip install scikit-learn; task-abcdefghijklmnopqrstu"),
            "pip install scikit-learn; task-abcdefghijklmnopqrstu"
        );
    }

    #[test]
    fn extra_patterns_replace_the_whole_match() {
        let red = Redactor::new([("--redact", r"acct-[0-9]+")]).unwrap();
        assert_eq!(red.redact("bill acct-42 now"), "bill *** now");
        let err = Redactor::new([("--redact", "(")]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("--redact: invalid redaction pattern \"(\""),
            "{err}"
        );
    }

    #[test]
    fn cap_cuts_on_a_char_boundary() {
        // "é" is 2 bytes: 4095 ASCII bytes + "é" would end at byte 4097, so
        // the cut falls back to 4095.
        let s = format!("{}é", "a".repeat(4095));
        assert_eq!(r(&s).len(), 4095);
        assert_eq!(r(&"b".repeat(5000)).len(), 4096);
    }
}
