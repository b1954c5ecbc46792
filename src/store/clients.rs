//! The memory backend's client inventory: a field map per client, ordered
//! by last seen, bounded (the least recently seen is evicted), with a
//! [`HyperLogLog`] of users beside each entry. The same semantics as the
//! Redis backend's hash, sorted set and `PFADD` keys, in one process.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::hll::HyperLogLog;
use super::{ClientFields, ClientWrite, FIRST_SEEN, LAST_SEEN, Recorded};

#[derive(Debug, Default)]
pub(super) struct Clients {
    by_id: HashMap<Arc<str>, Entry>,
    /// (last seen ms, sequence) to client_id: the order of eviction; the
    /// sequence keeps two sightings in the same millisecond apart.
    by_seen: BTreeMap<(u64, u64), Arc<str>>,
    sequence: u64,
}

#[derive(Debug)]
struct Entry {
    fields: Packed,
    seen: (u64, u64),
    users: Option<HyperLogLog>,
}

/// A client's fields in one allocation (postcard's encoding of the map).
/// An entry holds some twenty short fields: as a map of strings that is
/// about forty allocations and the tree's nodes, some 3 KiB per client,
/// where the packed form is a few hundred bytes. Entries are written at
/// most once per batch interval and read only by the admin API, so the
/// unpacking stays off the request path.
#[derive(Debug, Default)]
struct Packed(Box<[u8]>);

impl Packed {
    fn new(fields: &ClientFields) -> Packed {
        // Encoding a map of strings into a vector cannot fail.
        Packed(
            postcard::to_allocvec(fields)
                .unwrap_or_default()
                .into_boxed_slice(),
        )
    }

    fn fields(&self) -> ClientFields {
        postcard::from_bytes(&self.0).unwrap_or_default()
    }
}

impl Clients {
    /// Applies one write, evicting the least recently seen entries beyond
    /// `write.max_entries`.
    pub(super) fn record(&mut self, write: &ClientWrite<'_>) -> Recorded {
        if !write.sighting {
            if let Some(entry) = self.by_id.get_mut(write.client_id) {
                let mut fields = entry.fields.fields();
                apply_fields(&mut fields, write);
                entry.fields = Packed::new(&fields);
            }
            return self.recorded(0);
        }
        self.sequence += 1;
        let seen = (write.now_ms, self.sequence);
        // The key is shared with the eviction order: one copy of the id.
        let id = match self.by_id.get_key_value(write.client_id) {
            Some((id, _)) => Arc::clone(id),
            None => Arc::from(write.client_id),
        };
        let entry = self.by_id.entry(Arc::clone(&id)).or_insert(Entry {
            fields: Packed::default(),
            seen,
            users: None,
        });
        self.by_seen.remove(&entry.seen);
        entry.seen = seen;
        self.by_seen.insert(seen, id);
        let mut fields = entry.fields.fields();
        let now = write.now_ms.to_string();
        fields
            .entry(FIRST_SEEN.to_owned())
            .or_insert_with(|| now.clone());
        fields.insert(LAST_SEEN.to_owned(), now);
        apply_fields(&mut fields, write);
        entry.fields = Packed::new(&fields);
        let mut evicted = 0;
        while self.by_id.len() > write.max_entries.max(1) {
            let Some((_, oldest)) = self.by_seen.pop_first() else {
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
        self.by_id.get(client_id).map(|entry| entry.fields.fields())
    }

    /// At most `limit` entries after the first `offset`, the most recently
    /// seen first.
    pub(super) fn list(&self, offset: usize, limit: usize) -> Vec<ClientFields> {
        self.by_seen
            .values()
            .rev()
            .skip(offset)
            .take(limit)
            .filter_map(|id| self.get(id))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_fields_come_back_exactly_as_they_went_in() {
        let fields: ClientFields = [
            ("client_id", "https://app.example/client.json"),
            ("client_name", "Ünïcode \u{0} and \"quotes\""),
            ("refused.blocked_address", "3"),
            ("empty", ""),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
        assert_eq!(Packed::new(&fields).fields(), fields);
        assert_eq!(Packed::default().fields(), ClientFields::new());
    }

    #[test]
    fn a_sighting_moves_the_client_to_the_newest_and_keeps_one_entry() {
        let mut clients = Clients::default();
        let write = |client_id, now_ms| ClientWrite {
            client_id,
            now_ms,
            max_entries: 2,
            sighting: true,
            set: Vec::new(),
            increment: Vec::new(),
        };
        clients.record(&write("a", 1));
        clients.record(&write("b", 2));
        clients.record(&write("a", 3));
        let recorded = clients.record(&write("c", 4));
        assert_eq!(recorded.evicted, 1, "b, seen least recently, is evicted");
        let order: Vec<_> = clients
            .list(0, 10)
            .into_iter()
            .map(|fields| fields[LAST_SEEN].clone())
            .collect();
        assert_eq!(order, ["4", "3"]);
        assert_eq!(clients.get("a").unwrap()[FIRST_SEEN], "1");
        assert!(clients.get("b").is_none());
    }
}
