//! mb-customer: the customer registry (tiers, status history, VMs, Stripe ids).

use std::io::Write;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};

use crate::cli::{DbArgs, Outcome};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::events::{is_ident, IDENT_RULE};
use crate::output::{csv_text, escape_text, write_table, Align};
use crate::store::customers::{Customer, Update, STATUSES};
use crate::store::{Mode, Store};
use crate::time;

/// Keep the customer registry: tiers, dated status history, VMs, Stripe ids.
#[derive(Debug, Parser)]
#[command(
    name = "mb-customer",
    version,
    about = "Keep the customer registry: tiers, dated status history, VMs, Stripe ids",
    long_about = "Keep the customer registry: tiers, dated status history, VMs, Stripe ids.\n\n\
Tier and status changes are kept as dated history, because invoices prorate the base fee by \
days from it. --effective takes an RFC 3339 instant or a date (00:00 of that day in the \
configured timezone) and defaults to now; confirmations show it in that zone. Valid tiers \
are the plans of the config file (built in: starter, pro, enterprise).\n\n\
A change recorded by mistake is withdrawn with `undo CHANGE_ID` (the ids are in `show`): the \
change stays in the history, marked withdrawn, and invoices ignore it. Customers are not \
renamed or deleted, because their id is in every stored usage event and in the invoice lines' \
Stripe idempotency keys; end a customer with `set ID --status cancelled`.",
    after_long_help = EXAMPLES
)]
pub struct Args {
    #[command(flatten)]
    pub db: DbArgs,

