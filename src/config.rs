//! Configuration: `mb.toml`, its built-in defaults, and where files live.
//!
//! Every tool loads one [`Config`] (DESIGN.md sections 6 and 7). An absent
//! config file means the built-in defaults; a present but invalid one is a
//! fatal error, because silently billing with default prices after a typo in
//! `/etc/mb/mb.toml` would be worse than a failed cron job.
//!
//! The core keys (paths, zone, identity, billing, plans) are typed here. Each
//! tool's own section (`[sample]`, `[tokens]`, `[activity]`, `[report]`,
//! `[dashboard]`) is kept as raw TOML and read by that tool through
//! [`Config::section`], so adding a tool option never touches this module.
//!
//! ```toml
//! db = "/var/lib/mb/usage.db"
//! timezone = "Europe/Prague"
//! customer_id = "acme"
//! vm_id = "vm-1"
//!
//! [billing]
//! currency = "EUR"
//! included_tokens = 1000000
//! markup_percent = "20"
//! usd_eur = "0.92"
//! usd_eur_source = "ECB reference rate"
//! usd_eur_date = "2026-10-31"
//!
//! [plans]            # replaces the built-in plans when present
//! starter = "299.00"
//! pro = "499.00"
//! enterprise = "833.00"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rust_decimal::Decimal;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::events::{is_ident, IDENT_RULE};
use crate::money;

/// The loaded configuration, defaults filled in.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from, if any.
    pub path: Option<PathBuf>,
    /// `db`: the database path.
    pub db: Option<PathBuf>,
    /// `state_dir`: where producers keep state files and the spool.
    pub state_dir: Option<PathBuf>,
    /// `timezone`: IANA zone for dates typed by people and for reports.
    pub timezone: chrono_tz::Tz,
    /// `customer_id`: this VM's customer (producers).
    pub customer_id: Option<String>,
    /// `vm_id`: this VM's id (producers; defaults to the host name).
    pub vm_id: Option<String>,
    /// `[billing]`.
    pub billing: Billing,
    /// `[plans]`: tier name -> monthly price in minor units.
    pub plans: BTreeMap<String, i64>,
    raw: toml::Table,
}

/// The `[billing]` section (DESIGN.md section 7).
#[derive(Debug, Clone, PartialEq)]
pub struct Billing {
    /// Invoice currency (ISO 4217), default EUR.
    pub currency: String,
    /// Tokens included per customer per month, default 1,000,000.
    pub included_tokens: u64,
    /// Markup on API cost for overage, percent, default 20.
    pub markup_percent: Decimal,
    /// USD -> invoice currency rate, if configured.
    pub usd_eur: Option<Decimal>,
    /// Where the rate came from (printed on invoice lines).
    pub usd_eur_source: Option<String>,
    /// The rate's date (printed on invoice lines).
    pub usd_eur_date: Option<String>,
}

impl Default for Billing {
    fn default() -> Self {
        Billing {
            currency: "EUR".into(),
            included_tokens: 1_000_000,
            markup_percent: Decimal::from(20),
            usd_eur: None,
            usd_eur_source: None,
            usd_eur_date: None,
        }
    }
}

