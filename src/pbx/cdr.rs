//! Durable CDRs: every call's record is on local disk, fsynced, before anything else happens
//! to it, and in the database eventually, so neither a crash nor a database outage loses one.
#![allow(clippy::disallowed_methods)] // IO driver: files, a task, retry timers
//!
//! The writer task takes CDRs from the call engine in batches (group commit): a batch is
//! written to one spool file (`<data_dir>/cdr-spool/<sequence>.jsonl`, one JSON object per
//! line), the file and its directory are fsynced, and only then is each submitter told its
//! CDR is durable ([`CdrJob::durable`]: the call engine answers the final BYE after that, so
//! a call a phone has seen end has its record on disk). The batch is then inserted into the
//! database in one transaction and the spool file removed. When the database is down the
//! files stay and are retried every [`RETRY_INTERVAL`] and at the next start
//! ([`replay`]), oldest first. A CDR whose `uuid` is already in the database (the process
//! died between the insert and the file's removal) counts as written: the table's unique
//! `uuid` makes the replay idempotent.
//!
//! What this module does not do: build the CDR (the call engine fills it), or search (the
//! store's queries).

use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::store::{Cdr, Store, StoreError};

/// How often spooled CDRs are retried while the database is unreachable.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(5);

/// CDRs written to disk in one fsync at most.
const MAX_BATCH: usize = 1024;

/// One CDR for the writer, with who to tell once it is on disk.
pub struct CdrJob {
    pub cdr: Box<Cdr>,
    pub durable: Option<oneshot::Sender<()>>,
}

/// The spool directory: batches of CDRs as JSON lines, one file per batch.
#[derive(Debug, Clone)]
pub struct CdrSpool {
    dir: PathBuf,
}

