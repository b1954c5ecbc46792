//! Where log and audit lines go, and why a reader that stops reading them
//! never stops the proxy.
//!
//! A server's lines are formatted on the thread that logs them and handed
//! to a bounded in-memory queue; one writer thread owns standard error and
//! drains it, writing the lines it finds waiting together (one `write(2)`
//! for up to 64 KiB of lines under load, rather than one per line). When the sink blocks (a full pipe, a container runtime's log
//! pipeline backing up, a paused `kubectl logs`), the queue fills and
//! further lines are dropped rather than waited for: a request never waits
//! on the log sink, and neither does a health probe. Dropped lines are
//! counted by kind (`audit` or `other`) in
//! `cimd_proxy_log_lines_dropped_total`, and once the writer has caught up
//! one line in the same format says how many were lost, so the audit
//! trail's gap is visible in the log itself.
//!
//! Why not `tracing-appender`'s non-blocking writer: it counts dropped lines
//! as one total (the kind is gone once a line is bytes), and nothing tells
//! its worker's caller when the sink has caught up, which is when the
//! summary line belongs.
//!
//! One-shot commands (`check`, `config check`, …) write straight to
//! standard error, so their few lines keep their order with what the
//! command prints itself.

use std::cell::RefCell;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use prometheus::IntCounter;
use tracing::{Dispatch, Metadata};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::JsonFields;
use tracing_subscriber::util::SubscriberInitExt as _;

use json_line::JsonLines;

mod json_line;

/// How many bytes of formatted lines may wait for the sink. At a few
/// hundred bytes a line that is thousands of lines: it absorbs a reader's
/// pause of a second or more at full load, and minutes at a sidecar's usual
/// rate, in at most 1 MiB.
pub const QUEUE_BYTES: usize = 1 << 20;

/// How long lines still queued at exit get to reach the sink. It comes on
/// top of the server's 20 s drain of requests in flight, and both fit in
/// the pod's termination grace period (`deploy/base/deployment.yaml`).
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the writer sleeps once it has caught up before it looks at the
/// queue again: the most a line waits before it is written, when nothing
/// else wakes the writer.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// How many bytes of lines the writer gathers before it writes them: one
/// `write(2)` for many lines while lines keep coming. Gathered lines still
/// count against [`QUEUE_BYTES`] until written, so the bound holds.
const BATCH_BYTES: usize = 64 * 1024;

/// Where the summary of dropped lines is logged from (a filter can name it).
const SUMMARY_TARGET: &str = "cimd_proxy::logging";

/// How the lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, with the request span's fields.
    Json,
    /// Readable text.
    Text,
}

/// How lines reach standard error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Through the bounded queue and its writer thread: for servers, whose
    /// requests must not wait on the sink.
    Queued,
    /// Written by the thread that logs: for one-shot commands, whose lines
    /// must stay in order with what they print themselves.
    Direct,
}

/// The kinds of line counted apart: an audit line lost is a gap in the
/// record of who signed in; any other is a lost diagnostic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
enum Kind {
    Audit,
    Other,
}

impl Kind {
    const ALL: [Kind; 2] = [Kind::Audit, Kind::Other];

    fn of(metadata: &Metadata<'_>) -> Kind {
        // Every audit line is logged with `target: "audit"`.
        if metadata.target() == "audit" {
            Kind::Audit
        } else {
            Kind::Other
        }
    }

    /// The metric label.
    fn as_str(self) -> &'static str {
        self.into()
    }

    /// Its place in the per-kind counters.
    fn index(self) -> usize {
        self as usize
    }
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// A logger is already installed in this process.
    #[error("a logger is already installed")]
    AlreadyInstalled,
    /// The writer thread could not be started.
    #[error("cannot start the log writer thread: {0}")]
    Thread(io::Error),
}

/// The process's logger. Dropping it (at the end of `main`) gives lines
/// still queued [`FLUSH_TIMEOUT`] to reach the sink, with the summary of
/// any dropped, then stops the writer.
pub struct Logging {
    format: LogFormat,
    writer: Option<Arc<Queue>>,
}

