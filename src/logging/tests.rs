use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, PoisonError, mpsc};
use std::time::Duration;

use prometheus::IntCounter;
use tracing::Dispatch;
use tracing_subscriber::EnvFilter;

use super::{Kind, LogFormat, Logging, start};

/// Long enough for a loaded machine; the tests only wait this long when
/// something is wrong.
const PATIENCE: Duration = Duration::from_secs(20);

/// A sink the test opens and closes: while closed, a write waits, as on a
/// pipe nobody reads.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<GateState>, Condvar)>);

#[derive(Default)]
struct GateState {
    open: bool,
    broken: bool,
    written: Vec<u8>,
    writes: usize,
}

impl Gate {
    fn open() -> Gate {
        let gate = Gate::default();
        gate.set_open(true);
        gate
    }

    fn set_open(&self, open: bool) {
        let (state, changed) = &*self.0;
        state.lock().unwrap_or_else(PoisonError::into_inner).open = open;
        changed.notify_all();
    }

    fn break_it(&self) {
        let (state, changed) = &*self.0;
        state.lock().unwrap_or_else(PoisonError::into_inner).broken = true;
        changed.notify_all();
    }

    fn writes(&self) -> usize {
        self.0
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .writes
    }

    fn lines(&self) -> Vec<String> {
        let (state, _) = &*self.0;
        let state = state.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&state.written)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Write for Gate {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (state, changed) = &*self.0;
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        while !state.open && !state.broken {
            state = changed.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        if state.broken {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        state.written.extend_from_slice(buf);
        state.writes += 1;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct Logger {
    logging: Logging,
    dispatch: Dispatch,
    sink: Gate,
    audit_dropped: IntCounter,
    other_dropped: IntCounter,
}

impl Logger {
    fn new(format: LogFormat, sink: Gate, capacity_bytes: usize) -> Logger {
        let counter = |name| IntCounter::new(name, "test").expect("a valid counter");
        let (audit_dropped, other_dropped) = (counter("audit"), counter("other"));
        let (logging, dispatch) = start(
            format,
            EnvFilter::new("info"),
            false,
            Box::new(sink.clone()),
            capacity_bytes,
            [audit_dropped.clone(), other_dropped.clone()],
        )
        .expect("the writer thread starts");
        Logger {
            logging,
            dispatch,
            sink,
            audit_dropped,
            other_dropped,
        }
    }

    /// Logs `audit` audit lines then `other` other lines on a thread of its
    /// own, and fails the test if that thread is still waiting after
    /// [`PATIENCE`]: logging must never wait on the sink.
    fn log_without_waiting(&self, audit: usize, other: usize) {
        let dispatch = self.dispatch.clone();
        let (done, finished) = mpsc::channel();
        std::thread::spawn(move || {
            tracing::dispatcher::with_default(&dispatch, || {
                for n in 0..audit {
                    tracing::info!(target: "audit", event = "authorize", n, "audit line");
                }
                for n in 0..other {
                    tracing::info!(n, "other line");
                }
            });
            let _ = done.send(());
        });
        finished
            .recv_timeout(PATIENCE)
            .expect("logging returned without waiting for the blocked sink");
    }

    fn dropped(&self) -> (u64, u64) {
        (self.audit_dropped.get(), self.other_dropped.get())
    }
}

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}"))
}

fn message(line: &str) -> String {
    json(line)["fields"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn lines_reach_the_sink_in_order_with_nothing_dropped() {
    let logger = Logger::new(LogFormat::Json, Gate::open(), 1 << 20);
    logger.log_without_waiting(3, 2);
    assert!(logger.logging.flush(PATIENCE));
    let lines = logger.sink.lines();
    let messages: Vec<String> = lines.iter().map(|line| message(line)).collect();
    assert_eq!(
        messages,
        [
            "audit line",
            "audit line",
            "audit line",
            "other line",
            "other line"
        ]
    );
    assert_eq!(json(&lines[0])["target"], "audit");
    assert_eq!(json(&lines[0])["fields"]["event"], "authorize");
    assert_eq!(logger.dropped(), (0, 0));
}

#[test]
fn lines_waiting_together_reach_the_sink_in_few_writes() {
    // While the sink is held, lines pile up in the queue; once it is
    // released they go out in batches, not one write(2) each.
    let logger = Logger::new(LogFormat::Json, Gate::default(), 1 << 20);
    logger.log_without_waiting(1_000, 0);
    logger.sink.set_open(true);
    assert!(logger.logging.flush(PATIENCE));
    let lines = logger.sink.lines();
    assert_eq!(lines.len(), 1_000);
    assert!(lines.iter().all(|line| message(line) == "audit line"));
    let writes = logger.sink.writes();
    assert!(writes <= 10, "{writes} writes for 1000 lines");
    assert_eq!(logger.dropped(), (0, 0));
}

#[test]
fn a_blocked_sink_drops_lines_beyond_the_bound_and_counts_them_by_kind() {
    // Room for a handful of lines of about 150 bytes.
    let logger = Logger::new(LogFormat::Json, Gate::default(), 2_000);
    logger.log_without_waiting(500, 300);
    let (audit, other) = logger.dropped();
    // The queue filled during the audit lines: every other line was lost.
    assert_eq!(other, 300);
    assert!((480..500).contains(&audit), "{audit} audit lines dropped");
    assert!(logger.logging.writer.as_ref().is_some_and(|queue| {
        queue
            .queued_bytes
            .load(std::sync::atomic::Ordering::Acquire)
            <= 2_000
    }));

    logger.sink.set_open(true);
    assert!(logger.logging.flush(PATIENCE));
    let lines = logger.sink.lines();
    // Every line is either in the sink or counted, none both.
    let written = lines
        .iter()
        .filter(|line| message(line) == "audit line")
        .count();
    assert_eq!(written as u64 + audit, 500);
}

#[test]
fn the_summary_follows_lines_queued_while_the_writer_waited_on_the_sink() {
    // The bug: the writer, caught up, wrote its last lines and, once the
    // sink took them, told the gap at once, ahead of the lines queued while
    // it waited, so those lines read as if they came after the gap.
    let logger = Logger::new(LogFormat::Json, Gate::default(), 4_000);
    logger.log_without_waiting(1, 0);
    // Long enough for the writer to find the line and block writing it.
    std::thread::sleep(Duration::from_millis(200));
    logger.log_without_waiting(200, 0);
    let (audit, _) = logger.dropped();
    assert!(audit > 0);

    logger.sink.set_open(true);
    assert!(logger.logging.flush(PATIENCE));
    let lines = logger.sink.lines();
    let summary = lines
        .iter()
        .position(|line| message(line).contains("dropped"))
        .expect("a summary line");
    let before = lines[..summary]
        .iter()
        .filter(|line| message(line) == "audit line")
        .count();
    assert_eq!(before as u64 + audit, 201, "{lines:#?}");
    assert_eq!(lines.len(), summary + 1, "nothing after the summary");
}

#[test]
fn the_summary_line_comes_once_when_the_sink_drains_and_logging_resumes() {
    let logger = Logger::new(LogFormat::Json, Gate::default(), 2_000);
    logger.log_without_waiting(200, 100);
    let (audit, other) = logger.dropped();
    assert!(audit > 0 && other > 0);

    logger.sink.set_open(true);
    assert!(logger.logging.flush(PATIENCE));
    logger.log_without_waiting(1, 1);
    assert!(logger.logging.flush(PATIENCE));

    let lines = logger.sink.lines();
    let summaries: Vec<usize> = (0..lines.len())
        .filter(|&i| message(&lines[i]).contains("dropped"))
        .collect();
    assert_eq!(summaries.len(), 1, "{lines:#?}");
    let summary = json(&lines[summaries[0]]);
    assert_eq!(
        summary["fields"]["message"],
        format!(
            "{} log lines dropped while the log output was blocked",
            audit + other
        )
    );
    assert_eq!(summary["level"], "WARN");
    assert_eq!(summary["fields"]["dropped_audit"], audit);
    assert_eq!(summary["fields"]["dropped_other"], other);
    // After every line that was queued, before the ones logged later.
    let after: Vec<String> = lines[summaries[0] + 1..]
        .iter()
        .map(|line| message(line))
        .collect();
    assert_eq!(after, ["audit line", "other line"]);
    assert!(
        lines[..summaries[0]]
            .iter()
            .all(|line| message(line) == "audit line")
    );
}

#[test]
fn the_summary_line_has_the_log_format() {
    let logger = Logger::new(LogFormat::Text, Gate::default(), 500);
    logger.log_without_waiting(0, 50);
    logger.sink.set_open(true);
    assert!(logger.logging.flush(PATIENCE));
    let lines = logger.sink.lines();
    let summary = lines
        .iter()
        .find(|line| line.contains("log lines dropped while the log output was blocked"))
        .unwrap_or_else(|| panic!("no summary in {lines:#?}"));
    assert!(!summary.starts_with('{'), "{summary}");
    assert!(summary.contains("WARN"), "{summary}");
    assert!(summary.contains("dropped_other="), "{summary}");
}

#[test]
fn flush_gives_up_at_its_deadline_while_the_sink_stays_blocked() {
    let logger = Logger::new(LogFormat::Json, Gate::default(), 1 << 20);
    logger.log_without_waiting(0, 1);
    assert!(!logger.logging.flush(Duration::from_millis(100)));
    logger.sink.set_open(true);
    assert!(logger.logging.flush(PATIENCE));
    assert_eq!(logger.sink.lines().len(), 1);
}

#[test]
fn lines_a_failing_sink_refuses_are_counted_as_dropped() {
    let logger = Logger::new(LogFormat::Json, Gate::default(), 1 << 20);
    logger.sink.break_it();
    logger.log_without_waiting(2, 3);
    assert!(logger.logging.flush(PATIENCE));
    assert_eq!(logger.dropped(), (2, 3));
}

#[test]
fn kind_labels_and_counter_places_are_pinned() {
    // Metric labels: the strings are a contract.
    assert_eq!(Kind::Audit.as_str(), "audit");
    assert_eq!(Kind::Other.as_str(), "other");
    assert_eq!(Kind::ALL.map(Kind::index), [0, 1]);
}
