//! mb-ingest's engine: read event lines, validate, deduplicate, store.
//!
//! Two threads share the work so both cores are busy: a reader thread reads
//! and validates lines ([`crate::events::parse_line`]) and hands chunks of
//! parsed items over a bounded channel; the calling thread writes them in
//! `BEGIN IMMEDIATE` transactions. A transaction spans chunks until it holds
//! `--batch` lines (50,000), has been open a second, a source ends, or no
//! chunk is ready. Consequences:
//!
//! - the write lock is held only while ready lines are written, never while
//!   waiting for input, so concurrent writers and readers interleave, and a
//!   slow producer's lines are committed as they come;
//! - a process killed at any point leaves whole transactions committed;
//!   re-running the same input stores the rest and counts the committed ones
//!   as duplicates, so every valid line ends up stored exactly once;
//! - memory is bounded by the chunk size, the channel depth and SQLite's page
//!   cache, not by the input or the transaction size;
//! - a spool file is fully committed before it is moved to `done/`.
//!
//! Counts always reconcile: read = inserted + duplicates + conflicts +
//! rejected. Blank lines and comment lines (first non-blank character `#`,
//! as written by `--rejects`) are not events and are not counted.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::cli;
use crate::error::{Error, Result};
use crate::events::{parse_line, Event, Kind, MAX_LINE_BYTES};
use crate::store::{Counts, InsertResult, Store, Writer};
use crate::time;

/// Lines per transaction. Random ids dirty pages all over the unique index,
/// and a commit writes every dirty page to the WAL: a bigger transaction
/// writes each such page once for many rows (10,000 -> 50,000 cut the time of
/// a 1M-line ingest by a third). Bounded in time by [`MAX_TX_TIME`] so other
/// writers never wait long.
pub const DEFAULT_BATCH_LINES: usize = 50_000;

/// Lines the reader hands over at a time (memory stays at a few chunks
/// whatever the transaction size).
pub const CHUNK_LINES: usize = 4_096;

/// Bytes of line text a chunk holds at most before it is handed over, so a
/// stream of long lines cannot make a chunk (and the few in flight) large.
pub const CHUNK_BYTES: usize = 4 << 20;

/// Chunk size into PostgreSQL, where each chunk is one COPY: at every COPY's
/// end mb waits for the server to insert what is still queued, and the
/// server then waits for mb's next COPY, so fewer, larger COPYs keep the
/// server busy (at the cost of a few more MB in flight).
pub const PG_CHUNK: (usize, usize) = (8_192, 8 << 20);

/// Bytes of a too-long line kept in `rejects` (with its full length and
/// SHA-256); the rest is read, hashed and dropped, never buffered.
pub const LONG_LINE_PREFIX: usize = 4096;

/// Longest a transaction stays open: the write lock is released at least
/// this often, so concurrent writers and cron jobs interleave.
pub const MAX_TX_TIME: std::time::Duration = std::time::Duration::from_millis(1_000);

/// How many rejected or conflicting lines are described on stderr before
/// only a count is given.
pub const MAX_MESSAGES: u64 = 20;

/// Where input comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Standard input, reported as `stdin`.
    Stdin,
    /// A file, reported by its path as given.
    File(PathBuf),
    /// A spool file: after its lines are committed it is moved to `done/`
    /// (or deleted).
    Spool {
        /// The file.
        path: PathBuf,
        /// Delete instead of moving to `done/`.
        delete: bool,
    },
}

impl Source {
    /// The name used in messages and the audit tables.
    pub fn name(&self) -> String {
        match self {
            Source::Stdin => "stdin".into(),
            Source::File(p) | Source::Spool { path: p, .. } => p.display().to_string(),
        }
    }
}