/// Installs the process's logger: lines filtered by `CIMD_PROXY_LOG`
/// (default `default_filter`), on standard error.
pub fn init(
    format: LogFormat,
    default_filter: &str,
    delivery: Delivery,
) -> Result<Logging, LoggingError> {
    let filter = EnvFilter::try_from_env("CIMD_PROXY_LOG")
        .unwrap_or_else(|_| EnvFilter::new(default_filter));
    // Colour only for a person at a terminal.
    let ansi = format == LogFormat::Text && io::IsTerminal::is_terminal(&io::stderr());
    let (logging, dispatch) = match delivery {
        Delivery::Direct => (
            Logging {
                format,
                writer: None,
            },
            subscriber(format, filter, ansi, io::stderr),
        ),
        Delivery::Queued => {
            // Built before the logger is installed: building it must not log.
            let dropped = Kind::ALL.map(|kind| {
                crate::metrics::METRICS
                    .log_lines_dropped
                    .with_label_values(&[kind.as_str()])
            });
            start(
                format,
                filter,
                ansi,
                Box::new(io::stderr()),
                QUEUE_BYTES,
                dropped,
            )?
        }
    };
    dispatch
        .try_init()
        .map_err(|_| LoggingError::AlreadyInstalled)?;
    Ok(logging)
}

impl Logging {
    /// Reports the error that ends the process. A JSON log stays JSON to
    /// its last line, so it becomes an error event there; otherwise it is
    /// the usual `cimd-proxy: …` line.
    pub fn fatal(&self, error: &dyn std::fmt::Display) {
        match self.format {
            LogFormat::Json => tracing::error!(target: "cimd_proxy", "{error}"),
            LogFormat::Text => {
                // After what was logged before it, not in the middle.
                self.flush(FLUSH_TIMEOUT);
                eprintln!("cimd-proxy: {error}");
            }
        }
    }

    /// Waits until every line queued so far has been written (and the
    /// summary of any dropped), at most `timeout`. Whether it got there.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.writer
            .as_ref()
            .is_none_or(|queue| queue.flush(timeout))
    }
}

impl Drop for Logging {
    fn drop(&mut self) {
        if let Some(queue) = &self.writer {
            // A sink still blocked after the timeout loses what is left: the
            // process is exiting and must not hang on its log reader.
            queue.flush(FLUSH_TIMEOUT);
            queue.stop();
        }
    }
}

/// The subscriber: the filter, then JSON or text lines to `writer`.
fn subscriber<W>(format: LogFormat, filter: EnvFilter, ansi: bool, writer: W) -> Dispatch
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Json => Dispatch::new(
            builder
                .fmt_fields(JsonFields::new())
                .event_format(JsonLines::new())
                .finish(),
        ),
        LogFormat::Text => Dispatch::new(builder.with_ansi(ansi).finish()),
    }
}

/// The queued logger on `sink`: its subscriber (not yet installed) and the
/// writer thread draining into the sink.
fn start(
    format: LogFormat,
    filter: EnvFilter,
    ansi: bool,
    sink: Box<dyn Write + Send>,
    capacity_bytes: usize,
    dropped: [IntCounter; 2],
) -> Result<(Logging, Dispatch), LoggingError> {
    let (sender, receiver) = mpsc::channel();
    let queue = Arc::new(Queue {
        sender,
        writer: std::sync::OnceLock::new(),
        queued_bytes: AtomicUsize::new(0),
        capacity_bytes,
        dropped,
        unreported: [AtomicU64::new(0), AtomicU64::new(0)],
    });
    let dispatch = subscriber(format, filter, ansi, QueueWriter(Arc::clone(&queue)));
    let writer = Writer {
        queue: Arc::clone(&queue),
        receiver,
        sink,
        batch: Vec::new(),
        batch_lines: [0, 0],
    };
    let thread_dispatch = dispatch.clone();
    let handle = thread::Builder::new()
        .name("log-writer".to_owned())
        .spawn(move || tracing::dispatcher::with_default(&thread_dispatch, || writer.run()))
        .map_err(LoggingError::Thread)?;
    let _ = queue.writer.set(handle.thread().clone());
    Ok((
        Logging {
            format,
            writer: Some(queue),
        },
        dispatch,
    ))
}

/// What the writer thread is asked to do, in order.
enum Message {
    /// Write one formatted line.
    Line { kind: Kind, bytes: Vec<u8> },
    /// Acknowledge once everything before this is written.
    Flush(mpsc::SyncSender<()>),
    /// Stop (after everything before this).
    Stop,
}