impl CdrSpool {
    /// The spool in `dir`, created if missing.
    ///
    /// # Errors
    /// The directory cannot be created.
    pub fn open(dir: &Path) -> io::Result<CdrSpool> {
        std::fs::create_dir_all(dir)?;
        Ok(CdrSpool {
            dir: dir.to_owned(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `cdrs` to a new spool file and fsyncs it and the directory. File names sort in
    /// the order they were written (a nanosecond clock, then a counter against ties).
    ///
    /// # Errors
    /// The disk refused (full, read-only): the caller must not consider the CDRs durable.
    pub fn write_batch(&self, cdrs: &[&Cdr]) -> io::Result<PathBuf> {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let count = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("{stamp:024}-{count:08}.jsonl");
        let temporary = self.dir.join(format!(".{name}.tmp"));
        let path = self.dir.join(&name);
        let mut file = std::fs::File::create(&temporary)?;
        let mut text = Vec::with_capacity(cdrs.len() * 512);
        for cdr in cdrs {
            serde_json::to_writer(&mut text, cdr).map_err(io::Error::other)?;
            text.push(b'\n');
        }
        file.write_all(&text)?;
        file.sync_all()?;
        drop(file);
        // Renamed whole into place: a crash leaves either no file or a complete one.
        std::fs::rename(&temporary, &path)?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        Ok(path)
    }

    /// The spool files waiting, oldest first, with their CDRs. A line that does not parse
    /// (a damaged file) is logged and skipped; the rest of the file is still taken.
    ///
    /// # Errors
    /// The directory cannot be read.
    pub fn pending(&self) -> io::Result<Vec<(PathBuf, Vec<Cdr>)>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|e| e == "jsonl"))
            .collect();
        files.sort();
        let mut out = Vec::with_capacity(files.len());
        for path in files {
            let file = std::fs::File::open(&path)?;
            let mut cdrs = Vec::new();
            for (number, line) in io::BufReader::new(file).lines().enumerate() {
                let line = line?;
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<Cdr>(&line) {
                    Ok(cdr) => cdrs.push(cdr),
                    Err(error) => tracing::error!(
                        file = %path.display(), line = number + 1, %error,
                        "a spooled CDR does not parse; it is skipped"
                    ),
                }
            }
            out.push((path, cdrs));
        }
        Ok(out)
    }

    /// Removes a spool file whose CDRs are in the database.
    ///
    /// # Errors
    /// The file cannot be removed (it will be replayed again, harmlessly).
    pub fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
}

/// Inserts `cdrs` in one transaction; a CDR whose uuid is already there is skipped.
///
/// # Errors
/// The database refused or could not be reached: nothing of the batch is taken as written.
pub async fn insert_batch(store: &Store, cdrs: &[Cdr]) -> Result<usize, StoreError> {
    let mut inserted = 0;
    let mut tx = store.begin().await?;
    for cdr in cdrs {
        let mut row = cdr.clone();
        row.id = 0;
        let exists = tx
            .count::<Cdr>(&crate::store::ListQuery::default().filter(
                "uuid",
                crate::store::value::Value::Text(Some(row.uuid.clone())),
            ))
            .await?
            > 0;
        if !exists {
            tx.insert(&row).await?;
            inserted += 1;
        }
    }
    tx.commit().await?;
    Ok(inserted)
}

/// Writes every spooled CDR into the database, oldest file first; stops at the first
/// database failure (the rest waits for the next try). Returns the CDRs inserted.
pub async fn replay(spool: &CdrSpool, store: &Store) -> usize {
    let pending = match spool.pending() {
        Ok(pending) => pending,
        Err(error) => {
            tracing::error!(%error, dir = %spool.dir().display(), "the CDR spool cannot be read");
            return 0;
        }
    };
    let mut total = 0;
    for (path, cdrs) in pending {
        match insert_batch(store, &cdrs).await {
            Ok(inserted) => {
                total += inserted;
                if let Err(error) = spool.remove(&path) {
                    tracing::warn!(%error, file = %path.display(), "a written CDR spool file stays");
                }
            }
            Err(error) => {
                tracing::warn!(%error, waiting = cdrs.len(), "CDRs stay spooled: the database refused them");
                break;
            }
        }
    }
    total
}

/// The writer task: spool (group commit) and acknowledge; the inserts into the database run
/// in a task of their own ([`run_inserter`]), so a slow or absent database never delays the
/// acknowledgements (a BYE's 200 waits for one). Ends when every sender is dropped and the
/// queue is written.
pub async fn run_writer(spool: CdrSpool, store: Store, mut jobs: mpsc::UnboundedReceiver<CdrJob>) {
    replay(&spool, &store).await;
    let (spooled, files) = mpsc::unbounded_channel();
    let inserter = tokio::spawn(run_inserter(spool.clone(), store.clone(), files));
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let cdrs: Vec<Cdr> = batch.iter().map(|job| (*job.cdr).clone()).collect();
        let to_disk = spool.clone();
        let written = tokio::task::spawn_blocking(move || {
            let refs: Vec<&Cdr> = cdrs.iter().collect();
            to_disk.write_batch(&refs).map(|path| (path, cdrs))
        })
        .await;
        match written {
            Ok(Ok(file)) => {
                let _ = spooled.send(file);
            }
            Ok(Err(error)) => {
                // The disk refused: the database is the only place left; try it directly.
                tracing::error!(%error, "CDRs could not be spooled to disk; writing them to the database directly");
                let cdrs: Vec<Cdr> = batch.iter().map(|job| (*job.cdr).clone()).collect();
                if let Err(error) = insert_batch(&store, &cdrs).await {
                    tracing::error!(%error, lost = cdrs.len(), "CDRs lost: neither disk nor database took them");
                }
            }
            Err(error) => {
                tracing::error!(%error, "the CDR spool task failed");
                continue;
            }
        }
        for job in batch {
            if let Some(durable) = job.durable {
                let _ = durable.send(());
            }
        }
    }
    drop(spooled);
    let _ = inserter.await;
}