/// The built-in plans: tier -> EUR cents per month.
pub fn default_plans() -> BTreeMap<String, i64> {
    [("starter", 29_900), ("pro", 49_900), ("enterprise", 83_300)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

impl Default for Config {
    fn default() -> Self {
        Config {
            path: None,
            db: None,
            state_dir: None,
            timezone: chrono_tz::UTC,
            customer_id: None,
            vm_id: None,
            billing: Billing::default(),
            plans: default_plans(),
            raw: toml::Table::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBilling {
    currency: Option<String>,
    included_tokens: Option<u64>,
    markup_percent: Option<String>,
    usd_eur: Option<String>,
    usd_eur_source: Option<String>,
    usd_eur_date: Option<String>,
}

/// Top-level keys the core understands; tool sections are listed so a typo
/// at the top level (`timezon = ...`) is caught instead of ignored.
const KNOWN_KEYS: &[&str] = &[
    "db",
    "state_dir",
    "timezone",
    "customer_id",
    "vm_id",
    "billing",
    "plans",
    "sample",
    "tokens",
    "activity",
    "ingest",
    "report",
    "dashboard",
];

impl Config {
    /// Load the config: `explicit` (from `--config` or `MB_CONFIG`) must
    /// exist; otherwise the first existing default location is used, and
    /// none means built-in defaults.
    pub fn load(explicit: Option<&Path>) -> Result<Config> {
        let path = match explicit {
            Some(p) => Some(p.to_path_buf()),
            None => default_config_paths().into_iter().find(|p| p.is_file()),
        };
        match path {
            None => Ok(Config::default()),
            Some(p) => {
                let text = std::fs::read_to_string(&p).map_err(|e| Error::Config {
                    path: p.clone(),
                    msg: format!("cannot read: {e}"),
                })?;
                Config::parse(&text, Some(p))
            }
        }
    }

    /// Parse config text (used by [`Config::load`] and tests).
    pub fn parse(text: &str, path: Option<PathBuf>) -> Result<Config> {
        let cpath = path.clone().unwrap_or_else(|| PathBuf::from("<config>"));
        let bad = |msg: String| Error::Config {
            path: cpath.clone(),
            msg,
        };
        let raw: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| bad(e.to_string()))?;
        for k in raw.keys() {
            if !KNOWN_KEYS.contains(&k.as_str()) {
                return Err(bad(format!(
                    "unknown key {k:?} (known: {})",
                    KNOWN_KEYS.join(", ")
                )));
            }
        }
        let mut c = Config {
            path,
            ..Config::default()
        };
        let s = |k: &str| -> Result<Option<String>> {
            match raw.get(k) {
                None => Ok(None),
                Some(toml::Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(bad(format!("{k}: expected a string"))),
            }
        };
        c.db = s("db")?.map(PathBuf::from);
        c.state_dir = s("state_dir")?.map(PathBuf::from);
        if let Some(tz) = s("timezone")? {
            c.timezone = crate::time::parse_tz(&tz).ok_or_else(|| {
                bad(format!(
                    "timezone: {tz:?} is not an IANA zone like \"Europe/Prague\""
                ))
            })?;
        }
        for (key, slot) in [("customer_id", &mut c.customer_id), ("vm_id", &mut c.vm_id)] {
            if let Some(v) = s(key)? {
                if !is_ident(&v) {
                    return Err(bad(format!("{key}: {v:?} {IDENT_RULE}")));
                }
                *slot = Some(v);
            }
        }
        if let Some(b) = raw.get("billing") {
            let rb: RawBilling = b
                .clone()
                .try_into()
                .map_err(|e: toml::de::Error| bad(format!("[billing]: {e}")))?;
            let dec = |k: &str, v: &str| -> Result<Decimal> {
                let d: Decimal = v
                    .parse()
                    .map_err(|_| bad(format!("billing.{k}: {v:?} is not a decimal number")))?;
                if d.is_sign_negative() {
                    return Err(bad(format!("billing.{k}: must not be negative")));
                }
                Ok(d)
            };
            if let Some(cur) = rb.currency {
                if cur.len() != 3 || !cur.bytes().all(|b| b.is_ascii_uppercase()) {
                    return Err(bad(format!(
                        "billing.currency: {cur:?} is not an ISO 4217 code like \"EUR\""
                    )));
                }
                money::minor_exponent(&cur).map_err(|e| bad(format!("billing.currency: {e}")))?;
                c.billing.currency = cur;
            }
            if let Some(n) = rb.included_tokens {
                c.billing.included_tokens = n;
            }
            if let Some(m) = rb.markup_percent {
                c.billing.markup_percent = dec("markup_percent", &m)?;
            }
            if let Some(r) = rb.usd_eur {
                let d = dec("usd_eur", &r)?;
                if d.is_zero() {
                    return Err(bad("billing.usd_eur: must be greater than 0".into()));
                }
                c.billing.usd_eur = Some(d);
            }
            c.billing.usd_eur_source = rb.usd_eur_source;
            c.billing.usd_eur_date = rb.usd_eur_date;
        }
        if let Some(p) = raw.get("plans") {
            let t = p
                .as_table()
                .ok_or_else(|| bad("[plans]: expected a table of tier = \"price\"".into()))?;
            let mut plans = BTreeMap::new();
            for (tier, v) in t {
                if !crate::events::is_lower_word(tier) {
                    return Err(bad(format!(
                        "plans.{tier}: tier names are lower-case words"
                    )));
                }
                let text = match v {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Integer(i) => i.to_string(),
                    _ => {
                        return Err(bad(format!(
                            "plans.{tier}: expected a price string like \"299.00\""
                        )))
                    }
                };
                // Prices are in the invoice currency, to its minor unit.
                let exp = money::minor_exponent(&c.billing.currency).unwrap_or(2);
                let minor = money::parse_major(&text, exp)
                    .map_err(|e| bad(format!("plans.{tier}: {e} ({})", c.billing.currency)))?;
                plans.insert(tier.clone(), minor);
            }
            if plans.is_empty() {
                return Err(bad(
                    "[plans] is empty; remove it to use the built-in plans".into()
                ));
            }
            c.plans = plans;
        } else if c.billing.currency != "EUR" {
            // The built-in plans are EUR prices; never bill them as yen.
            return Err(bad(format!(
                "billing.currency is {} but there is no [plans] table: the built-in plans are \
                 EUR prices; add [plans] with the prices in {}",
                c.billing.currency, c.billing.currency
            )));
        }
        c.raw = raw;
        Ok(c)
    }

    /// A tool's own section (`[sample]`, `[tokens]`, ...), deserialised into
    /// `T`; an absent section gives `T::default()`.
    pub fn section<T: serde::de::DeserializeOwned + Default>(&self, name: &str) -> Result<T> {
        match self.raw.get(name) {
            None => Ok(T::default()),
            Some(v) => v
                .clone()
                .try_into()
                .map_err(|e: toml::de::Error| Error::Config {
                    path: self
                        .path
                        .clone()
                        .unwrap_or_else(|| PathBuf::from("<config>")),
                    msg: format!("[{name}]: {e}"),
                }),
        }
    }

    /// The database: `--db` (or `MB_DB`, which clap folds into the same
    /// argument), else the config's `db`, else the per-user default file.
    /// A value that names a PostgreSQL server (a `postgres://` URI or a
    /// libpq key=value string) is one; anything else is a SQLite file.
    pub fn db_path(&self, arg: Option<&Path>) -> crate::store::DbSpec {
        let v = arg
            .map(Path::to_path_buf)
            .or_else(|| self.db.clone())
            .unwrap_or_else(|| data_dir().join("usage.db"));
        crate::store::DbSpec::from(v)
    }

    /// The state directory: config `state_dir`, else `/var/lib/mb` for root
    /// and `$XDG_STATE_HOME/mb` (`~/.local/state/mb`) otherwise.
    pub fn state_dir(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(default_state_dir)
    }

    /// The activity spool directory (`<state_dir>/spool`).
    pub fn spool_dir(&self) -> PathBuf {
        self.state_dir().join("spool")
    }

    /// Resolve the customer for a producer: the flag (or `MB_CUSTOMER_ID`),
    /// else the config. None anywhere is a usage error that says how to fix it.
    pub fn customer(&self, arg: Option<&str>) -> Result<String> {
        let c = arg
            .map(str::to_string)
            .or_else(|| self.customer_id.clone())
            .ok_or_else(|| {
                Error::Usage(
                    "no customer configured: pass --customer ID, set MB_CUSTOMER_ID, \
                 or put customer_id = \"ID\" in mb.toml"
                        .into(),
                )
            })?;
        if !is_ident(&c) {
            return Err(Error::Usage(format!("customer {c:?} {IDENT_RULE}")));
        }
        Ok(c)
    }

    /// Resolve the VM id: the flag (or `MB_VM_ID`), else the config, else
    /// the host name.
    pub fn vm(&self, arg: Option<&str>) -> Result<String> {
        let v = match arg.map(str::to_string).or_else(|| self.vm_id.clone()) {
            Some(v) => v,
            None => rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .into_owned(),
        };
        if !is_ident(&v) {
            return Err(Error::Usage(format!(
                "vm id {v:?} {IDENT_RULE}; pass --vm ID or set MB_VM_ID"
            )));
        }
        Ok(v)
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

fn xdg(var: &str, fallback: &str) -> PathBuf {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(fallback))
}

/// Where the database lives by default (DESIGN.md section 6).
pub fn data_dir() -> PathBuf {
    if is_root() {
        PathBuf::from("/var/lib/mb")
    } else {
        xdg("XDG_DATA_HOME", ".local/share").join("mb")
    }
}

/// Where state files live by default (DESIGN.md section 6).
pub fn default_state_dir() -> PathBuf {
    if is_root() {
        PathBuf::from("/var/lib/mb")
    } else {
        xdg("XDG_STATE_HOME", ".local/state").join("mb")
    }
}

/// Config locations tried in order when none is given.
pub fn default_config_paths() -> Vec<PathBuf> {
    let etc = PathBuf::from("/etc/mb/mb.toml");
    if is_root() {
        vec![etc]
    } else {
        vec![xdg("XDG_CONFIG_HOME", ".config").join("mb/mb.toml"), etc]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = Config::parse("", None).unwrap();
        assert_eq!(c.plans["pro"], 49_900);
        assert_eq!(c.billing.included_tokens, 1_000_000);
        assert_eq!(c.timezone, chrono_tz::UTC);
    }

    #[test]
    fn plans_replace_and_validate() {
        let c = Config::parse("[plans]\nbasic = \"10.5\"\n", None).unwrap();
        assert_eq!(c.plans.len(), 1);
        assert_eq!(c.plans["basic"], 1050);
        assert!(Config::parse("[plans]\nbasic = \"10.555\"\n", None).is_err());
        assert!(Config::parse("timezon = \"UTC\"\n", None).is_err());
        assert!(Config::parse("timezone = \"Mars/Base\"\n", None).is_err());
        let c = Config::parse("[billing]\nusd_eur = \"0.92\"\n", None).unwrap();
        assert_eq!(c.billing.usd_eur, Some("0.92".parse().unwrap()));
    }
}
