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
        let found = describe(&value);
        let is_array = value.is_array() || value.is_table();
        match value.try_into::<T>() {
            Ok(parsed) => Some(parsed),
            Err(error) => {
                let message = match expected::<T>() {
                    // In an array or table, the element serde stopped at (`70000`).
                    Some(expected) if is_array => match quoted(error.message()) {
                        Some(element) => format!("expected {expected}, found {element}"),
                        None => format!("expected {expected}"),
                    },
                    Some(expected) => format!("expected {expected}, found {found}"),
                    // A type this table does not know: serde's own words,
                    // minus the Rust type name it ends with.
                    None => match error.message().split_once(", expected") {
                        Some((head, _)) => head.to_owned(),
                        None => error.message().to_owned(),
                    },
                };
                problems.push(Problem::new(&self.key_path(key), message));
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

/// What a key of type `T` takes, in an operator's words rather than a Rust
/// type name (serde says `expected u16`).
fn expected<T>() -> Option<&'static str> {
    Some(match std::any::type_name::<T>() {
        "u8" => "a whole number from 0 to 255",
        "u16" => "a whole number from 0 to 65535",
        "u32" => "a whole number from 0 to 4294967295",
        "u64" | "usize" => "a whole number, 0 or more",
        "i64" => "a whole number",
        "bool" => "true or false",
        "alloc::string::String" => "a string",
        "alloc::vec::Vec<alloc::string::String>" => "an array of strings",
        "alloc::vec::Vec<u16>" => "an array of whole numbers from 0 to 65535",
        "alloc::vec::Vec<u64>" => "an array of whole numbers, 0 or more",
        "alloc::collections::btree::map::BTreeMap<alloc::string::String, alloc::string::String>" => {
            "a table of strings"
        }
        _ => return None,
    })
}

/// The value serde's message quotes between backticks (integer `70000`).
fn quoted(message: &str) -> Option<&str> {
    let (_, rest) = message.split_once('`')?;
    rest.split_once('`').map(|(value, _)| value)
}

/// A TOML value as the operator wrote it, for "found …".
fn describe(value: &toml::Value) -> String {
    match value {
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Float(n) => n.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::String(_) => "a string".to_owned(),
        other => format!("{} {}", article(other.type_str()), other.type_str()),
    }
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem<T: DeserializeOwned>(toml_text: &str) -> String {
        let table: toml::Table = toml_text.parse().unwrap();
        let mut section = Section::root(&table);
        let mut problems = Vec::new();
        assert!(section.get::<T>("key", &mut problems).is_none());
        assert_eq!(problems.len(), 1, "{problems:?}");
        problems[0].to_string()
    }

    /// Regression: type errors read `invalid type: string "x", expected u64`.
    #[test]
    fn type_problems_name_no_rust_type() {
        for (message, bad) in [
            (problem::<u64>("key = \"ten\""), "u64"),
            (problem::<u64>("key = -1"), "u64"),
            (problem::<u16>("key = 70000"), "u16"),
            (problem::<bool>("key = 1"), "bool"),
            (problem::<String>("key = [1]"), "String"),
            (problem::<Vec<String>>("key = [1]"), "Vec"),
            (problem::<Vec<u16>>("key = [443, 70000]"), "u16"),
            (
                problem::<std::collections::BTreeMap<String, String>>("key = { a = 1 }"),
                "BTreeMap",
            ),
        ] {
            assert!(!message.contains(bad), "{message}");
            assert!(message.starts_with("key: expected "), "{message}");
        }
        assert_eq!(
            problem::<u16>("key = 70000"),
            "key: expected a whole number from 0 to 65535, found 70000"
        );
        assert_eq!(
            problem::<Vec<u16>>("key = [443, 70000]"),
            "key: expected an array of whole numbers from 0 to 65535, found 70000"
        );
        assert_eq!(
            problem::<u64>("key = \"ten\""),
            "key: expected a whole number, 0 or more, found a string"
        );
    }
}