    #[command(subcommand)]
    pub cmd: Cmd,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Register a customer (status active from --effective)
    Add {
        /// Customer id ([A-Za-z0-9][A-Za-z0-9._-]{0,63})
        id: String,
        /// Plan tier (from the config's plans)
        #[arg(long)]
        tier: String,
        /// A VM of the customer (repeatable)
        #[arg(long = "vm", value_name = "VM_ID")]
        vms: Vec<String>,
        /// Stripe customer id (cus_ and letters or digits)
        #[arg(long, value_name = "ID", value_parser = stripe_customer_id)]
        stripe_customer: Option<String>,
        /// When the tier takes effect: RFC 3339 or YYYY-MM-DD [default: now]
        #[arg(long, value_name = "DATE")]
        effective: Option<String>,
    },
    /// Change a customer's tier, status, Stripe id or VMs
    Set {
        /// Customer id
        id: String,
        /// New plan tier
        #[arg(long)]
        tier: Option<String>,
        /// New status
        #[arg(long, value_parser = STATUSES)]
        status: Option<String>,
        /// New Stripe customer id (cus_ and letters or digits)
        #[arg(long, value_name = "ID", value_parser = stripe_customer_id)]
        stripe_customer: Option<String>,
        /// Add a VM (repeatable)
        #[arg(long = "add-vm", value_name = "VM_ID")]
        add_vms: Vec<String>,
        /// Remove a VM (repeatable)
        #[arg(long = "remove-vm", value_name = "VM_ID")]
        remove_vms: Vec<String>,
        /// When the change takes effect: RFC 3339 or YYYY-MM-DD [default: now]
        #[arg(long, value_name = "DATE")]
        effective: Option<String>,
    },
    /// List customers with their tier and status now (or --at)
    List {
        /// Show the state at this time: RFC 3339 or YYYY-MM-DD [default: now]
        #[arg(long, value_name = "DATE")]
        at: Option<String>,
        /// CSV instead of a table
        #[arg(long, conflicts_with = "json")]
        csv: bool,
        /// JSON (one array) instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show one customer and its tier/status history (with change ids)
    Show {
        /// Customer id
        id: String,
        /// JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Withdraw a tier or status change recorded by mistake (kept in the history, marked withdrawn)
    Undo {
        /// The change id, from `mb-customer show ID`
        change_id: i64,
        /// Why, kept with the withdrawal
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
}

const EXAMPLES: &str = "\
EXAMPLES:
    # Register a customer on the pro tier with one VM
    mb-customer add acme --tier pro --vm vm-acme-1 --stripe-customer cus_P1x2

    # Upgrade from the first of next month; suspend from a date
    mb-customer set acme --tier enterprise --effective 2026-12-01
    mb-customer set acme --status suspended --effective 2026-12-15

    # A change recorded by mistake: find its id, withdraw it
    mb-customer show acme
    mb-customer undo 7 --reason 'meant 2027-01-01'

    # List for people, for programs
    mb-customer list
    mb-customer list --csv > customers.csv
    mb-customer show acme --json";

/// How a confirmation shows an effective time: as the admin typed it, in
/// the configured zone (a bare date for local midnight), with the UTC
/// instant as a detail: `2026-11-01 (Europe/Prague; 2026-10-31T23:00:00Z)`.
fn local(t: &DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    let l = t.with_timezone(&tz);
    let shown = if l.format("%H:%M:%S%.f").to_string() == "00:00:00" {
        l.format("%Y-%m-%d").to_string()
    } else if l.format("%S%.f").to_string() == "00" {
        l.format("%Y-%m-%d %H:%M").to_string()
    } else {
        l.format("%Y-%m-%d %H:%M:%S").to_string()
    };
    format!("{shown} ({tz}; {})", time::format_rfc3339(t))
}

/// A time in the configured zone without the UTC detail (tables).
fn local_short(rfc3339: &str, tz: chrono_tz::Tz) -> String {
    match time::parse_rfc3339(rfc3339) {
        Some(t) => {
            let l = t.with_timezone(&tz);
            if l.format("%H:%M:%S%.f").to_string() == "00:00:00" {
                l.format("%Y-%m-%d").to_string()
            } else {
                l.format("%Y-%m-%d %H:%M:%S").to_string()
            }
        }
        None => rfc3339.to_string(),
    }
}

fn when(s: Option<&str>, cfg: &Config, now: DateTime<Utc>, flag: &str) -> Result<DateTime<Utc>> {
    match s {
        None => Ok(now),
        Some(s) => time::parse_instant_or_date(s, cfg.timezone).ok_or_else(|| {
            Error::Usage(format!(
                "{flag} {s:?}: not an RFC 3339 time (2026-12-01T00:00:00Z) or a date (2026-12-01)"
            ))
        }),
    }
}

fn check_id(what: &str, id: &str) -> Result<()> {
    if is_ident(id) {
        Ok(())
    } else {
        Err(Error::Usage(format!("{what} {id:?} {IDENT_RULE}")))
    }
}

fn check_tier(cfg: &Config, tier: &str) -> Result<()> {
    if cfg.plans.contains_key(tier) {
        Ok(())
    } else {
        let known: Vec<&str> = cfg.plans.keys().map(String::as_str).collect();
        Err(Error::Usage(format!(
            "unknown tier {tier:?}; the plans are: {} (set [plans] in mb.toml to change them)",
            known.join(", ")
        )))
    }
}

/// `--stripe-customer`: the shape of a Stripe customer id, `cus_` and
/// ASCII letters or digits, at most 255 characters (Stripe's limit for
/// object ids, docs.stripe.com/upgrades "backwards-compatible changes"), so
/// a typo is caught when it is registered, not when the invoice upload
/// fails a month later.
fn stripe_customer_id(s: &str) -> std::result::Result<String, String> {
    let rest = s.strip_prefix("cus_").unwrap_or("");
    if rest.is_empty() || s.len() > 255 || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!(
            "{s:?} is not a Stripe customer id: expected cus_ followed by letters or digits \
             (copy it from the Stripe dashboard, Customers)"
        ));
    }
    Ok(s.to_string())
}

/// Run mb-customer.
pub fn run(args: Args, out: &mut dyn Write) -> Result<Outcome> {
    let (cfg, db_path) = args.db.resolve()?;
    let now = time::now();
    match args.cmd {
        Cmd::Add {
            id,
            tier,
            vms,
            stripe_customer,
            effective,
        } => {
            check_id("customer id", &id)?;
            check_tier(&cfg, &tier)?;
            for vm in &vms {
                check_id("vm id", vm)?;
            }
            let eff = when(effective.as_deref(), &cfg, now, "--effective")?;
            let mut store = Store::open(&db_path, Mode::ReadWrite)?;
            store.add_customer(&id, &tier, &vms, stripe_customer.as_deref(), eff, now)?;
            crate::cli::warn(format!(
                "added {id}: tier {tier}, status active from {}",
                local(&eff, cfg.timezone)
            ));
        }
        Cmd::Set {
            id,
            tier,
            status,
            stripe_customer,
            add_vms,
            remove_vms,
            effective,
        } => {
            check_id("customer id", &id)?;
            if let Some(t) = &tier {
                check_tier(&cfg, t)?;
            }
            for vm in add_vms.iter().chain(&remove_vms) {
                check_id("vm id", vm)?;
            }
            if tier.is_none()
                && status.is_none()
                && stripe_customer.is_none()
                && add_vms.is_empty()
                && remove_vms.is_empty()
            {
                return Err(Error::Usage(
                    "nothing to change: give --tier, --status, --stripe-customer, --add-vm or --remove-vm"
                        .into(),
                ));
            }
            let eff = when(effective.as_deref(), &cfg, now, "--effective")?;
            let mut store = Store::open(&db_path, Mode::ReadWrite)?;
            // The state the change replaces, for the confirmation.
            let before = store.customer(&id, eff)?;
            let up = Update {
                tier,
                status,
                stripe_customer_id: stripe_customer,
                add_vms,
                remove_vms,
            };
            let ids = store.update_customer(&id, &up, eff, now)?;
            let before = before.unwrap_or_else(|| Customer {
                customer_id: id.clone(),
                tier: None,
                status: None,
                stripe_customer_id: None,
                vms: Vec::new(),
                created_at: String::new(),
            });
            for (field, change_id) in ids {
                let (old, new) = match field {
                    "tier" => (before.tier.as_deref(), up.tier.as_deref()),
                    _ => (before.status.as_deref(), up.status.as_deref()),
                };
                let new = new.unwrap_or("-");
                let what = match old {
                    Some(o) if o == new => format!("{field} stays {new} (it already was)"),
                    Some(o) => format!("{field} {o} -> {new}"),
                    None => format!("{field} {new}"),
                };
                crate::cli::warn(format!(
                    "changed {id}: {what} from {} (change {change_id}; `mb-customer undo {change_id}` withdraws it)",
                    local(&eff, cfg.timezone)
                ));
            }
            if let Some(s) = &up.stripe_customer_id {
                let old = before.stripe_customer_id.as_deref().unwrap_or("none");
                crate::cli::warn(format!("changed {id}: stripe customer {old} -> {s}"));
            }
            for vm in &up.add_vms {
                if before.vms.contains(vm) {
                    crate::cli::warn(format!("{id}: VM {vm} was already registered"));
                } else {
                    crate::cli::warn(format!("changed {id}: added VM {vm}"));
                }
            }
            for vm in &up.remove_vms {
                crate::cli::warn(format!("changed {id}: removed VM {vm}"));
            }
        }
        Cmd::Undo { change_id, reason } => {
            if let Some(r) = &reason {
                if r.chars().any(char::is_control) || r.chars().count() > 200 {
                    return Err(Error::Usage(
                        "--reason: at most 200 characters, without control characters".into(),
                    ));
                }
            }
            let mut store = Store::open(&db_path, Mode::ReadWrite)?;
            let w = store.withdraw_change(change_id, reason.as_deref(), now)?;
            let eff = time::parse_rfc3339(&w.change.effective).unwrap_or(now);
            crate::cli::warn(format!(
                "withdrew change {change_id} of {}: {} {} from {}; from then its {} is {}",
                w.customer_id,
                w.change.field,
                w.change.value,
                local(&eff, cfg.timezone),
                w.change.field,
                w.now_value.as_deref().unwrap_or("unset"),
            ));
        }
        Cmd::List { at, csv, json } => {
            let at = when(at.as_deref(), &cfg, now, "--at")?;
            if !csv && !json && !db_path.exists() {
                crate::cli::warn(format!(
                    "no customers yet (no database at {}); register one with \
                     `mb-customer add ID --tier TIER`",
                    db_path.display()
                ));
                return Ok(Outcome::Success);
            }
            let store = Store::open(&db_path, Mode::ReadOnly)?;
            let list = store.customers(at)?;
            if json {
                serde_json::to_writer(&mut *out, &list).map_err(std::io::Error::from)?;
                writeln!(out)?;
            } else if csv {
                let mut w = csv::Writer::from_writer(&mut *out);
                let csv_err = |e: csv::Error| Error::Stream(e.into());
                w.write_record([
                    "customer_id",
                    "tier",
                    "status",
                    "stripe_customer_id",
                    "vms",
                    "created_at",
                ])
                .map_err(csv_err)?;
                for c in &list {
                    w.write_record([
                        csv_text(&c.customer_id),
                        csv_text(c.tier.as_deref().unwrap_or("")),
                        csv_text(c.status.as_deref().unwrap_or("")),
                        csv_text(c.stripe_customer_id.as_deref().unwrap_or("")),
                        csv_text(&c.vms.join(" ")),
                        c.created_at.clone(),
                    ])
                    .map_err(csv_err)?;
                }
                w.flush()?;
            } else if list.is_empty() {
                // Said on stderr: stdout stays empty for a script.
                crate::cli::warn(
                    "no customers yet; register one with `mb-customer add ID --tier TIER`",
                );
            } else {
                let rows: Vec<Vec<String>> = list.iter().map(text_row).collect();
                write_table(
                    out,
                    &["CUSTOMER", "TIER", "STATUS", "STRIPE", "VMS"],
                    &[Align::Left; 5],
                    &rows,
                )?;
            }
        }
        Cmd::Show { id, json } => {
            let store = Store::open(&db_path, Mode::ReadOnly)?;
            let c = store.customer(&id, now)?.ok_or_else(|| {
                Error::Invalid(format!("no customer {id:?} (see `mb-customer list`)"))
            })?;
            let history = store.customer_history(&id)?;
            if json {
                let v = serde_json::json!({ "customer": c, "history": history });
                serde_json::to_writer(&mut *out, &v).map_err(std::io::Error::from)?;
                writeln!(out)?;
            } else {
                writeln!(out, "customer:  {}", c.customer_id)?;
                writeln!(out, "tier:      {}", c.tier.as_deref().unwrap_or("-"))?;
                writeln!(out, "status:    {}", c.status.as_deref().unwrap_or("-"))?;
                writeln!(
                    out,
                    "stripe:    {}",
                    c.stripe_customer_id.as_deref().unwrap_or("-")
                )?;
                writeln!(
                    out,
                    "vms:       {}",
                    if c.vms.is_empty() {
                        "-".to_string()
                    } else {
                        c.vms.join(" ")
                    }
                )?;
                writeln!(
                    out,
                    "created:   {}",
                    local_short(&c.created_at, cfg.timezone)
                )?;
                writeln!(out, "\nhistory (times in {}):", cfg.timezone)?;
                let tz = cfg.timezone;
                let rows: Vec<Vec<String>> = history
                    .iter()
                    .map(|h| {
                        vec![
                            h.change_id.to_string(),
                            local_short(&h.effective, tz),
                            h.field.clone(),
                            h.value.clone(),
                            local_short(&h.recorded_at, tz),
                            match (&h.withdrawn_at, &h.withdraw_reason) {
                                (Some(at), Some(r)) => {
                                    format!("withdrawn {} ({r})", local_short(at, tz))
                                }
                                (Some(at), None) => format!("withdrawn {}", local_short(at, tz)),
                                _ => String::new(),
                            },
                        ]
                    })
                    .collect();
                write_table(
                    out,
                    &["ID", "EFFECTIVE", "FIELD", "VALUE", "RECORDED", "NOTE"],
                    &[
                        Align::Right,
                        Align::Left,
                        Align::Left,
                        Align::Left,
                        Align::Left,
                        Align::Left,
                    ],
                    &rows,
                )?;
            }
        }
    }
    Ok(Outcome::Success)
}

fn text_row(c: &Customer) -> Vec<String> {
    // Escaped like all stored text shown on a terminal.
    let dash = |s: Option<&str>| escape_text(s.unwrap_or("-")).into_owned();
    vec![
        escape_text(&c.customer_id).into_owned(),
        dash(c.tier.as_deref()),
        dash(c.status.as_deref()),
        dash(c.stripe_customer_id.as_deref()),
        if c.vms.is_empty() {
            "-".into()
        } else {
            escape_text(&c.vms.join(",")).into_owned()
        },
    ]
}
