//! A bounded record of things that may be used once: `private_key_jwt`
//! assertion ids, consent-form tokens.
//!
//! One mutex over a map and a min-heap of expiries: every operation is
//! O(log n) and short, so sharding would buy nothing measurable at these
//! rates. Expired entries are purged from the heap's front on every insert.
//! It never evicts an unexpired entry to make room — an evicting cache would
//! let a replay through — so when it is full it refuses, and the caller
//! answers "try again later".

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Mutex, PoisonError};

/// Why a use was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// This key was already used and has not expired.
    #[error("already used")]
    Replayed,
    /// The store is at capacity with unexpired entries.
    #[error("single-use store is full")]
    Full,
}

/// Keys used once, each remembered until its own expiry.
#[derive(Debug)]
pub struct ReplayStore {
    max: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    until: HashMap<[u8; 32], i64>,
    by_expiry: BinaryHeap<Reverse<(i64, [u8; 32])>>,
}

impl ReplayStore {
    /// A store holding at most `max` unexpired keys.
    pub fn new(max: usize) -> Self {
        ReplayStore {
            max,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Unexpired keys held (for a metrics gauge).
    pub fn len(&self) -> usize {
        self.lock().until.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Nothing panics while the lock is held, so a poisoned state is still consistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `key` until `keep_until` (unix seconds, inclusive), or
    /// refuses a replay or a full store. `now` is unix seconds.
    pub fn insert(&self, key: [u8; 32], keep_until: i64, now: i64) -> Result<(), ReplayError> {
        let mut inner = self.lock();
        while let Some(Reverse((until, _))) = inner.by_expiry.peek()
            && *until < now
        {
            if let Some(Reverse((_, expired))) = inner.by_expiry.pop() {
                inner.until.remove(&expired);
            }
        }
        if inner.until.contains_key(&key) {
            return Err(ReplayError::Replayed);
        }
        if inner.until.len() >= self.max {
            return Err(ReplayError::Full);
        }
        inner.until.insert(key, keep_until);
        inner.by_expiry.push(Reverse((keep_until, key)));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_single_use_until_it_expires() {
        let store = ReplayStore::new(10);
        assert_eq!(store.insert([1; 32], 100, 50), Ok(()));
        assert_eq!(store.insert([1; 32], 100, 100), Err(ReplayError::Replayed));
        // Purged once its time has passed, so the same key is new again.
        assert_eq!(store.insert([1; 32], 200, 101), Ok(()));
    }

    #[test]
    fn a_full_store_refuses_rather_than_forgets() {
        let store = ReplayStore::new(2);
        store.insert([1; 32], 100, 0).unwrap();
        store.insert([2; 32], 100, 0).unwrap();
        assert_eq!(store.insert([3; 32], 100, 0), Err(ReplayError::Full));
        assert_eq!(store.insert([1; 32], 100, 0), Err(ReplayError::Replayed));
        assert_eq!(store.len(), 2);
        // Expiry makes room.
        assert_eq!(store.insert([3; 32], 200, 101), Ok(()));
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn the_replay_store_never_forgets_an_unexpired_entry() {
        let store = ReplayStore::new(3);
        for n in 0..3u8 {
            store.insert([n; 32], 100 + i64::from(n), 0).unwrap();
        }
        assert_eq!(
            store.insert([9; 32], 500, 0).unwrap_err(),
            ReplayError::Full
        );
        for n in 0..3u8 {
            assert_eq!(
                store.insert([n; 32], 500, 100).unwrap_err(),
                ReplayError::Replayed,
                "entry {n} at its last second"
            );
        }
        // At 101 only the first entry (until 100) has gone.
        store.insert([9; 32], 500, 101).expect("room after purge");
        assert_eq!(store.len(), 3);
        assert_eq!(
            store.insert([1; 32], 500, 101).unwrap_err(),
            ReplayError::Replayed
        );
    }
}
