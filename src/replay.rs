//! Bounded records of things that may be used once: `private_key_jwt`
//! assertion ids and consent-form tokens ([`ReplayStore`]); the codes,
//! tokens and pending sign-ins of `cimd-proxy dev`'s services
//! ([`SingleUse`], which keeps a value with each key).
//!
//! One mutex over a map and a min-heap of expiries: every operation is
//! O(log n) and short, so sharding would buy nothing measurable at these
//! rates. Expired entries are purged from the heap's front on every insert.
//! It never evicts an unexpired entry to make room — an evicting cache would
//! let a replay through — so when it is full it refuses, and the caller
//! answers "try again later".

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
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
    keys: SingleUse<()>,
}

impl ReplayStore {
    /// A store holding at most `max` unexpired keys.
    pub fn new(max: usize) -> Self {
        ReplayStore {
            keys: SingleUse::new(max),
        }
    }

    /// Unexpired keys held (for a metrics gauge).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records `key` until `keep_until` (unix seconds, inclusive), or
    /// refuses a replay or a full store. `now` is unix seconds.
    pub fn insert(&self, key: [u8; 32], keep_until: i64, now: i64) -> Result<(), ReplayError> {
        self.keys.insert(key, (), keep_until, now)
    }
}

/// Values handed out to be used once, each kept with its key until its own
/// expiry. [`SingleUse::take`] gives a value once; its key stays used until
/// it expires, so the same key cannot be stored again meanwhile.
pub struct SingleUse<V> {
    max: usize,
    inner: Mutex<Inner<V>>,
}

struct Inner<V> {
    entries: HashMap<[u8; 32], Entry<V>>,
    by_expiry: BinaryHeap<Reverse<(i64, [u8; 32])>>,
}

struct Entry<V> {
    until: i64,
    /// `None` once taken.
    value: Option<V>,
}

/// The count only: the values may be secrets.
impl<V> fmt::Debug for SingleUse<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SingleUse")
            .field("max", &self.max)
            .field("len", &self.len())
            .finish()
    }
}

impl<V> SingleUse<V> {
    /// A store holding at most `max` unexpired keys.
    pub fn new(max: usize) -> Self {
        SingleUse {
            max,
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                by_expiry: BinaryHeap::new(),
            }),
        }
    }

    /// Keys held, taken or not, until their expiry is purged.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<V>> {
        // Nothing panics while the lock is held, so a poisoned state is still consistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores `value` under `key` until `keep_until` (unix seconds,
    /// inclusive), or refuses a key in use or a full store. `now` is unix
    /// seconds.
    pub fn insert(
        &self,
        key: [u8; 32],
        value: V,
        keep_until: i64,
        now: i64,
    ) -> Result<(), ReplayError> {
        let mut inner = self.lock();
        while let Some(Reverse((until, _))) = inner.by_expiry.peek()
            && *until < now
        {
            if let Some(Reverse((_, expired))) = inner.by_expiry.pop() {
                inner.entries.remove(&expired);
            }
        }
        if inner.entries.contains_key(&key) {
            return Err(ReplayError::Replayed);
        }
        if inner.entries.len() >= self.max {
            return Err(ReplayError::Full);
        }
        inner.entries.insert(
            key,
            Entry {
                until: keep_until,
                value: Some(value),
            },
        );
        inner.by_expiry.push(Reverse((keep_until, key)));
        Ok(())
    }

    /// The value under `key`, once: `None` if it was taken, has expired or
    /// was never stored.
    pub fn take(&self, key: &[u8; 32], now: i64) -> Option<V> {
        let mut inner = self.lock();
        let entry = inner.entries.get_mut(key)?;
        if entry.until < now {
            return None;
        }
        entry.value.take()
    }
}

impl<V: Clone> SingleUse<V> {
    /// A copy of the value under `key`, leaving it in place, if it has not
    /// been taken or expired.
    pub fn get(&self, key: &[u8; 32], now: i64) -> Option<V> {
        let inner = self.lock();
        let entry = inner.entries.get(key)?;
        if entry.until < now {
            return None;
        }
        entry.value.clone()
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

    #[test]
    fn a_value_is_taken_once_and_its_key_stays_used_until_it_expires() {
        let store = SingleUse::new(2);
        store.insert([1; 32], "code", 100, 0).unwrap();
        assert_eq!(store.get(&[1; 32], 50), Some("code"));
        assert_eq!(store.take(&[1; 32], 100), Some("code"));
        assert_eq!(store.take(&[1; 32], 100), None, "take is single use");
        assert_eq!(store.get(&[1; 32], 100), None);
        assert_eq!(
            store.insert([1; 32], "again", 200, 100),
            Err(ReplayError::Replayed),
            "a taken key is not reusable before it expires"
        );
        assert_eq!(store.take(&[2; 32], 0), None, "never stored");
    }

    #[test]
    fn a_single_use_store_refuses_rather_than_forgets() {
        let store = SingleUse::new(2);
        store.insert([1; 32], 1, 60, 0).unwrap();
        store.insert([2; 32], 2, 60, 0).unwrap();
        assert_eq!(store.insert([3; 32], 3, 60, 0), Err(ReplayError::Full));
        // Once entries expire they make room, and are not returned.
        assert_eq!(store.take(&[1; 32], 61), None, "expired entries are gone");
        store.insert([3; 32], 3, 121, 61).unwrap();
        assert_eq!(store.take(&[3; 32], 61), Some(3));
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn single_use_debug_shows_no_value() {
        let store = SingleUse::new(1);
        store.insert([1; 32], "secret-code", 60, 0).unwrap();
        let shown = format!("{store:?}");
        assert!(!shown.contains("secret-code"), "{shown}");
    }
}