/// Inserts spooled batches into the database in order and removes their files. When the
/// database refuses, the batches stay spooled: every [`RETRY_INTERVAL`] the whole spool is
/// replayed (oldest first), and batches arriving meanwhile wait in it too. Inserts are
/// idempotent (by uuid), so a batch both replayed and received is written once.
async fn run_inserter(
    spool: CdrSpool,
    store: Store,
    mut files: mpsc::UnboundedReceiver<(std::path::PathBuf, Vec<Cdr>)>,
) {
    let mut retry_at: Option<tokio::time::Instant> = None;
    loop {
        let next = match retry_at {
            Some(at) => match tokio::time::timeout_at(at, files.recv()).await {
                Ok(next) => next,
                Err(_) => {
                    let still_waiting =
                        replay(&spool, &store).await == 0 && !spool_is_empty(&spool);
                    retry_at = still_waiting.then(|| tokio::time::Instant::now() + RETRY_INTERVAL);
                    continue;
                }
            },
            None => files.recv().await,
        };
        let Some((path, cdrs)) = next else { break };
        if retry_at.is_some() {
            // Older files first: this one waits in the spool for the replay.
            continue;
        }
        match insert_batch(&store, &cdrs).await {
            Ok(_) => match spool.remove(&path) {
                Ok(()) => {}
                // A replay took it already.
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    tracing::warn!(%error, file = %path.display(), "a written CDR spool file stays");
                }
            },
            Err(error) => {
                tracing::warn!(%error, waiting = cdrs.len(), "the database refused CDRs; they stay spooled and are retried");
                retry_at = Some(tokio::time::Instant::now() + RETRY_INTERVAL);
            }
        }
    }
    // Shutting down: one last try for what is spooled.
    replay(&spool, &store).await;
}

fn spool_is_empty(spool: &CdrSpool) -> bool {
    spool.pending().map(|p| p.is_empty()).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CallDirection;
    use chrono::{TimeZone, Utc};

    pub(crate) fn sample(uuid: &str) -> Cdr {
        Cdr {
            id: 0,
            uuid: uuid.into(),
            bleg_uuid: String::new(),
            sip_call_id: format!("{uuid}@test"),
            direction: CallDirection::Internal,
            local_ip: "192.0.2.1".into(),
            caller_id_name: "1000".into(),
            caller_id_number: "1000".into(),
            destination_number: "1001".into(),
            context: "default".into(),
            start_stamp: Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap(),
            answer_stamp: Some(Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 5).unwrap()),
            end_stamp: Utc.with_ymd_and_hms(2026, 11, 24, 8, 1, 0).unwrap(),
            duration: 60,
            billsec: 55,
            hangup_cause: "NORMAL_CLEARING".into(),
            sip_code: Some(200),
            accountcode: "1000".into(),
            read_codec: "PCMU".into(),
            write_codec: "PCMU".into(),
            gateway: String::new(),
            recording_path: String::new(),
        }
    }

    #[test]
    fn batches_are_spooled_whole_and_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let spool = CdrSpool::open(&dir.path().join("spool")).unwrap();
        let (a, b, c) = (sample("a"), sample("b"), sample("c"));
        let first = spool.write_batch(&[&a, &b]).unwrap();
        let second = spool.write_batch(&[&c]).unwrap();
        let pending = spool.pending().unwrap();
        assert_eq!(pending.len(), 2);
        assert_eq!(pending[0].0, first);
        assert_eq!(pending[0].1, vec![a, b]);
        assert_eq!(pending[1].1, vec![c]);
        spool.remove(&second).unwrap();
        assert_eq!(spool.pending().unwrap().len(), 1);
        // A damaged line is skipped, the rest of the file kept; a temporary file (a crash
        // while writing) is not taken.
        std::fs::write(
            spool.dir().join("99999999999999999999999999-x.jsonl"),
            format!(
                "{{broken\n{}\n",
                serde_json::to_string(&sample("d")).unwrap()
            ),
        )
        .unwrap();
        std::fs::write(spool.dir().join(".half.jsonl.tmp"), "{").unwrap();
        let pending = spool.pending().unwrap();
        assert_eq!(pending.len(), 2);
        assert_eq!(pending[1].1, vec![sample("d")]);
    }
}
