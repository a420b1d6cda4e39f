//! A customer's standing in a report: the tier and status the registry
//! gives at the end of the period (or at the cutoff, when that is earlier),
//! the changes that took effect inside the period, and the usage recorded
//! while the customer was suspended or cancelled, which the invoice does
//! not bill as base fee but whose tokens still count, so an admin must see
//! it. Computed from the same change rows the invoice prorates with.

use chrono::{DateTime, Utc};

use super::Query;
use crate::error::Result;
use crate::store::report::ResourcePath;
use crate::store::report::{ApiAgg, ChangeRow};
use crate::store::Store;
use crate::time;

/// A tier or status change that took effect inside the period.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// `tier` or `status`.
    pub field: String,
    /// The new value.
    pub value: String,
    /// When it took effect.
    pub effective: DateTime<Utc>,
}

/// Usage recorded while the customer was not active.
#[derive(Debug, Clone, PartialEq)]
pub struct InactiveUsage {
    /// `suspended` or `cancelled`.
    pub status: String,
    /// Start of the stretch (inside the period).
    pub start: DateTime<Utc>,
    /// End (exclusive) of the stretch (inside the period).
    pub end: DateTime<Utc>,
    /// API usage in the stretch.
    pub api: ApiAgg,
    /// Activity events in the stretch.
    pub activity_events: i64,
    /// Resource samples taken in the stretch.
    pub resource_samples: u64,
}

/// One customer's standing.
#[derive(Debug, Clone, PartialEq)]
pub struct Standing {
    /// Customer.
    pub customer_id: String,
    /// Tier at [`Standing::at`] (None: not registered then).
    pub tier: Option<String>,
    /// Status at [`Standing::at`].
    pub status: Option<String>,
    /// Tier and status are those in force just before this instant: the
    /// period's end, or now (or the cutoff) while the period runs.
    pub at: DateTime<Utc>,
    /// Changes effective inside the period, in order.
    pub changes: Vec<Change>,
    /// Usage while suspended or cancelled, per stretch.
    pub inactive: Vec<InactiveUsage>,
}

/// The standing of each of `ids` in `q`'s period; `now` bounds the instant
/// the state is read at (a month still running is read as of now).
pub fn standing(
    store: &Store,
    q: &Query,
    ids: &[String],
    now: DateTime<Utc>,
) -> Result<Vec<Standing>> {
    let all = store.all_changes()?;
    let (start_ns, end_ns) = (q.period.start_ns(), q.period.end_ns());
    let cutoff = q.as_of.unwrap_or(now).min(now);
    // Read just before the end (or the cutoff): the state the period ended in.
    let at_ns = end_ns.min(time::to_unix_nanos(&cutoff).unwrap_or(i64::MAX));
    let as_of = q.as_of_text();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let mine: Vec<&ChangeRow> = all.iter().filter(|c| &c.customer_id == id).collect();
        let state = |field: &str, t: i64| -> Option<String> {
            mine.iter()
                .filter(|h| h.field == field && h.effective_ns <= t)
                .max_by_key(|h| (h.effective_ns, h.change_id))
                .map(|h| h.value.clone())
        };
        let mut changes: Vec<&&ChangeRow> = mine
            .iter()
            .filter(|c| c.effective_ns > start_ns && c.effective_ns < end_ns)
            .collect();
        changes.sort_by_key(|c| (c.effective_ns, c.change_id));
        // Stretches of the period with one status: cut at every status
        // change inside it.
        let mut cuts = vec![start_ns];
        cuts.extend(
            changes
                .iter()
                .filter(|c| c.field == "status")
                .map(|c| c.effective_ns),
        );
        cuts.push(end_ns);
        cuts.dedup();
        let mut inactive = Vec::new();
        for w in cuts.windows(2) {
            let (a, b) = (w[0], w[1]);
            let Some(st) = state("status", a) else {
                continue;
            };
            if st != "suspended" && st != "cancelled" {
                continue;
            }
            let scope = crate::store::report::Scope {
                start_ns: a,
                end_ns: b,
                customer: Some(id.as_str()),
                vm: q.vm.as_deref(),
                as_of: as_of.as_deref(),
            };
            let mut api = ApiAgg::default();
            for v in store.api_totals(&scope)?.values() {
                api.add(v, 1);
            }
            let activity_events = store.activity_totals(&scope)?.iter().map(|r| r.count).sum();
            let resource_samples = store
                .resource_usage(&scope, ResourcePath::from_env())?
                .values()
                .map(|v| u64::try_from(v.samples).unwrap_or(0))
                .sum::<u64>();
            if api.requests > 0 || activity_events > 0 || resource_samples > 0 {
                // Merge with the previous stretch when the status is the
                // same (a repeated `set --status suspended`).
                match inactive.last_mut() {
                    Some(InactiveUsage {
                        status,
                        end,
                        api: prev,
                        activity_events: e,
                        resource_samples: r,
                        ..
                    }) if *status == st && time::to_unix_nanos(end) == Some(a) => {
                        *end = time::from_unix_nanos(b);
                        prev.add(&api, 1);
                        *e += activity_events;
                        *r += resource_samples;
                    }
                    _ => inactive.push(InactiveUsage {
                        status: st,
                        start: time::from_unix_nanos(a),
                        end: time::from_unix_nanos(b),
                        api,
                        activity_events,
                        resource_samples,
                    }),
                }
            }
        }
        out.push(Standing {
            customer_id: id.clone(),
            tier: state("tier", at_ns - 1),
            status: state("status", at_ns - 1),
            at: time::from_unix_nanos(at_ns),
            changes: changes
                .iter()
                .map(|c| Change {
                    field: c.field.clone(),
                    value: c.value.clone(),
                    effective: time::from_unix_nanos(c.effective_ns),
                })
                .collect(),
            inactive,
        });
    }
    Ok(out)
}

/// Levenshtein distance between `a` and `b`, in characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The closest of `candidates` to `name` that is plausibly a typo of it
/// (at most 2 edits, and fewer than half its length), ties by name.
pub fn did_you_mean<'a>(name: &str, candidates: &'a [String]) -> Option<&'a str> {
    let limit = 2.min(name.chars().count().saturating_sub(1) / 2).max(1);
    candidates
        .iter()
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_and_suggestions() {
        assert_eq!(edit_distance("acme", "acmee"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "ab"), 2);
        let c = vec!["acme".to_string(), "globex".into(), "initech".into()];
        assert_eq!(did_you_mean("acmee", &c), Some("acme"));
        assert_eq!(did_you_mean("glbex", &c), Some("globex"));
        assert_eq!(did_you_mean("zzz", &c), None);
        assert_eq!(did_you_mean("a", &c), None);
    }
}
