//! The JSON line of an audit event, written straight out.
//!
//! Every sign-in writes an audit line, so its formatting is on the request
//! path. tracing-subscriber's JSON format gathers the fields through a
//! serde map, formats the timestamp into a string of its own, and parses
//! the request span's fields back from their JSON text for every line. This
//! writes the same line (the same members, in the same order, with the
//! same escaping: the log's contract) directly into the line's buffer.
//! Every other event, including those forwarded from the `log` crate whose
//! metadata the stock format normalises, goes to the stock format.

use std::fmt;
use std::io;

use serde::Serializer as _;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Json, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The target whose events take the direct path.
const AUDIT: &str = "audit";

/// JSON lines with the current span and without the span list: audit
/// events written directly, anything else by `stock`.
pub(super) struct JsonLines {
    stock: Format<Json, SystemTime>,
}

impl JsonLines {
    pub(super) fn new() -> Self {
        JsonLines {
            stock: Format::default()
                .json()
                .with_current_span(true)
                .with_span_list(false),
        }
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        if meta.target() != AUDIT {
            return self.stock.format_event(ctx, writer, event);
        }
        writer.write_str("{\"timestamp\":\"")?;
        SystemTime.format_time(&mut writer)?;
        write!(writer, "\",\"level\":\"{}\",\"fields\":{{", meta.level())?;
        let mut fields = Fields {
            out: &mut writer,
            first: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_str("},\"target\":")?;
        string(&mut writer, meta.target())?;
        let span = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current());
        if let Some(span) = span {
            writer.write_str(",\"span\":{")?;
            let extensions = span.extensions();
            // The span's fields as the field formatter (JSON) wrote them
            // when the span opened: an object, whose members go in as they
            // are. (The stock format re-parses them, which orders several
            // members by name; the request span has one.)
            let members = extensions
                .get::<FormattedFields<N>>()
                .map(|formatted| formatted.fields.trim())
                .and_then(|text| text.strip_prefix('{')?.strip_suffix('}'))
                .map(str::trim)
                .unwrap_or_default();
            if !members.is_empty() {
                writer.write_str(members)?;
                writer.write_char(',')?;
            }
            writer.write_str("\"name\":")?;
            string(&mut writer, span.name())?;
            writer.write_char('}')?;
        }
        writer.write_str("}\n")
    }
}

/// Writes an event's fields as JSON members, as tracing-serde does: text
/// and `Debug`/`Display` values as strings, numbers and booleans as such.
struct Fields<'w, 'a> {
    out: &'w mut Writer<'a>,
    first: bool,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn member(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        let separator = if self.first { "" } else { "," };
        self.first = false;
        self.result = self
            .out
            .write_str(separator)
            .and_then(|()| string(self.out, field.name()))
            .and_then(|()| self.out.write_char(':'))
            .and_then(|()| value(self.out));
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |out| string(out, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, |out| display(out, &format_args!("{value:?}")));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.member(field, |out| display(out, &format_args!("{value}")));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |out| write!(out, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |out| write!(out, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |out| write!(out, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.member(field, |out| json(out, &value));
    }
}

/// `text` as a JSON string.
fn string(out: &mut Writer<'_>, text: &str) -> fmt::Result {
    json(out, text)
}

/// `value` as serde_json writes it.
fn json<T: serde::Serialize + ?Sized>(out: &mut Writer<'_>, value: &T) -> fmt::Result {
    serde_json::to_writer(Utf8(out), value).map_err(|_| fmt::Error)
}

/// `value`'s `Display` text as a JSON string, escaped as it is formatted.
fn display(out: &mut Writer<'_>, value: &dyn fmt::Display) -> fmt::Result {
    serde_json::Serializer::new(Utf8(out))
        .collect_str(value)
        .map_err(|_| fmt::Error)
}

/// serde_json's output into a text writer. serde_json writes whole UTF-8
/// sequences (it only splits text at the ASCII characters it escapes).
struct Utf8<'w, 'a>(&'w mut Writer<'a>);

impl io::Write for Utf8<'_, '_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let text = std::str::from_utf8(bytes).map_err(io::Error::other)?;
        self.0.write_str(text).map_err(io::Error::other)?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex, PoisonError};

    use tracing_subscriber::fmt::format::JsonFields;

    use super::*;

    /// Lines written to memory.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let mut lines = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            lines.extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Lines {
        /// Each line without its timestamp (the one member that differs
        /// between two runs).
        fn untimed(&self) -> Vec<String> {
            let lines = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            String::from_utf8_lossy(&lines)
                .split_inclusive('\n')
                .map(|line| {
                    let level = line.find("\"level\"").expect("every line has a level");
                    assert!(line.starts_with("{\"timestamp\":\""), "{line}");
                    format!("{{{}", &line[level..])
                })
                .collect()
        }
    }

    fn events() {
        let error = io::Error::other("the \"sink\" is gone");
        let span = tracing::info_span!("request", id = "abc-1_2");
        let _entered = span.enter();
        tracing::info!(
            target: "audit",
            event = "authorize",
            client_id = %"https://app.example/c.json?q=\"x\"\n\t\u{1}",
            upstream_client = "ünïcode ✓",
            count = 3_u64,
            delta = -2_i64,
            ok = true,
            ratio = 1.5_f64,
            missing = f64::NAN,
            debugged = ?["a", "b\\c"],
            error = &error as &(dyn std::error::Error + 'static),
            "a message with \"quotes\""
        );
        tracing::warn!(target: "audit", event = "metadata_change", action = "refuse");
        tracing::info!(target: "cimd_proxy", reason = "not an audit line", "other");
        drop(_entered);
        tracing::info!(target: "audit", event = "outside_any_span");
    }

    #[test]
    fn an_audit_line_is_byte_for_byte_the_stock_json_line() {
        let stock = Lines::default();
        let writer = stock.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, events);

        let direct = Lines::default();
        let writer = direct.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines::new())
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, events);

        let (stock, direct) = (stock.untimed(), direct.untimed());
        assert_eq!(stock.len(), 4, "{stock:#?}");
        assert_eq!(direct, stock);
        assert!(direct[0].contains(r#""span":{"id":"abc-1_2","name":"request"}"#));
        assert!(!direct[3].contains("\"span\""), "{}", direct[3]);
    }
}