/// Options of one ingest run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Lines per transaction.
    pub batch_lines: usize,
    /// Validate and count, write nothing.
    pub dry_run: bool,
    /// Also append rejected lines to this file.
    pub rejects_file: Option<PathBuf>,
    /// Show progress on a terminal.
    pub progress: bool,
    /// Validation clock (timestamps more than a day after it are rejected).
    pub now: DateTime<Utc>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            batch_lines: DEFAULT_BATCH_LINES,
            dry_run: false,
            rejects_file: None,
            progress: false,
            now: time::now(),
        }
    }
}

/// One input line after validation.
enum Item {
    Event {
        line_no: u64,
        event: Box<Event>,
        /// The verbatim line, as a range of the batch's `text` (one buffer
        /// per batch instead of one allocation per line).
        raw: std::ops::Range<usize>,
    },
    Rejected {
        line_no: u64,
        reason: String,
        /// The line, or for a too-long line its first [`LONG_LINE_PREFIX`]
        /// bytes.
        raw: Vec<u8>,
        /// The full line's length and SHA-256 (identifies it in `rejects`).
        len: u64,
        sha256: [u8; 32],
    },
}

/// What the reader thread sends.
enum Msg {
    Batch {
        source: usize,
        items: Vec<Item>,
        text: String,
        end_of_source: bool,
    },
    Failed(Error),
}

/// An open transaction: the writer, when it began, its lines, its counts.
type OpenTx<'a> = Option<(Writer<'a>, Instant, usize, Counts)>;

/// Commit the open transaction, if any, with the run's counts so far
/// (`committed` plus its own), so the audit row matches what is stored.
fn commit_open(open: &mut OpenTx<'_>, committed: &mut Counts, run_id: i64) -> Result<()> {
    if let Some((w, _, _, in_tx)) = open.take() {
        let mut total = *committed;
        total.add(&in_tx);
        w.set_run_counts(run_id, &total)?;
        w.commit()?;
        *committed = total;
    }
    Ok(())
}

/// When the reader hands a chunk over: at this many lines or bytes of text.
#[derive(Debug, Clone, Copy)]
struct ChunkSize {
    lines: usize,
    bytes: usize,
}

/// One chunk of validated lines from the reader thread.
struct Chunk {
    source: usize,
    items: Vec<Item>,
    text: String,
    end: bool,
}

impl Chunk {
    fn from(msg: Msg) -> Result<Chunk> {
        match msg {
            Msg::Batch {
                source,
                items,
                text,
                end_of_source,
            } => Ok(Chunk {
                source,
                items,
                text,
                end: end_of_source,
            }),
            Msg::Failed(e) => Err(e),
        }
    }
}

/// Where validated items go: the database, or (dry run) a scratch map.
enum Target<'a> {
    Db {
        store: &'a mut Store,
        run_id: i64,
    },
    Dry {
        store: Option<&'a Store>,
        seen: HashMap<(Kind, String), Event>,
    },
}

