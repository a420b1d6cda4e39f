//! The provenance check of the invoice: usage a VM reports for a customer
//! the registry does not list for that VM is kept out of the invoice.
//!
//! VMs are rented to customers who have root in them (docs/security.md),
//! so a VM's events say whatever its root user makes them say, including
//! `customer_id`. A customer could make their VM report its token usage as
//! another customer's, shifting the bill. The registry (`mb-customer add
//! ID --vm VM`) is the operator's own record of who rents which VM; when
//! it lists a VM, usage from that VM claimed by any other customer is
//! suspect: it is flagged (a warning naming the VM, the claimed customer
//! and the registered ones; exit 1) and left out of the invoice, unless
//! `--allow-vm-mismatch` says the operator knows why (a VM moved between
//! customers mid-month). A VM the registry does not list is not checked.
//!
//! Only the API usage is affected: it is the part of the invoice that
//! events decide. Base fees come from the registry alone.

use std::collections::BTreeMap;

use crate::error::Result;
use crate::store::report::{ApiAgg, ApiKey, Scope};
use crate::store::Store;

/// Remove from `api` (the invoice's usage per customer, provider, model and
/// price table in `scope`) the usage of VMs claimed by customers the
/// registry does not list for them, unless `allow`. Returns the warning to
/// print, if any such usage exists (also when allowed).
pub fn screen(
    store: &Store,
    scope: &Scope,
    api: &mut BTreeMap<ApiKey, ApiAgg>,
    allow: bool,
    label: &str,
) -> Result<Option<String>> {
    let foreign = store.foreign_api_usage(scope)?;
    if foreign.is_empty() {
        return Ok(None);
    }
    let list = foreign
        .iter()
        .map(|f| {
            format!(
                "{} from VM {} ({} requests; the registry lists it for {})",
                f.customer_id,
                f.vm_id,
                f.requests,
                f.owners.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let msg = format!(
        "usage claiming a customer the registry does not list for its VM in {label}: {list}"
    );
    if allow {
        return Ok(Some(format!(
            "{msg}; invoiced as claimed (--allow-vm-mismatch)"
        )));
    }
    for f in &foreign {
        let one = Scope {
            customer: Some(&f.customer_id),
            vm: Some(&f.vm_id),
            ..*scope
        };
        for (k, v) in store.api_totals(&one)? {
            if let Some(total) = api.get_mut(&k) {
                total.add(&v, -1);
            }
        }
    }
    api.retain(|_, v| v.requests != 0);
    Ok(Some(format!(
        "{msg}; not invoiced (check the VM with mb-report --vm, fix the registry with \
         mb-customer, or pass --allow-vm-mismatch)"
    )))
}
