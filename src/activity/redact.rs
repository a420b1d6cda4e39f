//! Redaction of secrets in command text, before anything is written.
//!
//! Commands typed on a VM carry credentials surprisingly often
//! (`curl -H "Authorization: Bearer ..."`, `mysql --password=...`,
//! `OPENAI_API_KEY=sk-... python run.py`). An activity log that keeps them
//! would turn the metering database into a credential store, so every
//! command text goes through [`Redactor::redact`] before an event is built.
//!
//! The built-in rules are one table, [`RULES`], each entry naming the
//! format it masks and where the format is documented. In short:
//!
//! | rule | example | result |
//! |---|---|---|
//! | PEM private keys | `-----BEGIN RSA PRIVATE KEY-----\nMII...` | body `***`, armour kept |
//! | URL credentials | `https://bob:pw@host/x` | `https://bob:***@host/x` |
//! | auth headers | `-H "Authorization: Bearer abc"`, `PRIVATE-TOKEN: x` | `Bearer ***` |
//! | JSON bodies | `{"password":"pw"}`, `"private_key": "..."` | `"***"` |
//! | secret options | `--password=pw`, `--api-key pw`, `-Dx.password=pw` | `***` |
//! | tool short options | `mysql -ppw`, `sshpass -p pw`, `redis-cli -a pw`, `curl -u u:pw` | `***` |
//! | piped secrets | `echo pw \| docker login --password-stdin` | `echo *** \| ...` |
//! | assignments | `PGPASSWORD=x psql`, `MYSQL_PWD=x`, `?api_key=x`, `.netrc` lines | `***` |
//! | vendor keys | Stripe, GitHub, GitLab, Slack, npm, PyPI, Vault, AWS, Google, JWT | `***` |
//!
//! Rules prefer hiding too much over too little (`MONKEY=3` loses its
//! value), but keep what is plainly not a secret: flags such as
//! `--password-stdin` and `--no-password`, paths of `--token-file`, a git
//! hash, a UUID or a sha256 (no rule matches bare hex). Extra patterns
//! (config `[activity] redact` and `--redact`) replace their whole match.
//! tests/fixtures/activity/redaction.jsonl is the corpus every rule is
//! tested against, through the real binaries.
//!
//! Compiling a regex costs tens of microseconds, which matters for a tool
//! that runs once per shell command (the hook's budget is 5 ms). Each
//! built-in rule therefore lists literal triggers; a rule is compiled only
//! when the command contains one of them (ASCII case-insensitively), so the
//! common command (`ls -la`, `make`) compiles nothing.

use std::borrow::Cow;

use regex::{Captures, Regex};

use crate::error::{Error, Result};

/// Longest command text kept, in bytes (4 KiB, cut on a character boundary).
pub const MAX_COMMAND_BYTES: usize = 4096;

/// The replacement text of a secret.
pub const MASK: &str = "***";

/// One built-in rule: the regex, its replacement (a template for
/// `Captures::expand`, `${1}` and so on), and the lower-case literals one
/// of which must occur for the regex to possibly match.
struct Rule {
    triggers: &'static [&'static str],
    pattern: &'static str,
    replacement: &'static str,
    /// A match this says to keep is left as it is (a flag that looks like
    /// a secret option but takes no secret, like `--password-stdin`).
    keep: Option<fn(&Captures) -> bool>,
}

/// Whether an option match takes no secret value: a flag or a path
/// (`--password-stdin`, `--token-file`, `--no-password`, `--ask-pass`), or
/// a space-form "value" that is the next option (`--password -h db`).
fn option_takes_no_secret(c: &Captures) -> bool {
    let name = c.get(2).map_or("", |m| m.as_str()).to_ascii_lowercase();
    let spaced = c.get(3).is_some_and(|m| m.as_str() != "=");
    (spaced && c.get(4).is_some_and(|m| m.as_str().starts_with('-')))
        || name.starts_with("--no-")
        || name.contains("ask")
        || name.contains("prompt")
        || [
            "stdin", "file", "path", "dir", "env", "length", "count", "type",
        ]
        .iter()
        .any(|w| name.ends_with(w))
}

