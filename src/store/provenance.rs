//! The one query of the provenance check (src/report/provenance.rs): API
//! usage whose events claim a customer the registry does not list for
//! their VM.

use super::db::Value;
use super::report::Scope;
use super::Store;
use crate::error::{Error, Result};

/// API usage of one VM claimed by a customer the registry does not list
/// for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignUsage {
    /// The customer the events claim.
    pub customer_id: String,
    /// The VM they came from.
    pub vm_id: String,
    /// The customers the registry lists for that VM, sorted.
    pub owners: Vec<String>,
    /// Requests in scope.
    pub requests: i64,
}

impl Store {
    /// API usage in `scope` (period, customer, ingest cutoff; `scope.vm` is
    /// ignored) from VMs the registry lists, claimed by a customer it does
    /// not list for that VM. VMs the registry does not list at all are not
    /// checked: listing VMs is optional.
    pub fn foreign_api_usage(&self, scope: &Scope) -> Result<Vec<ForeignUsage>> {
        let mut sql = String::from(
            "SELECT u.customer_id, u.vm_id, \
               (SELECT string_agg(o.customer_id, ' ' ORDER BY o.customer_id) \
                  FROM customer_vms o WHERE o.vm_id = u.vm_id), \
               count(*) \
             FROM api_usage u \
             WHERE u.ts_ns >= ?1 AND u.ts_ns < ?2 \
               AND EXISTS (SELECT 1 FROM customer_vms v WHERE v.vm_id = u.vm_id) \
               AND NOT EXISTS (SELECT 1 FROM customer_vms v \
                               WHERE v.vm_id = u.vm_id AND v.customer_id = u.customer_id)",
        );
        let mut args: Vec<Value> = vec![scope.start_ns.into(), scope.end_ns.into()];
        if let Some(c) = scope.customer {
            sql.push_str(&format!(" AND u.customer_id = ?{}", args.len() + 1));
            args.push(c.to_string().into());
        }
        if let Some(a) = scope.as_of {
            sql.push_str(&format!(" AND u.ingested_at <= ?{}", args.len() + 1));
            args.push(a.to_string().into());
        }
        sql.push_str(" GROUP BY u.customer_id, u.vm_id ORDER BY u.customer_id, u.vm_id");
        let err = |e| {
            Error::db(
                self.path(),
                "checking which customers the VMs' usage claims",
                e,
            )
        };
        self.conn()
            .query_map(&sql, &args, |r| {
                let owners: String = r.get(2)?;
                Ok(ForeignUsage {
                    customer_id: r.get(0)?,
                    vm_id: r.get(1)?,
                    owners: owners.split(' ').map(str::to_string).collect(),
                    requests: r.get(3)?,
                })
            })
            .map_err(err)
    }
}
