//! The memory backend: one process, bounded, never forgetting an unexpired
//! entry to make room (it refuses with [`StoreError::Full`] instead).
//!
//! Single use is [`ReplayStore`] as it was before the shared store existed
//! (second resolution, expiry inclusive). Families are a map and a min-heap
//! of expiries under one mutex, the same shape: a family's expiry is fixed
//! when it is created, so the heap never holds stale entries and stays the
//! size of the map.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::clients::Clients;
use super::{FamilyId, FamilyStatus, Rotation, StoreError, Use};
use crate::replay::{ReplayError, ReplayStore};

/// The in-process store.
#[derive(Debug)]
pub struct MemoryStore {
    single_use: ReplayStore,
    families: Mutex<Families>,
    max_families: usize,
    clients: Mutex<Clients>,
    counters: Mutex<Counters>,
}

/// Fixed-window counters ([`super::Store::count`]): a map and a min-heap of
/// window ends, like the families; a counter's end is fixed at its first
/// increment, so the heap never holds stale entries.
#[derive(Debug, Default)]
struct Counters {
    by_key: HashMap<Box<str>, (u64, u64)>,
    by_end: BinaryHeap<Reverse<(u64, Box<str>)>>,
}

#[derive(Debug, Default)]
struct Families {
    by_id: HashMap<FamilyId, State>,
    by_expiry: BinaryHeap<Reverse<(u64, FamilyId)>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Live(u64),
    Revoked,
}

fn now_ms() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)
}

impl MemoryStore {
    /// A store holding at most `max_entries` unexpired single-use values and
    /// as many live or revoked families.
    pub fn new(max_entries: usize) -> Self {
        MemoryStore {
            single_use: ReplayStore::new(max_entries),
            families: Mutex::new(Families::default()),
            max_families: max_entries,
            clients: Mutex::new(Clients::default()),
            counters: Mutex::new(Counters::default()),
        }
    }

    /// The client inventory (its bound is the inventory's, given per write).
    pub(super) fn clients(&self) -> MutexGuard<'_, Clients> {
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Unexpired single-use values held (for a gauge).
    pub fn single_use_len(&self) -> usize {
        self.single_use.len()
    }

    /// Families held, expired ones not yet purged included.
    pub fn families_len(&self) -> usize {
        self.lock().by_id.len()
    }

    fn lock(&self) -> MutexGuard<'_, Families> {
        // Nothing panics while the lock is held, so a poisoned state is still consistent.
        self.families.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn use_once(&self, key: [u8; 32], ttl: Duration) -> Result<Use, StoreError> {
        self.use_once_at(key, ttl, now_ms())
    }

    fn use_once_at(&self, key: [u8; 32], ttl: Duration, now_ms: u64) -> Result<Use, StoreError> {
        // ReplayStore counts whole seconds and keeps an entry through its
        // last second: round the lifetime up, never down.
        let now = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
        let ttl_s = i64::try_from(millis(ttl).div_ceil(1000)).unwrap_or(i64::MAX);
        match self.single_use.insert(key, now.saturating_add(ttl_s), now) {
            Ok(()) => Ok(Use::First),
            Err(ReplayError::Replayed) => Ok(Use::Replayed),
            Err(ReplayError::Full) => Err(StoreError::Full),
        }
    }

    /// Counters held, ended ones not yet purged included.
    pub fn counters_len(&self) -> usize {
        self.counters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .by_key
            .len()
    }

    pub(super) fn count(&self, key: &str, window: Duration) -> Result<u64, StoreError> {
        self.count_at(key, window, now_ms())
    }

    fn count_at(&self, key: &str, window: Duration, now: u64) -> Result<u64, StoreError> {
        // Nothing panics while the lock is held, so a poisoned state is still consistent.
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        counters.purge(now);
        if let Some((count, _)) = counters.by_key.get_mut(key) {
            *count = count.saturating_add(1);
            return Ok(*count);
        }
        // A new counter when the table is full is refused, not made by
        // forgetting another: forgetting would reset someone's limit.
        if counters.by_key.len() >= self.max_families {
            return Err(StoreError::Full);
        }
        let end = now.saturating_add(millis(window).max(1));
        let key: Box<str> = key.into();
        counters.by_key.insert(key.clone(), (1, end));
        counters.by_end.push(Reverse((end, key)));
        Ok(1)
    }