/// The built-in rules, applied in this order. Earlier rules mask values
/// that later ones would only partly catch (a header value that is also an
/// `sk-` key is masked once, as a header). Each rule names the format and
/// where it comes from; tests/fixtures/activity/redaction.jsonl has at
/// least one command per rule.
const RULES: &[Rule] = &[
    // PEM private keys (RFC 7468 "PRIVATE KEY", plus the RSA/EC/DSA/OPENSSH/
    // ENCRYPTED variants and OpenPGP's "PRIVATE KEY BLOCK", RFC 4880 6.2),
    // e.g. `echo '-----BEGIN ...' > key.pem`: the body goes, the armour
    // lines stay. A key cut by the 4 KiB cap or a quote is masked to the end.
    Rule {
        triggers: &["private key"],
        pattern: r"(?s)(-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----).*?(-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\z)",
        replacement: "${1}***${2}",
        keep: None,
    },
    // scheme://user:password@host (RFC 3986 3.2.1 userinfo): keep the user,
    // mask the password; also an empty user (`redis://:pw@host`).
    Rule {
        triggers: &["://"],
        pattern: r#"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@'"]*:)[^/\s@'"]+@"#,
        replacement: "${1}***@",
        keep: None,
    },
    // Slack incoming-webhook URLs (api.slack.com/messaging/webhooks): the
    // path after /services/ is the credential.
    Rule {
        triggers: &["hooks.slack.com"],
        pattern: r"(hooks\.slack\.com/(?:services|workflows|triggers)/)[A-Za-z0-9/_-]+",
        replacement: "${1}***",
        keep: None,
    },
    // HTTP credential headers (RFC 9110 11.6.2 Authorization, 11.7.2
    // Proxy-Authorization; Cookie; GitLab's PRIVATE-TOKEN; X-Vault-Token,
    // X-Api-Key and other X-...-Token/-Key/-Secret headers): everything after
    // the scheme up to the closing quote or the end of the line. The name
    // must start a word (`https://x-access-token:...@` is a URL user).
    Rule {
        triggers: &[
            "authorization",
            "api-key",
            "cookie",
            "token:",
            "token :",
            "-key:",
            "secret:",
            "password:",
        ],
        pattern: r#"(?i)(^|[\s'"])((?:proxy-)?authorization|cookie|private-token|x-[a-z0-9-]*(?:token|key|secret|password)|api-key)([ \t]*:[ \t]*(?:(?:bearer|basic|token|digest|negotiate|bot|apikey)[ \t]+)?)[^'"\r\n]+"#,
        replacement: "${1}${2}${3}***",
        keep: None,
    },
    // JSON bodies and service-account files: `{"password": "x"}`,
    // `"private_key": "..."`, `"client_secret"`, also with the quotes
    // backslash-escaped inside a double-quoted shell word. Only string
    // values (a `"max_tokens": 5` stays).
    Rule {
        triggers: &["pass", "secret", "token", "key", "credential", "auth"],
        pattern: r#"(?i)(\\?"[a-z0-9_.-]*(?:password|passwd|passphrase|secret|token|api[_-]?key|apikey|private[_-]?key|credential|auth)[a-z0-9_.-]*\\?"\s*:\s*)(\\?")(?:[^"\\]|\\[^"])*\\?""#,
        replacement: "${1}${2}***${2}",
        keep: None,
    },
    // kubectl create secret ... --from-literal=KEY=VALUE (kubectl docs):
    // every literal of a secret is secret, whatever its key.
    Rule {
        triggers: &["--from-literal"],
        pattern: r#"(--from-literal(?:=|\s+)['"]?[^=\s'"]+=)("[^"]*"|'[^']*'|[^\s'"]+)"#,
        replacement: "${1}***",
        keep: None,
    },
    // Java system properties: -Djavax.net.ssl.keyStorePassword=x,
    // -Dspring.datasource.password=x (java(1) -D).
    Rule {
        triggers: &["password", "passwd", "secret", "token", "key", "credential"],
        pattern: r#"(?i)(^|[\s'"])(-D[a-z0-9_.-]*(?:password|passwd|secret|token|key|credential)[a-z0-9_.-]*=)("[^"]*"|'[^']*'|[^\s'"]+)"#,
        replacement: "${1}${2}***",
        keep: None,
    },
    // openssl passphrase arguments `-passin pass:x`, `-passout pass:x`,
    // `-pass pass:x` (openssl-passphrase-options(1)); `env:VAR`, `file:PATH`
    // and `fd:N` name where the secret is and stay.
    Rule {
        triggers: &["pass:"],
        pattern: r#"(-pass(?:in|out)?\s+['"]?pass:)("[^"]*"|'[^']*'|[^\s'"]+)"#,
        replacement: "${1}***",
        keep: None,
    },
    // --password=x, --password x, -api-key x, --db-secret "x y", and the
    // exact names --pass (redis-cli, openvpn) and -pw (PuTTY's plink/pscp).
    // Flags that take no secret (--password-stdin, --token-file PATH,
    // --no-password) are kept; a space-form value starting with `-` is the
    // next option, not a value.
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
            "--pass",
            "-pw",
        ],
        pattern: r#"(?i)(^|[\s'"])(--?[a-z0-9_-]*(?:password|passwd|passphrase|secret|token|api[_-]?key)[a-z0-9_-]*|--pass|-pw)(=|[ \t]+)("[^"]*"|'[^']*'|[^\s'"]+)"#,
        replacement: "${1}${2}${3}***",
        keep: Some(option_takes_no_secret),
    },
    // Passwords as short-option values of tools whose documentation gives
    // them that form: mysql/mariadb clients `-pPW` (glued only: `-p PW`
    // prompts and PW is the database), sshpass `-p PW`/`-pPW`, `docker|
    // podman|nerdctl|buildah|skopeo|helm registry|oras login -p PW`,
    // `az login -p PW`, twine `-p PW`, mongo/mongosh/mongodump `-p PW`,
    // 7z/rar `-pPW`, zip/unzip `-P PW`, ipmitool/sqlcmd/bcp `-P PW`,
    // redis-cli `-a PW`, ldapsearch and friends `-w PW`.
    Rule {
        triggers: &["mysql", "mariadb"],
        pattern: r#"(\b(?:mysql[a-z]*|mariadb[a-z-]*)\b[^;&|\n]*?\s-p)("[^"]*"|'[^']*'|[^\s'"*][^\s'"]*)"#,
        replacement: "${1}***",
        keep: None,
    },
    Rule {
        triggers: &[
            "sshpass",
            "login",
            "twine",
            "mongo",
            "7z",
            "rar",
            "zip",
            "ipmitool",
            "sqlcmd",
            "bcp",
            "redis-cli",
            "ldap",
        ],
        pattern: r#"(\b(?:sshpass|(?:docker|podman|nerdctl|buildah|skopeo|oras|helm\s+registry|az)\s+login|twine(?:\s+upload)?|mongo(?:sh|dump|restore|export|import)?|7za?|7zr|rar|unrar)\b[^;&|\n]*?\s-p\s*|\b(?:zip|unzip|ipmitool|sqlcmd|bcp)\b[^;&|\n]*?\s-P\s*|\bredis-cli\b[^;&|\n]*?\s-a\s*|\bldap[a-z]+\b[^;&|\n]*?\s-w\s*)("[^"]*"|'[^']*'|[^\s'"*-][^\s'"]*)"#,
        replacement: "${1}***",
        keep: None,
    },
    // curl -u/--user user:password and -U/--proxy-user (curl(1)); the user
    // stays. Only for curl: elsewhere `-u 1000:1000` is a uid:gid.
    Rule {
        triggers: &["curl"],
        pattern: r#"(\bcurl\b[^;&|\n]*?\s(?:-u|-U|--user|--proxy-user)(?:\s+|=)?['"]?[^\s:'"]*:)("[^"]*"|'[^']*'|[^\s'"*][^\s'"]*)"#,
        replacement: "${1}***",
        keep: None,
    },
    // `aws configure set aws_secret_access_key X` (aws configure set docs),
    // `npm|yarn|pnpm config set //registry/:_authToken X`, any
    // `config set NAME VALUE` whose NAME is secret-ish.
    Rule {
        triggers: &["config"],
        pattern: r#"(?i)(\bconfig(?:ure)?\s+set\s+(?:--?[a-z-]+\s+)*\S*(?:secret|token|password|passwd|_auth|key)\S*(?:\s+|=))("[^"]*"|'[^']*'|[^\s'"]+)"#,
        replacement: "${1}***",
        keep: None,
    },
    // `vault login TOKEN` (vault login docs: the token is the positional
    // argument); `vault login -method=userpass ... password=x` is left to
    // the assignment rule.
    Rule {
        triggers: &["vault"],
        pattern: r#"(\bvault\s+login\s+(?:-\S+\s+)*)([^\s=-][^\s=]*)(\s|$)"#,
        replacement: "${1}***${3}",
        keep: None,
    },
    // A password piped or fed into a command that reads it from stdin:
    // `echo PW | docker login --password-stdin`, `printf 'u:pw' | chpasswd`,
    // `... --password-stdin <<< PW`.
    Rule {
        triggers: &["stdin", "chpasswd", "passwd"],
        pattern: r#"(\b(?:echo|printf)(?:\s+-[neE]+)*\s+)("[^"]*"|'[^']*'|[^\s|;&]+)(\s*\|\s*[^|;&\n]*(?:--password-stdin|--stdin|chpasswd|passwd\b))"#,
        replacement: "${1}***${3}",
        keep: None,
    },
    Rule {
        triggers: &["<<<"],
        pattern: r#"((?:--password-stdin|--stdin|chpasswd)[^\n|;&]*?<<<\s*)("[^"]*"|'[^']*'|[^\s'"]+)"#,
        replacement: "${1}***",
        keep: None,
    },
    // .netrc lines (netrc(5)): `machine H login U password PW`, also
    // `default ... password PW`, typed into `echo ... >> ~/.netrc`.
    Rule {
        triggers: &["machine", "default"],
        pattern: r#"(\b(?:machine|default)\b[^\n;|&]*?\spassword\s+)("[^"]*"|'[^']*'|[^\s'"*][^\s'"]*)"#,
        replacement: "${1}***",
        keep: None,
    },
    // `name = value` lines of ini and credentials files written from the
    // shell (~/.aws/credentials: `aws_secret_access_key = X`).
    Rule {
        triggers: &["secret", "token", "password", "passwd"],
        pattern: r#"(?i)\b([a-z0-9_]*(?:secret|token|password|passwd)[a-z0-9_]*(?:\s+=\s*|\s*=\s+))("[^"]*"|'[^']*'|[^\s'"]+)"#,
        replacement: "${1}***",
        keep: None,
    },
    // NAME=value where NAME is secret-ish (env assignments, `export`,
    // `docker run -e`, `--env=`, `mount -o username=u,password=x`, npm's
    // `:_authToken=`, query strings): TOKEN, SECRET, PASS (PASSWORD,
    // PGPASSWORD, SSHPASS), KEY, CREDENTIAL, SIG/SIGNATURE (AWS presigned
    // URLs, Azure SAS), a `_PWD` segment (MYSQL_PWD; not PWD or OLDPWD) and
    // an AUTH segment (REDISCLI_AUTH, `_auth`; not GIT_AUTHOR_NAME).
    Rule {
        triggers: &[
            "token",
            "secret",
            "pass",
            "key",
            "credential",
            "sig",
            "pwd",
            "auth",
        ],
        pattern: r#"(?i)(^|[\s;&|(?'"`=,:])([a-z0-9_]*(?:token|secret|pass|key|credential|signature|_pwd)[a-z0-9_]*=|(?:[a-z0-9_]*_)?(?:auth|sig)(?:_[a-z0-9_]*)?=)("[^"]*"|'[^']*'|[^\s;&|)'"`]+)"#,
        replacement: "${1}${2}***",
        keep: None,
    },
    // The same in query strings whose names have dashes or dots
    // (`X-Amz-Signature=`, `X-Amz-Security-Token=`).
    Rule {
        triggers: &[
            "token",
            "secret",
            "password",
            "key",
            "credential",
            "signature",
        ],
        pattern: r#"(?i)([?&][a-z0-9_.-]*(?:token|secret|password|key|credential|signature)[a-z0-9_.-]*=)([^&#\s'"]+)"#,
        replacement: "${1}***",
        keep: None,
    },
    // Vendor key formats, masked wherever they appear. Each prefix is the
    // vendor's documented one:
    // - OpenAI and Anthropic `sk-`, `sk-proj-`, `sk-ant-`;
    // - Stripe secret `sk_live_`/`sk_test_`, restricted `rk_live_`/
    //   `rk_test_` and webhook signing secrets `whsec_` (docs.stripe.com/keys,
    //   /webhooks); publishable `pk_` keys are public and stay;
    // - AWS access key ids `AKIA` (long-term), `ASIA` (STS), `ABIA`, `ACCA`
    //   (IAM user guide, "Unique identifiers");
    // - GitHub `ghp_ gho_ ghu_ ghs_ ghr_` and `github_pat_` (GitHub blog,
    //   "Behind GitHub's new authentication token formats");
    // - GitLab `glpat- gldt- glrt- glptt- glcbt- glsoat- glft- glimt- gloas-`
    //   (GitLab docs, "Token prefixes");
    // - Slack `xoxb- xoxp- xoxa- xoxr- xoxs- xoxe-` and app tokens `xapp-`;
    // - npm `npm_` (GitHub blog, "npm access tokens"); PyPI `pypi-` (PyPI
    //   help, API tokens); Hugging Face `hf_`; Docker Hub `dckr_pat_`;
    //   DigitalOcean `dop_v1_`; SendGrid `SG.`; Shopify `shpat_`/`shpss_`;
    // - HashiCorp Vault `hvs.`, `hvb.`, `hvr.` (Vault docs, "Tokens");
    // - Google API keys `AIza`, OAuth access tokens `ya29.`, client secrets
    //   `GOCSPX-`;
    // - JWTs (RFC 7519): three base64url parts, the first two JSON objects
    //   and so starting `eyJ`.
    Rule {
        triggers: &[
            "sk-",
            "sk_",
            "rk_",
            "whsec_",
            "akia",
            "asia",
            "abia",
            "acca",
            "ghp_",
            "gho_",
            "ghu_",
            "ghs_",
            "ghr_",
            "github_pat_",
            "glpat-",
            "gldt-",
            "glrt-",
            "glptt-",
            "glcbt-",
            "glsoat-",
            "glft-",
            "glimt-",
            "gloas-",
            "xox",
            "xapp-",
            "npm_",
            "pypi-",
            "hf_",
            "dckr_pat_",
            "dop_v1_",
            "sg.",
            "shpat_",
            "shpss_",
            "shpca_",
            "shppa_",
            "hvs.",
            "hvb.",
            "hvr.",
            "aiza",
            "ya29.",
            "gocspx-",
            "eyj",
        ],
        pattern: r"\b(?:sk-[A-Za-z0-9_-]{16,}|[sr]k_(?:live|test)_[A-Za-z0-9]{10,}|whsec_[A-Za-z0-9+/=]{16,}|(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,}|gl(?:pat|dt|rt|ptt|cbt|soat|ft|imt|oas)-[A-Za-z0-9_-]{20,}|xox[abeprs]-[A-Za-z0-9-]{10,}|xapp-[A-Za-z0-9-]{10,}|npm_[A-Za-z0-9]{36}|pypi-[A-Za-z0-9_-]{40,}|hf_[A-Za-z0-9]{30,}|dckr_pat_[A-Za-z0-9_-]{20,}|dop_v1_[a-f0-9]{64}|SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}|shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}|hv[sbr]\.[A-Za-z0-9_-]{24,}|AIza[0-9A-Za-z_-]{35}|ya29\.[0-9A-Za-z_-]{20,}|GOCSPX-[0-9A-Za-z_-]{20,}|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*)",
        replacement: "***",
        keep: None,
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
            // A rule tied to a command (`curl ... -u`) matches once per
            // command, so it is applied until nothing changes (its value
            // pattern does not match an already masked `***`, so the next
            // pass finds the next option); bounded anyway.
            for _ in 0..4 {
                let replaced = re.replace_all(&s, |c: &Captures| {
                    let mut out = String::new();
                    if rule.keep.is_some_and(|keep| keep(c)) {
                        out.push_str(&c[0]);
                    } else {
                        c.expand(rule.replacement, &mut out);
                    }
                    out
                });
                match replaced {
                    Cow::Owned(o) if o != *s => s = Cow::Owned(o),
                    _ => break,
                }
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
    fn escaped_json_flags_and_repeated_options() {
        assert_eq!(
            r(r#"curl -d "{\"password\":\"pw1\"}" x"#),
            r#"curl -d "{\"password\":\"***\"}" x"#
        );
        assert_eq!(r("pg_dump --password -h db"), "pg_dump --password -h db");
        assert_eq!(
            r("docker login --password-stdin reg --token-file /etc/t"),
            "docker login --password-stdin reg --token-file /etc/t"
        );
        assert_eq!(
            r("curl -u a:pw1 -U b:pw2 https://x"),
            "curl -u a:*** -U b:*** https://x"
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
