//! The customer registry: customers, their VMs, and the dated history of
//! tier and status that invoices prorate from.
//!
//! History is a list of single-field changes with an effective time. The
//! state at time T takes, per field, the change with the greatest
//! `(effective, change_id)` at or before T. Recording one field per row is
//! what makes back-dated changes safe: `set --tier pro --effective
//! 2026-02-01` cannot undo a suspension recorded for March.
//!
//! A change recorded by mistake is withdrawn (`mb-customer undo`), never
//! deleted: the withdrawal is a row of its own in `customer_withdrawals`,
//! and every reader of the history goes through the `customer_changes_live`
//! view, which leaves withdrawn changes out. Customers are never renamed or
//! deleted: their id is in every usage event and in Stripe idempotency
//! keys, so a registered id stays; `cancelled` is how a customer ends.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::db::{vals, DbError, DbResult, Row};
use super::Store;
use crate::error::{Error, Result};
use crate::time;

/// The statuses a customer can have.
pub const STATUSES: [&str; 3] = ["active", "suspended", "cancelled"];

/// A customer as of some instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Customer {
    /// The customer id.
    pub customer_id: String,
    /// Tier in effect (None before the first effective change).
    pub tier: Option<String>,
    /// Status in effect (None before the first effective change).
    pub status: Option<String>,
    /// Stripe customer id, if known.
    pub stripe_customer_id: Option<String>,
    /// VMs registered to the customer, sorted.
    pub vms: Vec<String>,
    /// When the customer was registered (RFC 3339).
    pub created_at: String,
}

/// One recorded change of tier or status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// The change's id (what `mb-customer undo` takes).
    pub change_id: i64,
    /// `tier` or `status`.
    pub field: String,
    /// The new value.
    pub value: String,
    /// When it takes effect (RFC 3339).
    pub effective: String,
    /// When it was recorded (RFC 3339).
    pub recorded_at: String,
    /// When it was withdrawn (RFC 3339), if it was.
    pub withdrawn_at: Option<String>,
    /// Why it was withdrawn, if a reason was given.
    pub withdraw_reason: Option<String>,
}

/// A change that was just withdrawn, with what the field is from its
/// effective time on now that it is gone.
#[derive(Debug, Clone, PartialEq)]
pub struct Withdrawn {
    /// The customer.
    pub customer_id: String,
    /// The withdrawn change.
    pub change: Change,
    /// The field's value at the change's effective time without it.
    pub now_value: Option<String>,
}

/// What `set` changes; `None` leaves a field alone.
#[derive(Debug, Default, Clone)]
pub struct Update {
    /// New tier.
    pub tier: Option<String>,
    /// New status.
    pub status: Option<String>,
    /// New Stripe customer id.
    pub stripe_customer_id: Option<String>,
    /// VMs to add.
    pub add_vms: Vec<String>,
    /// VMs to remove.
    pub remove_vms: Vec<String>,
}

fn ns(t: &DateTime<Utc>) -> i64 {
    time::to_unix_nanos(t).unwrap_or(0)
}

impl Store {
    /// Whether a customer is registered.
    pub fn customer_exists(&self, id: &str) -> Result<bool> {
        self.conn()
            .exists("SELECT 1 FROM customers WHERE customer_id = ?1", vals![id])
            .map_err(|e| Error::db(self.path(), "reading customers", e))
    }

    /// Register a customer with its first tier (status active) from `effective`.
    pub fn add_customer(
        &mut self,
        id: &str,
        tier: &str,
        vms: &[String],
        stripe: Option<&str>,
        effective: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let path = self.path().to_path_buf();
        let err = |e: DbError| Error::db(&path, "adding the customer", e);
        let w = self.writer()?;
        let tx = w.db();
        let exists = tx
            .exists("SELECT 1 FROM customers WHERE customer_id = ?1", vals![id])
            .map_err(err)?;
        if exists {
            return Err(Error::Invalid(format!(
                "customer {id:?} already exists; use `mb-customer set {id} ...` to change it"
            )));
        }
        let rec = time::format_fixed_micros(&now);
        tx.execute(
            "INSERT INTO customers (customer_id, stripe_customer_id, created_at) VALUES (?1, ?2, ?3)",
            vals![id, stripe, rec],
        )
        .map_err(err)?;
        for (field, value) in [("tier", tier), ("status", "active")] {
            tx.execute(
                "INSERT INTO customer_changes (customer_id, field, value, effective_ns, recorded_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                vals![id, field, value, ns(&effective), rec],
            )
            .map_err(err)?;
        }
        for vm in vms {
            tx.execute(
                "INSERT INTO customer_vms (customer_id, vm_id, added_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT DO NOTHING",
                vals![id, vm, rec],
            )
            .map_err(err)?;
        }
        w.commit()
    }

