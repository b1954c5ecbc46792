//! Sightings merged per client and written to the store in batches.
//!
//! Every `/authorize` is a sighting, and a cached one is the proxy's hot
//! path: writing each to the store on its own (a task, the store's lock or
//! a Redis script) cost more than the rest of the request. A sighting is
//! merged here instead, into what waits for its client: each field's
//! latest value, counters summed, the latest time; and so is a user who
//! signed in, written after the client's sightings (the store counts users
//! only of a client it holds). What waits is written
//! - at most [`INTERVAL`] after the first sighting began waiting;
//! - at once when [`MAX_WAITING`] clients wait;
//! - before this process reads the inventory (the admin API and page), so
//!   an operator sees every sighting this replica made;
//! - at shutdown, once requests in flight are done.
//!
//! At most [`MAX_FULL_BATCHES`] full batches wait behind the one being
//! written: a store slower than a flood of new client_ids costs the oldest
//! batch (counted as failures), never unbounded memory.
//!
//! One batch is written at a time, in the order the batches were taken,
//! so a later sighting is never overwritten by an earlier one. A batch the
//! store refuses is dropped from its first failure on (the store is down;
//! the next batch tries again) and every client in it is counted in
//! `cimd_proxy_inventory_write_failures_total`: nothing is lost silently.
//!
//! The cost: with Redis another replica sees a sighting up to [`INTERVAL`]
//! late, and an entry's first seen is its first batch's last sighting.

use std::borrow::Cow;
use std::collections::HashMap;
use std::mem;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::metrics::METRICS;
use crate::store::{ClientWrite, Store, StoreError};

/// The longest a sighting waits before it is written.
pub const INTERVAL: Duration = Duration::from_millis(500);

/// The most clients waiting: one more and they are written at once.
pub const MAX_WAITING: usize = 4_096;

/// The most full batches waiting behind the one being written.
pub const MAX_FULL_BATCHES: usize = 4;

/// A field's name and value, borrowed from the request where it can be.
pub(super) type Field<'a> = (&'static str, Cow<'a, str>);

/// The counter a sighting increments by one: `started`, `completed` or
/// `refused.<code>`.
pub(super) type Counter = Cow<'static, str>;

/// The sightings of one client, merged, and the users who signed in with
/// it meanwhile.
#[derive(Debug, Default)]
struct Merged {
    last_seen_ms: u64,
    set: Vec<(&'static str, String)>,
    increment: Vec<(Counter, i64)>,
    /// Written after the sightings: the store counts users only of a
    /// client it holds.
    users: Vec<[u8; 16]>,
}

impl Merged {
    fn sighted(&mut self, now_ms: u64, set: Vec<Field<'_>>, counter: Counter) {
        self.last_seen_ms = self.last_seen_ms.max(now_ms);
        for (name, value) in set {
            // A client's fields rarely change between sightings: a value
            // already held is kept, not allocated again.
            match self.set.iter_mut().find(|(held, _)| *held == name) {
                Some((_, held)) if *held == value => {}
                Some((_, held)) => *held = value.into_owned(),
                None => self.set.push((name, value.into_owned())),
            }
        }
        match self.increment.iter_mut().find(|(held, _)| *held == counter) {
            Some((_, by)) => *by = by.saturating_add(1),
            None => self.increment.push((counter, 1)),
        }
    }
}

/// What waits to be written.
#[derive(Debug, Default)]
struct Waiting {
    /// Taken when [`MAX_WAITING`] clients waited, oldest first.
    full: Vec<HashMap<Box<str>, Merged>>,
    clients: HashMap<Box<str>, Merged>,
    /// Whether a write is already due within [`INTERVAL`].
    scheduled: bool,
}

/// Sightings on their way to the store; one per process, shared by every
/// configuration reload.
#[derive(Debug)]
pub(super) struct Batcher {
    store: Arc<Store>,
    max_entries: usize,
    waiting: Mutex<Waiting>,
    /// Held while a batch is written: batches land in order.
    writing: tokio::sync::Mutex<()>,
}

impl Batcher {
    pub(super) fn new(store: Arc<Store>, max_entries: usize) -> Self {
        Batcher {
            store,
            max_entries,
            waiting: Mutex::new(Waiting::default()),
            writing: tokio::sync::Mutex::new(()),
        }
    }

    /// Merges a sighting of `client_id` at `now_ms` into what waits, and
    /// makes sure it is written soon. Never waits for the store.
    pub(super) fn sighting(
        self: &Arc<Self>,
        client_id: &str,
        now_ms: u64,
        set: Vec<Field<'_>>,
        counter: Counter,
    ) {
        self.merge(client_id, |merged| merged.sighted(now_ms, set, counter));
    }

    /// Adds a user (a digest) of `client_id` to what waits.
    pub(super) fn user(self: &Arc<Self>, client_id: &str, user: [u8; 16]) {
        self.merge(client_id, |merged| {
            if !merged.users.contains(&user) {
                merged.users.push(user);
            }
        });
    }