/// Ingest `sources` in order into `target`; returns the counts.
///
/// In a dry run `store` may be None (no database yet).
pub fn run(store: Option<&mut Store>, sources: &[Source], opts: &Options) -> Result<Counts> {
    let source_label = match sources {
        [one] => one.name(),
        many => format!("{} sources", many.len()),
    };
    let started = time::format_fixed_micros(&time::now());
    let mut target = match (opts.dry_run, store) {
        (false, Some(store)) => {
            let run_id = store.begin_run(cli::tool(), &source_label, &started)?;
            Target::Db { store, run_id }
        }
        (false, None) => return Err(Error::Usage("ingest needs a database".into())),
        (true, store) => Target::Dry {
            store: store.map(|s| &*s),
            seen: HashMap::new(),
        },
    };
    let mut rejects_out = match &opts.rejects_file {
        Some(p) => Some(BufWriter::new(
            crate::fsutil::append(p).map_err(|e| Error::io(p, e))?,
        )),
        None => None,
    };
    let mut counts = Counts::default();
    // What is committed: the audit row of a failed run says only this.
    let mut committed = Counts::default();
    let mut messages = 0u64;
    let progress = opts
        .progress
        .then(|| crate::progress::IngestProgress::new(total_size(sources)));

    let result = std::thread::scope(|scope| -> Result<()> {
        let (tx, rx) = mpsc::sync_channel::<Msg>(2);
        let batch = opts.batch_lines.max(1);
        let (lines, chunk_bytes) = match &target {
            Target::Db { store, .. } if store.is_postgres() => PG_CHUNK,
            _ => (CHUNK_LINES, CHUNK_BYTES),
        };
        let chunk = ChunkSize {
            lines: batch.min(lines),
            bytes: chunk_bytes,
        };
        let now = opts.now;
        // Written chunks go back to the reader to be freed: dropping a
        // chunk's parsed events (a dozen strings each) was 6 % of the
        // writer thread, which sets the pace.
        let (used_tx, used_rx) = mpsc::channel::<Chunk>();
        let bytes = progress.as_ref();
        scope.spawn(move || read_all(sources, chunk, now, tx, used_rx, bytes));
        match &mut target {
            Target::Db { store, run_id } => {
                let run_id = *run_id;
                // A transaction spans chunks until it holds `batch` lines, has
                // been open MAX_TX_TIME, or a source ends. The run's counts
                // are written with each commit: `committed` plus this
                // transaction's own.
                let mut open: OpenTx<'_> = None;
                let committed = &mut committed;
                loop {
                    // Never wait for input with a transaction open: that
                    // would hold the write lock while a slow producer
                    // thinks. Commit first when nothing is ready.
                    let msg = match rx.try_recv() {
                        Ok(m) => m,
                        Err(mpsc::TryRecvError::Disconnected) => break,
                        Err(mpsc::TryRecvError::Empty) => {
                            commit_open(&mut open, committed, run_id)?;
                            match rx.recv() {
                                Ok(m) => m,
                                Err(_) => break,
                            }
                        }
                    };
                    let chunk = Chunk::from(msg)?;
                    let name = sources[chunk.source].name();
                    let mut sink = Sink {
                        source: &name,
                        text: &chunk.text,
                        messages: &mut messages,
                        rejects_out: rejects_out.as_mut(),
                    };
                    if open.is_none() {
                        open = Some((store.writer()?, Instant::now(), 0, Counts::default()));
                    }
                    let Some((w, t0, n, in_tx)) = open.as_mut() else {
                        unreachable!("a transaction was just opened")
                    };
                    let mut c = Counts::default();
                    sink.write_db(w, run_id, &chunk.items, &mut c)?;
                    *n += chunk.items.len();
                    in_tx.add(&c);
                    if chunk.end || *n >= batch || t0.elapsed() >= MAX_TX_TIME {
                        commit_open(&mut open, committed, run_id)?;
                        if let (true, Source::Spool { path, delete }) =
                            (chunk.end, &sources[chunk.source])
                        {
                            finish_spool_file(path, *delete)?;
                        }
                    }
                    counts.add(&c);
                    if let Some(p) = progress.as_ref() {
                        p.lines(&name, c.read);
                    }
                    // Once the reader has finished, this fails and the chunk
                    // is freed here.
                    let _ = used_tx.send(chunk);
                }
                commit_open(&mut open, committed, run_id)?;
            }
            Target::Dry { store, seen } => {
                for msg in rx.iter() {
                    let chunk = Chunk::from(msg)?;
                    let name = sources[chunk.source].name();
                    let mut sink = Sink {
                        source: &name,
                        text: &chunk.text,
                        messages: &mut messages,
                        rejects_out: rejects_out.as_mut(),
                    };
                    let mut c = Counts::default();
                    sink.write_dry(*store, seen, &chunk.items, &mut c)?;
                    counts.add(&c);
                    if let Some(p) = progress.as_ref() {
                        p.lines(&name, c.read);
                    }
                }
            }
        }
        Ok(())
    });
    if let Some(p) = progress {
        p.finish();
    }
    if let Some(w) = rejects_out.as_mut() {
        w.flush()
            .map_err(|e| Error::io(opts.rejects_file.clone().unwrap_or_default(), e))?;
    }
    let hidden = (counts.rejected + counts.conflicts).saturating_sub(MAX_MESSAGES);
    if hidden > 0 {
        cli::warn(format!(
            "... and {hidden} more rejected or conflicting lines (see the rejects and conflicts tables{})",
            if opts.rejects_file.is_some() { " and --rejects file" } else { "" }
        ));
    }
    if let Target::Db { store, run_id } = &mut target {
        let finished = time::format_fixed_micros(&time::now());
        let err = result.as_ref().err().map(|e| e.to_string());
        // A failed run records only what it committed (the rolled-back
        // transaction's lines are not stored, so they are not counted).
        // Best effort on failure: the database itself may be what failed;
        // then the row stays `running` and the next run marks it abandoned.
        let fin = store.finish_run(
            *run_id,
            if err.is_some() { &committed } else { &counts },
            &finished,
            err.as_deref(),
        );
        store.checkpoint();
        result?;
        fin?;
    } else {
        result?;
    }
    Ok(counts)
}

