//! The first configuration stage: raw TOML values read key by key.
//!
//! Reading each key on its own (rather than deserializing a whole section
//! with serde) is what lets [`super::Config::load`] report every problem in
//! the file at once, each named by its full key path, instead of stopping at
//! the first type error.

use std::collections::BTreeSet;

use serde::de::DeserializeOwned;

use super::Problem;

/// One TOML table being read, remembering which keys were consumed so that
/// the rest can be reported as unknown.
pub(super) struct Section<'a> {
    path: String,
    table: Option<&'a toml::Table>,
    used: BTreeSet<&'a str>,
}

impl<'a> Section<'a> {
    /// The top-level table itself.
    pub(super) fn root(table: &'a toml::Table) -> Self {
        Section {
            path: String::new(),
            table: Some(table),
            used: BTreeSet::new(),
        }
    }

    /// A sub-table; a missing one reads as empty, a non-table is a problem.
    pub(super) fn table(&mut self, key: &'a str, problems: &mut Vec<Problem>) -> Section<'a> {
        let path = self.key_path(key);
        let table = match self.raw(key) {
            None => None,
            Some(toml::Value::Table(table)) => Some(table),
            Some(other) => {
                problems.push(Problem::new(
                    &path,
                    format!("expected a table, found {}", other.type_str()),
                ));
                None
            }
        };
        Section {
            path,
            table,
            used: BTreeSet::new(),
        }
    }

    /// Reads the sub-table `key` with `read`, then reports its unknown keys.
    pub(super) fn read<T>(
        &mut self,
        key: &'a str,
        problems: &mut Vec<Problem>,
        read: impl FnOnce(&mut Section<'a>, &mut Vec<Problem>) -> T,
    ) -> T {
        let mut section = self.table(key, problems);
        let value = read(&mut section, problems);
        section.finish(problems);
        value
    }

    /// An array of tables (`[[section]]`); each element becomes a section.
    pub(super) fn array_of_tables(
        &mut self,
        key: &'a str,
        problems: &mut Vec<Problem>,
    ) -> Vec<Section<'a>> {
        let path = self.key_path(key);
        match self.raw(key) {
            None => Vec::new(),
            Some(toml::Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(index, item)| {
                    let item_path = format!("{path}[{index}]");
                    match item {
                        toml::Value::Table(table) => Some(Section {
                            path: item_path,
                            table: Some(table),
                            used: BTreeSet::new(),
                        }),
                        other => {
                            problems.push(Problem::new(
                                &item_path,
                                format!("expected a table, found {}", other.type_str()),
                            ));
                            None
                        }
                    }
                })
                .collect(),
            Some(other) => {
                problems.push(Problem::new(
                    &path,
                    format!("expected an array of tables, found {}", other.type_str()),
                ));
                Vec::new()
            }
        }
    }

    /// Every entry of a table whose keys are operator-chosen names
    /// (`[upstream.clients.NAME]`), as named sections.
    pub(super) fn named_tables(
        &mut self,
        key: &'a str,
        problems: &mut Vec<Problem>,
    ) -> Vec<(&'a str, Section<'a>)> {
        let mut outer = self.table(key, problems);
        let Some(table) = outer.table else {
            return Vec::new();
        };
        table
            .keys()
            .map(|name| (name.as_str(), outer.table(name.as_str(), problems)))
            .collect()
    }

    /// A typed value, or `None` when absent; a value of the wrong type is
    /// recorded as a problem and also reads as `None`.
    pub(super) fn get<T: DeserializeOwned>(
        &mut self,
        key: &'a str,
        problems: &mut Vec<Problem>,
    ) -> Option<T> {
        let value = self.raw(key)?.clone();
        match value.try_into::<T>() {
            Ok(parsed) => Some(parsed),
            Err(error) => {
                problems.push(Problem::new(&self.key_path(key), error.message()));
                None
            }
        }
    }

    /// An integer within `min..=max`; one outside is a problem naming the bounds.
    pub(super) fn get_between(
        &mut self,
        key: &'a str,
        min: u64,
        max: u64,
        problems: &mut Vec<Problem>,
    ) -> Option<u64> {
        let value = self.get::<u64>(key, problems)?;
        if (min..=max).contains(&value) {
            Some(value)
        } else {
            problems.push(Problem::new(
                &self.key_path(key),
                format!("must be between {min} and {max}, found {value}"),
            ));
            None
        }
    }

    /// Like [`Section::get`], but an absent key is a problem too.
    pub(super) fn require<T: DeserializeOwned>(
        &mut self,
        key: &'a str,
        problems: &mut Vec<Problem>,
    ) -> Option<T> {
        if self.table.is_some_and(|table| table.contains_key(key)) {
            self.get(key, problems)
        } else {
            self.used.insert(key);
            problems.push(Problem::new(&self.key_path(key), "required".to_owned()));
            None
        }
    }

    /// Whether `key` is in this section (without reading it).
    pub(super) fn has(&self, key: &str) -> bool {
        self.table.is_some_and(|table| table.contains_key(key))
    }

    /// Whether the section exists in the file at all.
    pub(super) fn is_present(&self) -> bool {
        self.table.is_some()
    }

    /// The full dotted path of a key in this section, for messages.
    pub(super) fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Reports every key that nobody asked for: a misspelt key must not be
    /// silently ignored, or an operator's `deny_cidr = [...]` would do nothing.
    pub(super) fn finish(self, problems: &mut Vec<Problem>) {
        let Some(table) = self.table else { return };
        for key in table.keys() {
            if !self.used.contains(key.as_str()) {
                problems.push(Problem::new(&self.key_path(key), "unknown key".to_owned()));
            }
        }
    }

    fn raw(&mut self, key: &'a str) -> Option<&'a toml::Value> {
        self.used.insert(key);
        self.table?.get(key)
    }
}
