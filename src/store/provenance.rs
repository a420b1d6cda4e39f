//! The one query of the provenance check (src/report/provenance.rs): API
//! usage whose events claim a customer the registry does not list for
//! their VM.

use std::collections::BTreeMap;

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
    ///
    /// The (customer, VM) pairs come from `vm_event_hours` (the hours
    /// meeting the period, a superset of the rows in scope) and the
    /// registry, both small; only a suspect pair's rows are then counted,
    /// through the (customer, time) index. Checking every api row of the
    /// month against the registry took minutes on 10M rows (the registry
    /// has no index by VM).
    pub fn foreign_api_usage(&self, scope: &Scope) -> Result<Vec<ForeignUsage>> {
        let err = |e| {
            Error::db(
                self.path(),
                "checking which customers the VMs' usage claims",
                e,
            )
        };
        let mut owners: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (vm, c) in self.registered_vms()? {
            owners.entry(vm).or_default().push(c);
        }
        if owners.is_empty() || scope.start_ns >= scope.end_ns {
            return Ok(Vec::new());
        }
        let hour = super::events::HOUR_NS;
        let mut sql = String::from(
            "SELECT DISTINCT customer_id, vm_id FROM vm_event_hours \
             WHERE kind = 'api' AND hour_ns >= ?1 AND hour_ns < ?2",
        );
        let mut args: Vec<Value> = vec![
            (scope.start_ns.div_euclid(hour) * hour).into(),
            scope.end_ns.into(),
        ];
        if let Some(c) = scope.customer {
            sql.push_str(" AND customer_id = ?3");
            args.push(c.to_string().into());
        }
        sql.push_str(" ORDER BY 1, 2");
        let pairs: Vec<(String, String)> = self
            .conn()
            .query_map(&sql, &args, |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(err)?;
        let mut count = String::from(
            "SELECT count(*) FROM api_usage WHERE customer_id = ?1 AND vm_id = ?2 \
             AND ts_ns >= ?3 AND ts_ns < ?4",
        );
        if scope.as_of.is_some() {
            count.push_str(" AND ingested_at <= ?5");
        }
        let mut out = Vec::new();
        for (c, vm) in pairs {
            let Some(o) = owners.get(&vm) else { continue };
            if o.contains(&c) {
                continue;
            }
            let mut args: Vec<Value> = vec![
                c.clone().into(),
                vm.clone().into(),
                scope.start_ns.into(),
                scope.end_ns.into(),
            ];
            if let Some(a) = scope.as_of {
                args.push(a.to_string().into());
            }
            let requests: i64 = self
                .conn()
                .query_row(&count, &args, |r| r.get(0))
                .map_err(err)?;
            if requests > 0 {
                out.push(ForeignUsage {
                    customer_id: c,
                    owners: o.clone(),
                    vm_id: vm,
                    requests,
                });
            }
        }
        Ok(out)
    }
}