    /// Apply an update to an existing customer; returns the ids of the
    /// tier and status changes recorded, as `(field, change_id)`.
    pub fn update_customer(
        &mut self,
        id: &str,
        up: &Update,
        effective: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<(&'static str, i64)>> {
        let path = self.path().to_path_buf();
        let err = |e: DbError| Error::db(&path, "updating the customer", e);
        let w = self.writer()?;
        let tx = w.db();
        let exists = tx
            .exists("SELECT 1 FROM customers WHERE customer_id = ?1", vals![id])
            .map_err(err)?;
        if !exists {
            return Err(Error::Invalid(format!(
                "no customer {id:?}; add it first with `mb-customer add {id} --tier TIER`"
            )));
        }
        let rec = time::format_fixed_micros(&now);
        let mut ids = Vec::new();
        for (field, value) in [("tier", &up.tier), ("status", &up.status)] {
            if let Some(v) = value {
                let change_id: i64 = tx
                    .query_row(
                        "INSERT INTO customer_changes (customer_id, field, value, effective_ns, \
                         recorded_at) VALUES (?1, ?2, ?3, ?4, ?5) RETURNING change_id",
                        vals![id, field, v, ns(&effective), rec],
                        |r| r.get(0),
                    )
                    .map_err(err)?;
                ids.push((field, change_id));
            }
        }
        if let Some(s) = &up.stripe_customer_id {
            tx.execute(
                "UPDATE customers SET stripe_customer_id = ?2 WHERE customer_id = ?1",
                vals![id, s],
            )
            .map_err(err)?;
        }
        for vm in &up.add_vms {
            tx.execute(
                "INSERT INTO customer_vms (customer_id, vm_id, added_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT DO NOTHING",
                vals![id, vm, rec],
            )
            .map_err(err)?;
        }
        for vm in &up.remove_vms {
            let n = tx
                .execute(
                    "DELETE FROM customer_vms WHERE customer_id = ?1 AND vm_id = ?2",
                    vals![id, vm],
                )
                .map_err(err)?;
            if n == 0 {
                return Err(Error::Invalid(format!("customer {id:?} has no VM {vm:?}")));
            }
        }
        w.commit()?;
        Ok(ids)
    }

    /// All customers as of `at`, sorted by id.
    pub fn customers(&self, at: DateTime<Utc>) -> Result<Vec<Customer>> {
        let ids: Vec<String> = self
            .conn()
            .query_map(
                "SELECT customer_id FROM customers ORDER BY customer_id",
                vals![],
                |r| r.get(0),
            )
            .map_err(|e| Error::db(self.path(), "listing customers", e))?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(c) = self.customer(&id, at)? {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// One customer as of `at`.
    pub fn customer(&self, id: &str, at: DateTime<Utc>) -> Result<Option<Customer>> {
        let err = |e: DbError| Error::db(self.path(), "reading the customer", e);
        let row = self
            .conn()
            .query_opt(
                "SELECT stripe_customer_id, created_at FROM customers WHERE customer_id = ?1",
                vals![id],
                |r| Ok((r.get::<Option<String>>(0)?, r.get::<String>(1)?)),
            )
            .map_err(err)?;
        let Some((stripe, created_at)) = row else {
            return Ok(None);
        };
        let field = |f: &str| -> Result<Option<String>> {
            self.conn()
                .query_opt(
                    "SELECT value FROM customer_changes_live WHERE customer_id = ?1 AND field = ?2 \
                     AND effective_ns <= ?3 ORDER BY effective_ns DESC, change_id DESC LIMIT 1",
                    vals![id, f, ns(&at)],
                    |r| r.get(0),
                )
                .map_err(err)
        };
        let vms: Vec<String> = self
            .conn()
            .query_map(
                "SELECT vm_id FROM customer_vms WHERE customer_id = ?1 ORDER BY vm_id",
                vals![id],
                |r| r.get(0),
            )
            .map_err(err)?;
        Ok(Some(Customer {
            customer_id: id.to_string(),
            tier: field("tier")?,
            status: field("status")?,
            stripe_customer_id: stripe,
            vms,
            created_at,
        }))
    }

    /// A customer's tier and status history, in effective order, withdrawn
    /// changes included (and marked).
    pub fn customer_history(&self, id: &str) -> Result<Vec<Change>> {
        self.conn()
            .query_map(
                "SELECT h.change_id, h.field, h.value, h.effective_ns, h.recorded_at, \
                 w.withdrawn_at, w.reason FROM customer_changes h \
                 LEFT JOIN customer_withdrawals w USING (change_id) \
                 WHERE h.customer_id = ?1 ORDER BY h.effective_ns, h.change_id",
                vals![id],
                change_row,
            )
            .map_err(|e| Error::db(self.path(), "reading customer history", e))
    }

    /// Withdraw change `change_id`: record the withdrawal (the change row
    /// stays), so that the history reads as if it had never been made.
    /// The first tier or status of a customer cannot be withdrawn (the
    /// customer would have none); a later change can, once.
    pub fn withdraw_change(
        &mut self,
        change_id: i64,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Withdrawn> {
        let path = self.path().to_path_buf();
        let err = |e: DbError| Error::db(&path, "withdrawing the change", e);
        let w = self.writer()?;
        let tx = w.db();
        let found = tx
            .query_opt(
                "SELECT h.customer_id, h.change_id, h.field, h.value, h.effective_ns, \
                 h.recorded_at, w.withdrawn_at, w.reason FROM customer_changes h \
                 LEFT JOIN customer_withdrawals w USING (change_id) WHERE h.change_id = ?1",
                vals![change_id],
                |r| Ok((r.get::<String>(0)?, change_row_at(r, 1)?)),
            )
            .map_err(err)?;
        let Some((customer, change)) = found else {
            return Err(Error::Invalid(format!(
                "no change {change_id}; `mb-customer show CUSTOMER` lists the ids"
            )));
        };
        if let Some(at) = &change.withdrawn_at {
            return Err(Error::Invalid(format!(
                "change {change_id} of {customer} was already withdrawn at {at}"
            )));
        }
        let eff_ns: i64 = tx
            .query_row(
                "SELECT effective_ns FROM customer_changes WHERE change_id = ?1",
                vals![change_id],
                |r| r.get(0),
            )
            .map_err(err)?;
        // Is there another live change of this field at or before this one?
        // Without one, withdrawing would leave the customer without a tier
        // (or status) from its start.
        let earlier = |tx: &super::db::Db| {
            tx.query_opt(
                "SELECT value FROM customer_changes_live WHERE customer_id = ?1 AND field = ?2 \
                 AND change_id <> ?3 AND (effective_ns < ?4 OR (effective_ns = ?4 AND change_id < ?3)) \
                 ORDER BY effective_ns DESC, change_id DESC LIMIT 1",
                vals![customer, change.field, change_id, eff_ns],
                |r| r.get::<String>(0),
            )
        };
        let before = earlier(tx).map_err(err)?;
        if before.is_none() {
            return Err(Error::Invalid(format!(
                "change {change_id} is {customer}'s first {}; it cannot be withdrawn (the customer \
                 would have none). Record the right one with `mb-customer set {customer} --{} VALUE \
                 --effective ...` instead",
                change.field, change.field
            )));
        }
        tx.execute(
            "INSERT INTO customer_withdrawals (change_id, withdrawn_at, reason) VALUES (?1, ?2, ?3)",
            vals![change_id, time::format_fixed_micros(&now), reason],
        )
        .map_err(err)?;
        // The value at the effective time, now that the change is gone
        // (a later change at the same instant may still apply).
        let now_value = tx
            .query_opt(
                "SELECT value FROM customer_changes_live WHERE customer_id = ?1 AND field = ?2 \
                 AND effective_ns <= ?3 ORDER BY effective_ns DESC, change_id DESC LIMIT 1",
                vals![customer, change.field, eff_ns],
                |r| r.get::<String>(0),
            )
            .map_err(err)?;
        w.commit()?;
        Ok(Withdrawn {
            customer_id: customer,
            change,
            now_value,
        })
    }
}

/// A history row read as `change_id, field, value, effective_ns,
/// recorded_at, withdrawn_at, reason`.
fn change_row(r: &Row) -> DbResult<Change> {
    change_row_at(r, 0)
}

fn change_row_at(r: &Row, i: usize) -> DbResult<Change> {
    Ok(Change {
        change_id: r.get(i)?,
        field: r.get(i + 1)?,
        value: r.get(i + 2)?,
        effective: time::format_rfc3339(&time::from_unix_nanos(r.get(i + 3)?)),
        recorded_at: r.get(i + 4)?,
        withdrawn_at: r.get(i + 5)?,
        withdraw_reason: r.get(i + 6)?,
    })
}