    pub(super) fn create_family(&self, id: FamilyId, ttl: Duration) -> Result<(), StoreError> {
        self.create_family_at(id, ttl, now_ms())
    }

    fn create_family_at(&self, id: FamilyId, ttl: Duration, now: u64) -> Result<(), StoreError> {
        let mut families = self.lock();
        families.purge(now);
        if families.by_id.contains_key(&id) {
            // 128 random bits do not collide; a repeat means a broken RNG.
            return Err(StoreError::Unavailable(
                "a new refresh family's id is already in use".to_owned(),
            ));
        }
        if families.by_id.len() >= self.max_families {
            return Err(StoreError::Full);
        }
        let until_ms = now.saturating_add(millis(ttl));
        families.by_id.insert(id, State::Live(0));
        families.by_expiry.push(Reverse((until_ms, id)));
        Ok(())
    }

    /// Takes on a family this process does not know (created by another
    /// replica, or before a restart) at `generation`, unless it is known
    /// already (`false`). A full table refuses, as for a new family.
    pub(super) fn adopt_family(
        &self,
        id: FamilyId,
        generation: u64,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut families = self.lock();
        families.purge(now);
        if families.by_id.contains_key(&id) {
            return Ok(false);
        }
        if families.by_id.len() >= self.max_families {
            return Err(StoreError::Full);
        }
        families.by_id.insert(id, State::Live(generation));
        families
            .by_expiry
            .push(Reverse((now.saturating_add(millis(ttl)), id)));
        Ok(true)
    }

    pub(super) fn advance_family(
        &self,
        id: FamilyId,
        presented: u64,
    ) -> Result<Rotation, StoreError> {
        Ok(self.advance_family_at(id, presented, now_ms()))
    }

    fn advance_family_at(&self, id: FamilyId, presented: u64, now: u64) -> Rotation {
        let mut families = self.lock();
        families.purge(now);
        let Some(state) = families.by_id.get_mut(&id) else {
            return Rotation::Unknown;
        };
        match *state {
            State::Revoked => Rotation::Revoked,
            State::Live(current) if current == presented => {
                let next = current.saturating_add(1);
                *state = State::Live(next);
                Rotation::Advanced { generation: next }
            }
            State::Live(_) => {
                *state = State::Revoked;
                Rotation::Reused
            }
        }
    }

    pub(super) fn rewind_family(&self, id: FamilyId, advanced: u64, presented: u64) -> bool {
        let mut families = self.lock();
        match families.by_id.get_mut(&id) {
            Some(state) if *state == State::Live(advanced) => {
                *state = State::Live(presented);
                true
            }
            _ => false,
        }
    }

    pub(super) fn revoke_family(&self, id: FamilyId) {
        self.revoke_family_at(id, now_ms());
    }

    fn revoke_family_at(&self, id: FamilyId, now: u64) {
        let mut families = self.lock();
        families.purge(now);
        if let Some(state) = families.by_id.get_mut(&id) {
            *state = State::Revoked;
        }
    }

    pub(super) fn family_status(&self, id: FamilyId) -> FamilyStatus {
        self.family_status_at(id, now_ms())
    }

    fn family_status_at(&self, id: FamilyId, now: u64) -> FamilyStatus {
        let mut families = self.lock();
        families.purge(now);
        match families.by_id.get(&id) {
            None => FamilyStatus::Unknown,
            Some(State::Revoked) => FamilyStatus::Revoked,
            Some(State::Live(generation)) => FamilyStatus::Current(*generation),
        }
    }
}

impl Counters {
    /// Drops every counter whose window has ended (`end <= now`).
    fn purge(&mut self, now: u64) {
        while let Some(Reverse((end, _))) = self.by_end.peek()
            && *end <= now
        {
            if let Some(Reverse((_, key))) = self.by_end.pop() {
                self.by_key.remove(&key);
            }
        }
    }
}

