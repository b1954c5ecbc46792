//! The memory backend's client inventory: a field map per client, ordered
//! by last seen, bounded (the least recently seen is evicted), with a
//! [`HyperLogLog`] of users beside each entry. The same semantics as the
//! Redis backend's hash, sorted set and `PFADD` keys, in one process.

use std::collections::{BTreeSet, HashMap};

use super::hll::HyperLogLog;
use super::{ClientFields, ClientWrite, FIRST_SEEN, LAST_SEEN, Recorded};

#[derive(Debug, Default)]
pub(super) struct Clients {
    by_id: HashMap<String, Entry>,
    /// (last seen ms, sequence, client_id): the order of eviction; the
    /// sequence keeps two sightings in the same millisecond apart.
    by_seen: BTreeSet<(u64, u64, String)>,
    sequence: u64,
}

#[derive(Debug)]
struct Entry {
    fields: ClientFields,
    seen: (u64, u64),
    users: Option<HyperLogLog>,
}

impl Clients {
    /// Applies one write, evicting the least recently seen entries beyond
    /// `write.max_entries`.
    pub(super) fn record(&mut self, write: &ClientWrite<'_>) -> Recorded {
        if !write.sighting {
            if let Some(entry) = self.by_id.get_mut(write.client_id) {
                apply_fields(&mut entry.fields, write);
            }
            return self.recorded(0);
        }
        self.sequence += 1;
        let seen = (write.now_ms, self.sequence);
        let entry = self
            .by_id
            .entry(write.client_id.to_owned())
            .or_insert_with(|| Entry {
                fields: ClientFields::new(),
                seen,
                users: None,
            });
        self.by_seen
            .remove(&(entry.seen.0, entry.seen.1, write.client_id.to_owned()));
        entry.seen = seen;
        self.by_seen
            .insert((seen.0, seen.1, write.client_id.to_owned()));
        let now = write.now_ms.to_string();
        entry
            .fields
            .entry(FIRST_SEEN.to_owned())
            .or_insert_with(|| now.clone());
        entry.fields.insert(LAST_SEEN.to_owned(), now);
        apply_fields(&mut entry.fields, write);
        let mut evicted = 0;
        while self.by_id.len() > write.max_entries.max(1) {
            let Some((_, _, oldest)) = self.by_seen.pop_first() else {
                break;
            };
            self.by_id.remove(&oldest);
            evicted += 1;
        }
        self.recorded(evicted)
    }

    fn recorded(&self, evicted: u64) -> Recorded {
        Recorded {
            evicted,
            entries: self.by_id.len() as u64,
        }
    }

    pub(super) fn get(&self, client_id: &str) -> Option<ClientFields> {
        self.by_id.get(client_id).map(|entry| entry.fields.clone())
    }

    /// At most `limit` entries after the first `offset`, the most recently
    /// seen first.
    pub(super) fn list(&self, offset: usize, limit: usize) -> Vec<ClientFields> {
        self.by_seen
            .iter()
            .rev()
            .skip(offset)
            .take(limit)
            .filter_map(|(_, _, id)| self.get(id))
            .collect()
    }

    pub(super) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Adds a user (a uniform digest) to a client already in the
    /// inventory; a client not in it (evicted, or never recorded) has no
    /// users to count, as with Redis where eviction deletes the sketch.
    pub(super) fn add_user(&mut self, client_id: &str, user: u64) {
        if let Some(entry) = self.by_id.get_mut(client_id) {
            entry.users.get_or_insert_with(HyperLogLog::new).add(user);
        }
    }

    pub(super) fn count_users(&self, client_id: &str) -> u64 {
        self.by_id
            .get(client_id)
            .and_then(|entry| entry.users.as_ref())
            .map_or(0, HyperLogLog::count)
    }
}

/// Sets and increments a write's fields, as `HSET` and `HINCRBY` do.
fn apply_fields(fields: &mut ClientFields, write: &ClientWrite<'_>) {
    for (name, value) in &write.set {
        // Most writes change fields the entry already has: no new key then.
        match fields.get_mut(*name) {
            Some(held) => value.clone_into(held),
            None => {
                fields.insert((*name).to_owned(), value.clone());
            }
        }
    }
    for (name, by) in &write.increment {
        let field = fields.entry(name.clone()).or_default();
        let current: i64 = field.parse().unwrap_or(0);
        *field = current.saturating_add(*by).to_string();
    }
}
