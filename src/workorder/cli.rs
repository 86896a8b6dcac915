//! What the supervisors' `hotline work-orders …` commands do, on either store: show
//! one order, export many, import the knowledge base and service directory. Caller
//! numbers are masked unless `Numbers::Full` is asked for, and every such read is
//! written to the read-audit log first (R12): no audit entry, no full number.
//! Does I/O only through the store and the import files; the command line itself is in
//! `main.rs`.

use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};

use super::export::{ExportFormat, Numbers, export, format_file};
use super::import::{ImportError, read_knowledge, read_providers};
use super::matter::{ListQuery, ReadAuditEntry, WorkOrderFile};
use super::model::{AuditedRead, WorkOrderId};
use super::store::{StoreError, WorkOrderStore};

/// Why a work-order command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error("work order {0} not found")]
    NotFound(WorkOrderId),
}

/// Who the audit log says read a full number from the command line.
pub fn cli_actor() -> String {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

/// Parses `--since`/`--until`: a date (`2026-11-28`, midnight UTC) or an RFC 3339 time.
pub fn parse_instant(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            format!("{text:?} is neither a date (2026-11-28) nor a time (2026-11-28T08:00:00Z)")
        })
}

async fn audit_full_numbers(
    store: &dyn WorkOrderStore,
    files: &[WorkOrderFile],
    actor: &str,
    target: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    for file in files {
        store
            .append_read_audit(&ReadAuditEntry {
                at: now,
                actor: actor.to_owned(),
                read: AuditedRead::FullNumber,
                work_order: Some(file.order.id.clone()),
                target: target.to_owned(),
            })
            .await?;
    }
    Ok(())
}

/// `work-orders show ID`: the order in full, with its calls and history.
pub async fn show(
    store: &dyn WorkOrderStore,
    id: &WorkOrderId,
    numbers: Numbers,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<String, CommandError> {
    let file = store
        .get_file(id)
        .await?
        .ok_or_else(|| CommandError::NotFound(id.clone()))?;
    let events = store.events(id).await?;
    if numbers == Numbers::Full {
        audit_full_numbers(
            store,
            std::slice::from_ref(&file),
            actor,
            "caller (work-orders show)",
            now,
        )
        .await?;
    }
    Ok(format_file(&file, &events, numbers))
}

/// `work-orders export`: every order whose first call was offered in
/// `[since, until)`, oldest first.
pub async fn export_orders(
    store: &dyn WorkOrderStore,
    since: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
    format: ExportFormat,
    numbers: Numbers,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<String, CommandError> {
    let mut query = ListQuery {
        offered_from: Some(since),
        offered_until: until,
        limit: 500,
        ..ListQuery::default()
    };
    let mut files = Vec::new();
    loop {
        let page = store.list_orders(&query).await?;
        for order in &page.orders {
            // An order purged between the page and this read is simply not exported.
            if let Some(file) = store.get_file(&order.id).await? {
                files.push(file);
            }
        }
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    files.reverse();
    if numbers == Numbers::Full {
        audit_full_numbers(store, &files, actor, "caller (work-orders export)", now).await?;
    }
    Ok(export(&files, format, numbers))
}

/// `work-orders import-knowledge FILE`: how many entries were added or replaced.
pub async fn import_knowledge(
    store: &dyn WorkOrderStore,
    path: &Path,
) -> Result<usize, CommandError> {
    let entries = read_knowledge(path)?;
    Ok(store.import_knowledge(&entries).await?)
}

/// `work-orders import-providers FILE`: how many providers were added or replaced.
pub async fn import_providers(
    store: &dyn WorkOrderStore,
    path: &Path,
) -> Result<usize, CommandError> {
    let providers = read_providers(path)?;
    Ok(store.import_providers(&providers).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_dates_or_rfc3339_times() {
        assert_eq!(
            parse_instant("2026-11-28").expect("date").to_rfc3339(),
            "2026-11-28T00:00:00+00:00"
        );
        assert_eq!(
            parse_instant("2026-11-28T08:30:00+08:00")
                .expect("time")
                .to_rfc3339(),
            "2026-11-28T00:30:00+00:00"
        );
        assert!(parse_instant("yesterday").is_err());
        assert!(parse_instant("2026-13-01").is_err());
    }
}