impl Families {
    /// Drops every family whose lifetime has run out (`until_ms < now`: a
    /// family is usable through its last millisecond).
    fn purge(&mut self, now: u64) {
        while let Some(Reverse((until, _))) = self.by_expiry.peek()
            && *until < now
        {
            if let Some(Reverse((_, id))) = self.by_expiry.pop() {
                self.by_id.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn id(n: u8) -> FamilyId {
        FamilyId::from_bytes([n; 16])
    }

    #[test]
    fn an_unknown_family_is_adopted_once_at_the_presented_generation() {
        let store = MemoryStore::new(1);
        assert_eq!(store.adopt_family(id(1), 4, MINUTE), Ok(true));
        // Known now: not adopted again, whatever generation is presented.
        assert_eq!(store.adopt_family(id(1), 9, MINUTE), Ok(false));
        assert_eq!(store.family_status(id(1)), FamilyStatus::Current(4));
        assert_eq!(
            store.advance_family(id(1), 4),
            Ok(Rotation::Advanced { generation: 5 })
        );
        assert_eq!(store.advance_family(id(1), 4), Ok(Rotation::Reused));
        // The bound holds for adoption too.
        assert_eq!(store.adopt_family(id(2), 0, MINUTE), Err(StoreError::Full));
    }

    #[test]
    fn a_single_use_value_is_refused_the_second_time() {
        let store = MemoryStore::new(10);
        let t = 1_000_000;
        assert_eq!(store.use_once_at([1; 32], MINUTE, t), Ok(Use::First));
        assert_eq!(
            store.use_once_at([1; 32], MINUTE, t + 59_000),
            Ok(Use::Replayed)
        );
        assert_eq!(store.use_once_at([2; 32], MINUTE, t), Ok(Use::First));
    }

    #[test]
    fn a_sub_second_lifetime_is_rounded_up_not_down() {
        let store = MemoryStore::new(10);
        let t = 5_000_000;
        assert_eq!(
            store.use_once_at([1; 32], Duration::from_millis(1), t),
            Ok(Use::First)
        );
        // Still within the rounded-up second: a replay, not a new value.
        assert_eq!(
            store.use_once_at([1; 32], Duration::from_millis(1), t + 999),
            Ok(Use::Replayed)
        );
    }

    #[test]
    fn a_full_single_use_table_refuses_rather_than_forgets() {
        let store = MemoryStore::new(2);
        let t = 1_000_000;
        store.use_once_at([1; 32], MINUTE, t).unwrap();
        store.use_once_at([2; 32], MINUTE, t).unwrap();
        assert_eq!(store.use_once_at([3; 32], MINUTE, t), Err(StoreError::Full));
        // Full does not mean forgetful: the old ones are still spent.
        assert_eq!(store.use_once_at([1; 32], MINUTE, t), Ok(Use::Replayed));
        // Once they expire there is room again.
        assert_eq!(
            store.use_once_at([3; 32], MINUTE, t + 62_000),
            Ok(Use::First)
        );
        assert_eq!(store.single_use_len(), 1);
    }

    #[test]
    fn refresh_reuse_after_rotation_revokes_family() {
        let store = MemoryStore::new(10);
        let t = 1_000_000;
        store.create_family_at(id(1), MINUTE, t).unwrap();
        assert_eq!(
            store.advance_family_at(id(1), 0, t),
            Rotation::Advanced { generation: 1 }
        );
        assert_eq!(
            store.advance_family_at(id(1), 1, t),
            Rotation::Advanced { generation: 2 }
        );
        // Generation 1 again: stolen or replayed; the whole family goes.
        assert_eq!(store.advance_family_at(id(1), 1, t), Rotation::Reused);
        assert_eq!(store.advance_family_at(id(1), 2, t), Rotation::Revoked);
        assert_eq!(store.family_status_at(id(1), t), FamilyStatus::Revoked);
    }

    #[test]
    fn a_future_generation_is_reuse_too() {
        let store = MemoryStore::new(10);
        store.create_family_at(id(1), MINUTE, 0).unwrap();
        assert_eq!(store.advance_family_at(id(1), 7, 0), Rotation::Reused);
    }

    #[test]
    fn a_family_expires_with_its_lifetime_and_rotation_does_not_extend_it() {
        let store = MemoryStore::new(10);
        let t = 1_000_000;
        store.create_family_at(id(1), MINUTE, t).unwrap();
        assert_eq!(
            store.advance_family_at(id(1), 0, t + 59_000),
            Rotation::Advanced { generation: 1 }
        );
        assert_eq!(
            store.family_status_at(id(1), t + 60_000),
            FamilyStatus::Current(1)
        );
        assert_eq!(
            store.advance_family_at(id(1), 1, t + 60_001),
            Rotation::Unknown
        );
        assert_eq!(store.families_len(), 0);
    }

    #[test]
    fn a_revoked_family_stays_revoked_until_it_would_have_expired() {
        let store = MemoryStore::new(10);
        let t = 1_000_000;
        store.create_family_at(id(1), MINUTE, t).unwrap();
        store.revoke_family_at(id(1), t);
        assert_eq!(store.advance_family_at(id(1), 0, t), Rotation::Revoked);
        // Revoking what is not there is a no-op, not an error.
        store.revoke_family_at(id(2), t);
        assert_eq!(store.family_status_at(id(2), t), FamilyStatus::Unknown);
        assert_eq!(
            store.family_status_at(id(1), t + 60_001),
            FamilyStatus::Unknown
        );
    }

    #[test]
    fn a_counter_counts_within_its_window_and_starts_again_after() {
        let store = MemoryStore::new(8);
        let t0 = 1_000_000;
        assert_eq!(store.count_at("a", MINUTE, t0), Ok(1));
        assert_eq!(store.count_at("a", MINUTE, t0 + 1), Ok(2));
        assert_eq!(store.count_at("b", MINUTE, t0 + 2), Ok(1));
        // The window is fixed at the first increment, not extended by later ones.
        assert_eq!(store.count_at("a", MINUTE, t0 + 59_999), Ok(3));
        assert_eq!(store.count_at("a", MINUTE, t0 + 60_000), Ok(1));
        assert_eq!(store.counters_len(), 2);
    }

    #[test]
    fn a_full_counter_table_refuses_a_new_counter_until_one_ends() {
        let store = MemoryStore::new(2);
        let t0 = 5_000_000;
        assert_eq!(store.count_at("a", MINUTE, t0), Ok(1));
        assert_eq!(store.count_at("b", MINUTE, t0), Ok(1));
        assert_eq!(store.count_at("c", MINUTE, t0), Err(StoreError::Full));
        // Existing counters still count: a full table does not reset anyone.
        assert_eq!(store.count_at("a", MINUTE, t0 + 1), Ok(2));
        assert_eq!(store.counters_len(), 2);
        assert_eq!(store.count_at("c", MINUTE, t0 + 60_000), Ok(1));
        assert_eq!(store.counters_len(), 1);
    }

    #[test]
    fn a_full_family_table_refuses_rather_than_forgets() {
        let store = MemoryStore::new(2);
        let t = 1_000_000;
        store.create_family_at(id(1), MINUTE, t).unwrap();
        store.create_family_at(id(2), MINUTE * 2, t).unwrap();
        assert_eq!(
            store.create_family_at(id(3), MINUTE, t),
            Err(StoreError::Full)
        );
        // Revoked families count too: forgetting one would un-revoke it.
        store.revoke_family_at(id(1), t);
        assert_eq!(
            store.create_family_at(id(3), MINUTE, t + 1),
            Err(StoreError::Full)
        );
        assert_eq!(store.family_status_at(id(1), t + 1), FamilyStatus::Revoked);
        // The first family's lifetime ends: exactly one slot opens.
        store.create_family_at(id(3), MINUTE, t + 60_001).unwrap();
        assert_eq!(
            store.create_family_at(id(4), MINUTE, t + 60_001),
            Err(StoreError::Full)
        );
        assert_eq!(
            store.family_status_at(id(2), t + 60_001),
            FamilyStatus::Current(0)
        );
    }
}