/// Where one chunk's messages and rejects go.
struct Sink<'a> {
    source: &'a str,
    text: &'a str,
    messages: &'a mut u64,
    rejects_out: Option<&'a mut BufWriter<File>>,
}

impl Sink<'_> {
    fn say(&mut self, msg: String) {
        *self.messages += 1;
        if *self.messages <= MAX_MESSAGES {
            // Messages quote input, which may carry terminal escapes.
            cli::warn(crate::output::escape_text(&msg));
        }
    }

    /// Count a rejected line, describe it on stderr (within the message
    /// budget) and append it to the `--rejects` file, if any.
    fn rejected(&mut self, c: &mut Counts, line_no: u64, reason: &str, raw: &[u8]) -> Result<()> {
        c.rejected += 1;
        self.say(format!("{}:{line_no}: {reason}", self.source));
        if let Some(w) = self.rejects_out.as_deref_mut() {
            let io = |e| Error::io("--rejects file", e);
            writeln!(
                w,
                "# {}:{line_no}: {}",
                crate::output::escape_text(self.source),
                crate::output::escape_text(reason)
            )
            .map_err(io)?;
            w.write_all(raw).map_err(io)?;
            w.write_all(b"\n").map_err(io)?;
        }
        Ok(())
    }

    fn write_db(
        &mut self,
        w: &Writer<'_>,
        run_id: i64,
        items: &[Item],
        c: &mut Counts,
    ) -> Result<()> {
        let ingested_at = w.ingested_at().to_string();
        // The chunk's events go to the store as one batch (PostgreSQL
        // copies them in a few round trips); what happened to each comes
        // back in order, and the lines are then counted and recorded in
        // input order.
        let evs: Vec<&Event> = items
            .iter()
            .filter_map(|item| match item {
                Item::Event { event, .. } => Some(&**event),
                Item::Rejected { .. } => None,
            })
            .collect();
        let mut results = w.insert_batch(&evs, run_id)?.into_iter();
        for item in items {
            c.read += 1;
            match item {
                Item::Rejected {
                    line_no,
                    reason,
                    raw,
                    len,
                    sha256,
                } => {
                    self.rejected(c, *line_no, reason, raw)?;
                    w.reject(
                        run_id,
                        self.source,
                        *line_no,
                        reason,
                        raw,
                        *len,
                        sha256,
                        &ingested_at,
                    )?;
                }
                Item::Event {
                    line_no,
                    event,
                    raw,
                } => match results.next().ok_or_else(|| {
                    Error::Invalid("the store returned fewer results than events".into())
                })? {
                    InsertResult::Inserted => c.inserted += 1,
                    InsertResult::OverHourBound => {
                        let reason = over_hour_bound_reason(event);
                        let line = self.text[raw.clone()].as_bytes();
                        self.rejected(c, *line_no, &reason, line)?;
                        w.reject(
                            run_id,
                            self.source,
                            *line_no,
                            &reason,
                            line,
                            line.len() as u64,
                            &sha256(line),
                            &ingested_at,
                        )?;
                    }
                    InsertResult::Duplicate => c.duplicates += 1,
                    InsertResult::Conflict => {
                        c.conflicts += 1;
                        self.say(conflict_msg(self.source, *line_no, event));
                        w.conflict(
                            run_id,
                            event.kind(),
                            &event.header.id,
                            self.source,
                            *line_no,
                            &self.text[raw.clone()],
                            &ingested_at,
                        )?;
                    }
                },
            }
        }
        Ok(())
    }

    fn write_dry(
        &mut self,
        store: Option<&Store>,
        seen: &mut HashMap<(Kind, String), Event>,
        items: &[Item],
        c: &mut Counts,
    ) -> Result<()> {
        for item in items {
            c.read += 1;
            match item {
                Item::Rejected {
                    line_no,
                    reason,
                    raw,
                    ..
                } => self.rejected(c, *line_no, reason, raw)?,
                Item::Event { line_no, event, .. } => {
                    let key = (event.kind(), event.header.id.clone());
                    let existing = match seen.get(&key) {
                        Some(e) => Some(e.clone()),
                        None => match store {
                            Some(s) => s.get_event(key.0, &key.1)?,
                            None => None,
                        },
                    };
                    match existing {
                        None => {
                            c.inserted += 1;
                            seen.insert(key, (**event).clone());
                        }
                        Some(e) if e == **event => c.duplicates += 1,
                        Some(_) => {
                            c.conflicts += 1;
                            self.say(conflict_msg(self.source, *line_no, event));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn over_hour_bound_reason(ev: &Event) -> String {
    use crate::events::bounds::{MAX_HOUR_NUSD, MAX_HOUR_TOKENS};
    format!(
        "customer {:?} would pass the bound of one UTC hour ({MAX_HOUR_TOKENS} tokens or USD {}, \
         mb-events(5) BOUNDS) with this line; not stored",
        ev.header.customer_id,
        crate::money::format_nanos(MAX_HOUR_NUSD)
    )
}

fn conflict_msg(source: &str, line_no: u64, ev: &Event) -> String {
    format!(
        "{source}:{line_no}: conflict: {} id {:?} is already stored with different content; \
         the stored event is kept and this line is recorded in the conflicts table",
        ev.kind(),
        ev.header.id
    )
}

/// Reader thread: read every source, validate lines, send batches.
fn read_all(
    sources: &[Source],
    batch: ChunkSize,
    now: DateTime<Utc>,
    tx: mpsc::SyncSender<Msg>,
    used: mpsc::Receiver<Chunk>,
    progress: Option<&crate::progress::IngestProgress>,
) {
    for (i, src) in sources.iter().enumerate() {
        let reader: Box<dyn Read> = match src {
            Source::Stdin => Box::new(io::stdin()),
            Source::File(p) | Source::Spool { path: p, .. } => match File::open(p) {
                Ok(f) => Box::new(f),
                Err(e) => {
                    let _ = tx.send(Msg::Failed(Error::io(p, e)));
                    return;
                }
            },
        };
        let reader = match progress {
            Some(p) => p.reader(reader),
            None => reader,
        };
        let name = src.name();
        if let Err(e) = read_source(i, &name, reader, batch, now, &tx, &used) {
            let _ = tx.send(Msg::Failed(e));
            return;
        }
    }
}

/// One line read by [`next_line`].
enum Line {
    /// The whole line is in the buffer (without its newline).
    Whole,
    /// The line was longer than [`MAX_LINE_BYTES`]: the buffer holds its
    /// first bytes only; its full length and SHA-256.
    TooLong(u64, [u8; 32]),
    /// End of input.
    End,
}

/// Read one line into `buf` (cleared first), buffering at most
/// [`MAX_LINE_BYTES`] + 1 bytes of it: the rest of a longer line (a 1 GB
/// line, or a stream without any newline) is hashed and counted, never
/// kept, so memory stays bounded on any input.
fn next_line<R: BufRead>(r: &mut R, buf: &mut Vec<u8>) -> io::Result<Line> {
    buf.clear();
    let limit = MAX_LINE_BYTES + 1;
    let mut hasher: Option<Sha256> = None;
    let mut total = 0u64;
    let mut any = false;
    loop {
        let avail = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            break;
        }
        any = true;
        let (piece, done) = match memchr(avail) {
            Some(i) => (&avail[..i], Some(i + 1)),
            None => (avail, None),
        };
        total += piece.len() as u64;
        if let Some(h) = hasher.as_mut() {
            h.update(piece);
        } else if buf.len() + piece.len() > limit {
            let mut h = Sha256::new();
            h.update(&buf[..]);
            h.update(piece);
            let keep = LONG_LINE_PREFIX.min(buf.len());
            let take = LONG_LINE_PREFIX - keep;
            buf.truncate(keep);
            buf.extend_from_slice(&piece[..take.min(piece.len())]);
            hasher = Some(h);
        } else {
            buf.extend_from_slice(piece);
        }
        let used = done.unwrap_or(avail.len());
        r.consume(used);
        if done.is_some() {
            break;
        }
    }
    if !any {
        return Ok(Line::End);
    }
    Ok(match hasher {
        Some(h) => Line::TooLong(total, h.finalize().into()),
        None => Line::Whole,
    })
}

/// The index of the first newline in `b`.
fn memchr(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

fn sha256(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

fn read_source(
    source: usize,
    name: &str,
    reader: Box<dyn Read>,
    size: ChunkSize,
    now: DateTime<Utc>,
    tx: &mpsc::SyncSender<Msg>,
    used: &mpsc::Receiver<Chunk>,
) -> Result<()> {
    let batch = size.lines;
    let mut r = BufReader::with_capacity(256 * 1024, reader);
    let mut buf = Vec::with_capacity(4096);
    let mut items = Vec::with_capacity(batch);
    let mut text = String::with_capacity(64 * 1024);
    let mut chunk_bytes = 0usize;
    let mut line_no = 0u64;
    loop {
        let line = next_line(&mut r, &mut buf).map_err(|e| Error::io(name, e))?;
        match line {
            Line::End => break,
            Line::TooLong(len, sha256) => {
                line_no += 1;
                chunk_bytes += buf.len();
                items.push(Item::Rejected {
                    line_no,
                    reason: format!(
                        "line of {len} bytes is longer than {MAX_LINE_BYTES} bytes \
                         (sha256 {}); its first {} bytes are kept",
                        hex(&sha256),
                        buf.len()
                    ),
                    raw: std::mem::take(&mut buf),
                    len,
                    sha256,
                });
            }
            Line::Whole => {
                line_no += 1;
                if buf.last() == Some(&b'\r') {
                    buf.pop();
                }
                // A UTF-8 byte order mark at the start of a file (some
                // Windows editors write one) is not part of the data.
                let mut line: &[u8] = &buf;
                if line_no == 1 {
                    line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
                }
                let first = line.iter().find(|b| !b.is_ascii_whitespace());
                match first {
                    None | Some(b'#') => continue,
                    _ => {}
                }
                chunk_bytes += line.len();
                items.push(parse_item(line_no, line, now, &mut text));
            }
        }
        // Hand over a full chunk, or whatever is parsed when the input has
        // nothing more buffered: the next read may block on a slow pipe
        // (`mb-sample --watch 300 | mb-ingest`), and lines must not wait
        // there for a chunk to fill.
        if items.len() >= batch || chunk_bytes >= size.bytes || r.buffer().is_empty() {
            let full = std::mem::replace(&mut items, Vec::with_capacity(batch));
            let full_text = std::mem::replace(&mut text, String::with_capacity(64 * 1024));
            chunk_bytes = 0;
            used.try_iter().for_each(drop);
            if tx
                .send(Msg::Batch {
                    source,
                    items: full,
                    text: full_text,
                    end_of_source: false,
                })
                .is_err()
            {
                // The writer stopped (fatal error); it reports why.
                return Ok(());
            }
        }
    }
    let _ = tx.send(Msg::Batch {
        source,
        items,
        text,
        end_of_source: true,
    });
    Ok(())
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn parse_item(line_no: u64, buf: &[u8], now: DateTime<Utc>, text_buf: &mut String) -> Item {
    let text = match std::str::from_utf8(buf) {
        Ok(t) => t,
        Err(e) => {
            return Item::Rejected {
                line_no,
                reason: format!("not UTF-8 (invalid byte at offset {})", e.valid_up_to()),
                raw: buf.to_vec(),
                len: buf.len() as u64,
                sha256: sha256(buf),
            }
        }
    };
    match parse_line(text, now) {
        Ok(event) => {
            let start = text_buf.len();
            text_buf.push_str(text);
            Item::Event {
                line_no,
                event: Box::new(event),
                raw: start..text_buf.len(),
            }
        }
        Err(e) => Item::Rejected {
            line_no,
            reason: e.to_string(),
            raw: buf.to_vec(),
            len: buf.len() as u64,
            sha256: sha256(buf),
        },
    }
}

/// The complete files of a spool directory, in name order: `*.jsonl` only,
/// so a producer's `*.tmp` (or any hidden file) is never taken half-written.
pub fn spool_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || !name.ends_with(".jsonl") {
            continue;
        }
        let ft = entry.file_type().map_err(|e| Error::io(entry.path(), e))?;
        if ft.is_file() {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// Take the spool directory's lock, so two `mb-ingest --spool` runs (an
/// overlapping cron job) do not work on the same files. Returns None when
/// another process holds it.
pub fn lock_spool(dir: &Path) -> Result<Option<File>> {
    let p = dir.join(".mb-ingest.lock");
    let f = crate::fsutil::lock_file(&p).map_err(|e| Error::io(&p, e))?;
    match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(f)),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(Error::io(&p, e.into())),
    }
}

/// After a spool file's lines are committed: move it to `done/` (a name that
/// is taken gets a numeric suffix) or delete it, then sync the directory so
/// the move survives a crash. A crash before this point only means the file
/// is ingested again, which stores nothing twice.
fn finish_spool_file(path: &Path, delete: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    if delete {
        fs::remove_file(path).map_err(|e| Error::io(path, e))?;
    } else {
        let done = dir.join("done");
        if !done.exists() {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&done)
                .or_else(|e| {
                    if e.kind() == io::ErrorKind::AlreadyExists {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })
                .map_err(|e| Error::io(&done, e))?;
        }
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let mut dest = done.join(&name);
        let mut n = 1;
        while dest.exists() {
            dest = done.join(format!("{name}.{n}"));
            n += 1;
        }
        fs::rename(path, &dest).map_err(|e| Error::io(path, e))?;
        if let Ok(d) = File::open(&done) {
            let _ = d.sync_all();
        }
    }
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The total size of the inputs, when every one has a known size.
fn total_size(sources: &[Source]) -> Option<u64> {
    sources.iter().try_fold(0u64, |a, s| {
        let size = match s {
            Source::Stdin => crate::progress::input_size(None),
            Source::File(p) | Source::Spool { path: p, .. } => crate::progress::input_size(Some(p)),
        };
        Some(a.saturating_add(size?))
    })
}

/// Whether stderr is a terminal (progress display).
pub fn stderr_is_terminal() -> bool {
    io::stderr().is_terminal()
}