    fn merge(self: &Arc<Self>, client_id: &str, change: impl FnOnce(&mut Merged)) {
        let mut waiting = self.lock_waiting();
        match waiting.clients.get_mut(client_id) {
            Some(merged) => change(merged),
            None => {
                let mut merged = Merged::default();
                change(&mut merged);
                waiting.clients.insert(client_id.into(), merged);
            }
        }
        let mut dropped = None;
        let due = if waiting.clients.len() >= MAX_WAITING {
            // A batch already waiting has its write on the way, which
            // takes this one too.
            let on_the_way = !waiting.full.is_empty();
            if waiting.full.len() == MAX_FULL_BATCHES {
                dropped = Some(waiting.full.remove(0));
            }
            let full = mem::take(&mut waiting.clients);
            waiting.full.push(full);
            (!on_the_way).then_some(Duration::ZERO)
        } else if waiting.scheduled {
            None
        } else {
            waiting.scheduled = true;
            Some(INTERVAL)
        };
        drop(waiting);
        if let Some(batch) = dropped {
            let mut lost = Lost::default();
            for merged in batch.values() {
                lost.add(merged);
            }
            lost.count();
            tracing::warn!(
                sightings = lost.sightings,
                users = lost.users,
                "the client inventory's store is behind: the oldest waiting sightings were dropped"
            );
        }
        if let Some(delay) = due {
            let batcher = Arc::clone(self);
            tokio::spawn(async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                    batcher.lock_waiting().scheduled = false;
                }
                batcher.flush().await;
            });
        }
    }

    fn lock_waiting(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes everything waiting now, after any batch being written.
    pub(super) async fn flush(&self) {
        let _writing = self.writing.lock().await;
        let batches = {
            let mut waiting = self.lock_waiting();
            let mut batches = mem::take(&mut waiting.full);
            batches.push(mem::take(&mut waiting.clients));
            batches
        };
        for batch in batches {
            self.write(batch).await;
        }
    }

    async fn write(&self, batch: HashMap<Box<str>, Merged>) {
        let mut entries = batch.into_iter();
        while let Some((client_id, merged)) = entries.next() {
            if let Err((error, mut lost)) = self.write_one(&client_id, merged).await {
                for (_, merged) in entries {
                    lost.add(&merged);
                }
                lost.count();
                tracing::warn!(
                    %error,
                    sightings = lost.sightings,
                    users = lost.users,
                    "cannot write to the client inventory; the sign-ins went on"
                );
                return;
            }
        }
    }

    /// One client's sightings, then its users; what was not written when
    /// the store failed.
    async fn write_one(&self, client_id: &str, merged: Merged) -> Result<(), (StoreError, Lost)> {
        if !merged.increment.is_empty() {
            let write = ClientWrite {
                client_id,
                now_ms: merged.last_seen_ms,
                sighting: true,
                set: merged
                    .set
                    .iter()
                    .cloned()
                    .chain([(super::field::CLIENT_ID, client_id.to_owned())])
                    .collect(),
                increment: merged
                    .increment
                    .iter()
                    .map(|(name, by)| (name.clone().into_owned(), *by))
                    .collect(),
                max_entries: self.max_entries,
            };
            let recorded = self.store.record_client(&write).await.map_err(|error| {
                let mut lost = Lost::default();
                lost.add(&merged);
                (error, lost)
            })?;
            METRICS.inventory_evictions.inc_by(recorded.evicted);
            METRICS
                .inventory_entries
                .set(i64::try_from(recorded.entries).unwrap_or(i64::MAX));
        }
        for (n, user) in merged.users.iter().enumerate() {
            self.store
                .add_user(client_id, user)
                .await
                .map_err(|error| {
                    let users = (merged.users.len() - n) as u64;
                    (
                        error,
                        Lost {
                            sightings: 0,
                            users,
                        },
                    )
                })?;
        }
        Ok(())
    }
}

/// Writes a failed batch did not make, for the counters.
#[derive(Debug, Default)]
struct Lost {
    sightings: u64,
    users: u64,
}

impl Lost {
    fn add(&mut self, merged: &Merged) {
        self.sightings += u64::from(!merged.increment.is_empty());
        self.users += merged.users.len() as u64;
    }

    fn count(&self) {
        let failures = &METRICS.inventory_write_failures;
        failures
            .with_label_values(&["sighting"])
            .inc_by(self.sightings);
        failures.with_label_values(&["user"]).inc_by(self.users);
    }
}

/// Sightings counted as lost so far (for tests: the metric is process-wide,
/// so a test compares it before and after).
#[cfg(test)]
pub(super) fn sightings_lost() -> u64 {
    METRICS
        .inventory_write_failures
        .with_label_values(&["sighting"])
        .get()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreConfig;

    #[tokio::test(start_paused = true)]
    async fn full_batches_behind_a_slow_store_are_bounded_and_the_dropped_counted() {
        let store = Arc::new(Store::connect(&StoreConfig::default()).unwrap());
        let batcher = Arc::new(Batcher::new(Arc::clone(&store), usize::MAX));
        let before = sightings_lost();
        // A write in progress that does not end: the store is behind.
        let writing = batcher.writing.lock().await;
        for n in 0..(MAX_FULL_BATCHES + 2) * MAX_WAITING {
            batcher.sighting(&format!("c{n}"), 1, Vec::new(), Cow::Borrowed("started"));
        }
        assert_eq!(batcher.lock_waiting().full.len(), MAX_FULL_BATCHES);
        assert!(sightings_lost() >= before + 2 * MAX_WAITING as u64);
        // The store catches up: the batches kept are written, the newest last.
        drop(writing);
        batcher.flush().await;
        assert_eq!(
            store.client_count().await.unwrap(),
            (MAX_FULL_BATCHES * MAX_WAITING) as u64
        );
        let newest = (MAX_FULL_BATCHES + 2) * MAX_WAITING - 1;
        assert!(store.client(&format!("c{newest}")).await.unwrap().is_some());
        assert!(store.client("c0").await.unwrap().is_none());
    }
}