/// The bounded queue, shared by every thread that logs and the writer.
struct Queue {
    /// Unbounded itself: the bound is `queued_bytes`, checked before sending.
    /// The writer polls it rather than blocking in `recv`, so that queuing a
    /// line never has to wake a sleeping thread (a futex call and a context
    /// switch per line, which the benchmark's profile showed costing more
    /// than the write it replaced).
    sender: mpsc::Sender<Message>,
    /// The writer thread, woken at once for a flush or a stop.
    writer: std::sync::OnceLock<thread::Thread>,
    /// Bytes of lines sent and not yet written.
    queued_bytes: AtomicUsize,
    capacity_bytes: usize,
    /// Lines lost since start, by kind (the metric).
    dropped: [IntCounter; 2],
    /// Lines lost since the last summary line, by kind.
    unreported: [AtomicU64; 2],
}

impl Queue {
    /// Queues a line, or drops it if the queue is full. Never blocks.
    fn submit(&self, kind: Kind, bytes: Vec<u8>) {
        let len = bytes.len();
        // Counted in first, so concurrent callers can never overshoot the bound.
        if self.queued_bytes.fetch_add(len, Ordering::AcqRel) + len > self.capacity_bytes {
            self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            self.lost(kind);
            return;
        }
        if self.sender.send(Message::Line { kind, bytes }).is_err() {
            // The writer has stopped: the process is exiting.
            self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            self.lost(kind);
        }
    }

    fn lost(&self, kind: Kind) {
        self.lost_many(kind, 1);
    }

    fn lost_many(&self, kind: Kind, lines: u64) {
        if lines > 0 {
            self.dropped[kind.index()].inc_by(lines);
            self.unreported[kind.index()].fetch_add(lines, Ordering::Relaxed);
        }
    }

    fn flush(&self, timeout: Duration) -> bool {
        let (done, flushed) = mpsc::sync_channel(1);
        let sent = self.sender.send(Message::Flush(done)).is_ok();
        self.wake_writer();
        sent && flushed.recv_timeout(timeout).is_ok()
    }

    fn stop(&self) {
        let _ = self.sender.send(Message::Stop);
        self.wake_writer();
    }

    fn wake_writer(&self) {
        if let Some(writer) = self.writer.get() {
            writer.unpark();
        }
    }
}

thread_local! {
    /// Set on the writer thread while it logs the summary line: that line is
    /// taken here and written directly instead of queued behind itself.
    static CAPTURED: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };

    /// This thread's formatting buffer, kept from line to line: a line is
    /// formatted into it and leaves as one exact-size copy, where a new
    /// vector per line grew several times while the line was written.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The most capacity a thread keeps in [`SCRATCH`]: one huge line does not
/// hold its memory for the thread's life.
const SCRATCH_BYTES: usize = 16 * 1024;

/// The subscriber's writer: one [`LineWriter`] per event.
struct QueueWriter(Arc<Queue>);

impl<'a> MakeWriter<'a> for QueueWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter::new(&self.0, Kind::Other)
    }

    fn make_writer_for(&'a self, metadata: &Metadata<'_>) -> Self::Writer {
        LineWriter::new(&self.0, Kind::of(metadata))
    }
}

/// Collects one formatted event; queues it when dropped.
struct LineWriter<'a> {
    queue: &'a Queue,
    kind: Kind,
    bytes: Vec<u8>,
}

impl<'a> LineWriter<'a> {
    fn new(queue: &'a Queue, kind: Kind) -> Self {
        LineWriter {
            queue,
            kind,
            // Empty if an event is logged while this thread formats another.
            // (`try_with`: a thread may log while its locals are torn down.)
            bytes: SCRATCH
                .try_with(|scratch| std::mem::take(&mut *scratch.borrow_mut()))
                .unwrap_or_default(),
        }
    }
}

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter<'_> {
    fn drop(&mut self) {
        if !self.bytes.is_empty() {
            let captured = CAPTURED.with(|captured| match captured.borrow_mut().as_mut() {
                Some(into) => {
                    into.extend_from_slice(&self.bytes);
                    true
                }
                None => false,
            });
            if !captured {
                // `clone` allocates exactly the line's length.
                self.queue.submit(self.kind, self.bytes.clone());
            }
            self.bytes.clear();
        }
        if self.bytes.capacity() <= SCRATCH_BYTES {
            let bytes = std::mem::take(&mut self.bytes);
            let _ = SCRATCH.try_with(|scratch| *scratch.borrow_mut() = bytes);
        }
    }
}

