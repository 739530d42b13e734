//! The snapshot in force, and Apply: rebuild it from the database and swap it atomically.
//!
//! Readers take an `Arc<Snapshot>` with [`LiveConfig::current`] and keep it for as long as
//! they need (a call keeps the snapshot it began with). [`LiveConfig::apply`] loads every
//! configuration row, builds a new snapshot and installs it only if it has no problems;
//! otherwise the running snapshot stays and the problems are returned.
//!
//! What this module does not do: decide what a row means (`snapshot.rs`) or when to apply
//! (the operator does, through the API, SIGHUP or at start).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;

use super::snapshot::{ConfigRows, Problem, Snapshot};
use crate::store::{Store, StoreError};

/// The outcome of Apply.
#[derive(Debug)]
pub enum ApplyOutcome {
    /// The new snapshot is in force.
    Applied { version: u64 },
    /// The configuration has problems; the previous snapshot (`kept_version`) stays in force.
    Refused {
        kept_version: u64,
        problems: Vec<Problem>,
    },
}

/// The running configuration.
#[derive(Debug)]
pub struct LiveConfig {
    current: ArcSwap<Snapshot>,
    last_version: AtomicU64,
    /// Problems of the last build (accepted at start, or refused by Apply).
    last_problems: ArcSwap<Vec<Problem>>,
}

impl LiveConfig {
    /// Builds the first snapshot. At start there is no previous one to keep, so rows with
    /// problems are left out and the problems are returned for the operator to see.
    ///
    /// # Errors
    /// The database can not be read.
    pub async fn load(store: &Store) -> Result<(LiveConfig, Vec<Problem>), StoreError> {
        let rows = load_rows(store).await?;
        let (snapshot, problems) = Snapshot::build(1, rows);
        let live = LiveConfig {
            current: ArcSwap::from_pointee(snapshot),
            last_version: AtomicU64::new(1),
            last_problems: ArcSwap::from_pointee(problems.clone()),
        };
        Ok((live, problems))
    }

    /// The snapshot in force.
    pub fn current(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Problems found by the last build.
    pub fn last_problems(&self) -> Arc<Vec<Problem>> {
        self.last_problems.load_full()
    }

    /// Rebuilds the snapshot from the database; installs it only if it has no problems.
    ///
    /// # Errors
    /// The database can not be read (the running snapshot stays).
    pub async fn apply(&self, store: &Store) -> Result<ApplyOutcome, StoreError> {
        let rows = load_rows(store).await?;
        let version = self.last_version.fetch_add(1, Ordering::SeqCst) + 1;
        let (snapshot, problems) = Snapshot::build(version, rows);
        self.last_problems.store(Arc::new(problems.clone()));
        if !problems.is_empty() {
            let kept_version = self.current.load().version;
            tracing::warn!(
                problems = problems.len(),
                kept_version,
                "Apply refused: configuration has problems"
            );
            for p in &problems {
                tracing::warn!(problem = %p, "configuration problem");
            }
            return Ok(ApplyOutcome::Refused {
                kept_version,
                problems,
            });
        }
        self.current.store(Arc::new(snapshot));
        tracing::info!(version, "configuration applied");
        Ok(ApplyOutcome::Applied { version })
    }
}

/// Reads every configuration table, all from one consistent state of the database.
///
/// # Errors
/// Database failure.
pub async fn load_rows(store: &Store) -> Result<ConfigRows, StoreError> {
    let mut tx = store.begin_consistent_read().await?;
    let rows = ConfigRows {
        extension_groups: tx.all().await?,
        extensions: tx.all().await?,
        base_config: tx.all().await?,
        ring_tones: tx.all().await?,
        gateways: tx.all().await?,
        gateway_groups: tx.all().await?,
        gateway_group_members: tx.all().await?,
        routes: tx.all().await?,
        route_details: tx.all().await?,
        route_detail_regions: tx.all().await?,
        ivrs: tx.all().await?,
        ivr_details: tx.all().await?,
        ivr_detail_regions: tx.all().await?,
        agent_queues: tx.all().await?,
        agent_queue_members: tx.all().await?,
        inbound_queues: tx.all().await?,
        inbound_queue_links: tx.all().await?,
        conferences: tx.all().await?,
        conference_members: tx.all().await?,
        blacklist: tx.all().await?,
    };
    tx.commit().await?;
    Ok(rows)
}