/// The writer thread: the only one that touches the sink.
struct Writer {
    queue: Arc<Queue>,
    receiver: mpsc::Receiver<Message>,
    sink: Box<dyn Write + Send>,
    /// Lines taken from the queue and not yet written, in order.
    batch: Vec<u8>,
    /// How many of them are of each kind (counted as lost if the sink
    /// refuses them).
    batch_lines: [u64; 2],
}

impl Writer {
    fn run(mut self) {
        loop {
            match self.receiver.try_recv() {
                Ok(Message::Line { kind, bytes }) => {
                    self.batch.extend_from_slice(&bytes);
                    self.batch_lines[kind.index()] += 1;
                    if self.batch.len() >= BATCH_BYTES {
                        self.write_batch();
                    }
                }
                Ok(Message::Flush(done)) => {
                    self.catch_up();
                    let _ = done.send(());
                }
                Ok(Message::Stop) | Err(mpsc::TryRecvError::Disconnected) => {
                    self.catch_up();
                    return;
                }
                Err(mpsc::TryRecvError::Empty) if !self.batch.is_empty() => {
                    // Writing may wait on the sink while more lines queue
                    // up: look at the queue again before saying it is
                    // caught up, so the summary follows every line queued
                    // before it.
                    self.write_batch();
                }
                Err(mpsc::TryRecvError::Empty) => {
                    // Caught up: the sink has drained what was queued, so
                    // the gap, if any, can be told now. Then look again
                    // shortly, or at once when woken for a flush or stop.
                    self.catch_up();
                    thread::park_timeout(POLL_INTERVAL);
                }
            }
        }
    }

    /// Writes the lines gathered, then the summary of any lines lost, and
    /// flushes the sink.
    fn catch_up(&mut self) {
        self.write_batch();
        self.summarize();
        let _ = self.sink.flush();
    }

    /// Writes the lines gathered so far; they leave the queue's count once
    /// written (or lost, and counted, if the sink refuses them).
    fn write_batch(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let written = write_fully(&mut self.sink, &self.batch);
        self.queue
            .queued_bytes
            .fetch_sub(self.batch.len(), Ordering::AcqRel);
        let lines = std::mem::take(&mut self.batch_lines);
        if !written {
            // A batch the sink cut off part way counts whole: the count may
            // be above the lines lost, never below.
            for kind in Kind::ALL {
                self.queue.lost_many(kind, lines[kind.index()]);
            }
        }
        self.batch.clear();
        if self.batch.capacity() > BATCH_BYTES * 2 {
            // One huge line grew it: give the memory back.
            self.batch = Vec::new();
        }
    }

    /// Writes the one line that tells how many lines were lost since the
    /// last such line, if any were. It is an event like any other, so it has
    /// the log's format.
    fn summarize(&mut self) {
        let [audit, other] =
            Kind::ALL.map(|kind| self.queue.unreported[kind.index()].swap(0, Ordering::Relaxed));
        let total = audit + other;
        if total == 0 {
            return;
        }
        CAPTURED.with(|captured| *captured.borrow_mut() = Some(Vec::new()));
        tracing::warn!(
            target: SUMMARY_TARGET,
            dropped_audit = audit,
            dropped_other = other,
            "{total} log lines dropped while the log output was blocked"
        );
        let line = CAPTURED.with(|captured| captured.borrow_mut().take());
        if let Some(line) = line.filter(|line| !line.is_empty()) {
            // Not counted if it fails: the sink is gone, and counting it
            // would only ask for another summary.
            write_fully(&mut self.sink, &line);
        }
    }
}

/// Writes all of `bytes`, waiting as long as the sink needs: this is the
/// one thread allowed to wait on it. A sink opened non-blocking is polled.
/// False if the sink failed.
fn write_fully(sink: &mut dyn Write, mut bytes: &[u8]) -> bool {
    while !bytes.is_empty() {
        match sink.write(bytes) {
            Ok(0) => return false,
            Ok(n) => bytes = &bytes[n..],
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(_) => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests;
