//! Full-text search (tantivy) over posts, users and chat messages, maintained from the log:
//! the index here, the reads that resolve its hits in `reads.rs`.
//!
//! One indexer thread tails the durable log like the dataflow does and keeps an in-memory
//! tantivy index: a post, message or user is a document keyed by the seq of the event that
//! created it (which also names its kind and id, so the index stores nothing but terms and
//! that seq); edits replace it, deletes remove it, profile changes re-read the user's record. Being in memory, the index is
//! rebuilt from the log at every start (and by `girok replay`), so it never disagrees with the
//! log after a crash. The index has a watermark like every view; a search with `after: seq`
//! waits for it. The indexer polls the log every [`POLL`] once caught up; commits (which make
//! documents searchable) happen when it catches up, and at least every [`COMMIT_EVERY`] under
//! load.
//!
//! The indexer and tantivy's threads run at the lowest scheduling priority: on a busy machine
//! they yield to the log writer and the live deliveries, and search freshness takes the delay.
//!
//! Authorization happens in the query: messages match only in rooms the searcher is a member
//! of now (from the memberships view); posts and users are public.

mod reads;

pub use reads::{SearchPage, SearchQuery, SearchResult};

use crate::error::{Error, Result};
use crate::records::record;
use crate::tailer::Tailer;
use crate::views::{Digest, Watermark};
use girok_schemas::proto::UserRecord;
use girok_schemas::{Event, Payload, RoomId, Seq, UserId, decode_event};
use girok_storage::{Store, Table};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, QueryParser, TermQuery};
use tantivy::schema::{FAST, Field, INDEXED, IndexRecordOption, STRING, Schema, TEXT};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, Term, doc};

/// Longest the indexer goes without a commit while events keep coming.
pub const COMMIT_EVERY: Duration = Duration::from_millis(200);
/// Log entries read per step.
const CHUNK: usize = 4096;
/// How long the indexer sleeps once caught up before looking at the log again. It polls
/// rather than waking at every group commit: under load that is hundreds of wake-ups a second
/// on cores the writer needs, for an index whose freshness only search waits on.
const POLL: Duration = Duration::from_millis(50);
/// Memory the tantivy writer may buffer before it flushes a segment.
const WRITER_BYTES: usize = 32 * 1024 * 1024;

/// What a search looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SearchKind {
    Post,
    User,
    Message,
}

impl SearchKind {
    fn name(self) -> &'static str {
        match self {
            SearchKind::Post => "post",
            SearchKind::User => "user",
            SearchKind::Message => "message",
        }
    }
}

/// One match: the seq of the event that created what matched (a post, a message, a user's
/// registration), which names its kind and id.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SearchHit {
    pub seq: Seq,
    pub score: f32,
}

#[derive(Clone, Copy)]
struct Fields {
    /// The creating event's seq: the document's key (indexed, for deletes) and a fast field
    /// (for reading hits); nothing is stored, the log has the rest.
    seq: Field,
    kind: Field,
    room: Field,
    text: Field,
}

/// Per document (by seq), a hash of its text: the digest replay compares, and what a delete
/// retracts from it.
#[derive(Default)]
struct Documents {
    texts: HashMap<Seq, u64>,
    /// Registration seq of every user (a profile change re-indexes that document).
    users: HashMap<UserId, Seq>,
    digest: Digest,
}

/// The index, its reader and its watermark.
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
    /// The highest seq whose effect is searchable.
    pub watermark: Watermark,
    docs: Mutex<Documents>,
}

impl SearchIndex {
    /// An empty in-memory index.
    pub fn new() -> Result<Self> {
        let mut schema = Schema::builder();
        let fields = Fields {
            seq: schema.add_u64_field("seq", INDEXED | FAST),
            kind: schema.add_text_field("kind", STRING),
            room: schema.add_text_field("room", STRING),
            text: schema.add_text_field("text", TEXT),
        };
        let index = Index::create_in_ram(schema.build());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(search_error)?;
        Ok(Self {
            index,
            reader,
            fields,
            watermark: Watermark::default(),
            docs: Mutex::new(Documents::default()),
        })
    }

    /// Documents indexed and the digest of their seqs and texts.
    pub fn digest(&self) -> Digest {
        self.docs.lock().digest
    }

    /// Up to `limit` hits for `query`, best first, skipping `offset`; `kinds` limits what is
    /// searched (empty: everything); messages match only in `rooms`. The query uses tantivy's
    /// syntax (words, "phrases", +must, -not); what does not parse is read as plain words.
    pub fn search(
        &self,
        query: &str,
        kinds: &[SearchKind],
        rooms: &[RoomId],
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<SearchHit>, bool)> {
        let f = self.fields;
        let parser = QueryParser::for_index(&self.index, vec![f.text]);
        let (text, _errors) = parser.parse_query_lenient(query);
        let term = |field: Field, value: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(field, value),
                IndexRecordOption::Basic,
            ))
        };
        let wanted = |kind: SearchKind| kinds.is_empty() || kinds.contains(&kind);
        let mut visible: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for kind in [SearchKind::Post, SearchKind::User] {
            if wanted(kind) {
                visible.push((Occur::Should, term(f.kind, kind.name())));
            }
        }
        if wanted(SearchKind::Message) && !rooms.is_empty() {
            let in_rooms: Vec<(Occur, Box<dyn Query>)> = rooms
                .iter()
                .map(|room| (Occur::Should, term(f.room, &room.to_string())))
                .collect();
            visible.push((
                Occur::Should,
                Box::new(BooleanQuery::new(vec![
                    (Occur::Must, term(f.kind, SearchKind::Message.name())),
                    (Occur::Must, Box::new(BooleanQuery::new(in_rooms))),
                ])),
            ));
        }
        if visible.is_empty() {
            return Ok((Vec::new(), false));
        }
        let query = BooleanQuery::new(vec![
            (Occur::Must, text),
            (Occur::Must, Box::new(BooleanQuery::new(visible))),
        ]);
        let searcher = self.reader.searcher();
        let top = searcher
            .search(&query, &TopDocs::with_limit(limit + 1).and_offset(offset))
            .map_err(search_error)?;
        let more = top.len() > limit;
        let mut hits = Vec::with_capacity(limit);
        for (score, address) in top.into_iter().take(limit) {
            let seq = searcher
                .segment_reader(address.segment_ord)
                .fast_fields()
                .u64("seq")
                .map_err(search_error)?
                .first(address.doc_id)
                .ok_or_else(|| Error::Internal("search document without a seq".into()))?;
            hits.push(SearchHit { seq, score });
        }
        Ok((hits, more))
    }

    fn add(
        &self,
        writer: &IndexWriter,
        kind: SearchKind,
        seq: Seq,
        room: Option<RoomId>,
        text: &str,
    ) -> Result<()> {
        let f = self.fields;
        self.remove(writer, seq);
        let mut document = doc!(f.seq => seq, f.kind => kind.name(), f.text => text);
        if let Some(room) = room {
            document.add_text(f.room, room.to_string());
        }
        writer.add_document(document).map_err(search_error)?;
        let hash = xxhash_rust::xxh3::xxh3_64(text.as_bytes());
        let mut docs = self.docs.lock();
        docs.digest.apply(&(seq, hash), 1);
        docs.texts.insert(seq, hash);
        Ok(())
    }

    fn remove(&self, writer: &IndexWriter, seq: Seq) {
        let mut docs = self.docs.lock();
        if let Some(hash) = docs.texts.remove(&seq) {
            writer.delete_term(Term::from_field_u64(self.fields.seq, seq));
            docs.digest.apply(&(seq, hash), -1);
        }
    }

    /// Applies one event to the index.
    fn index_event(&self, writer: &IndexWriter, store: &Store, event: Event) -> Result<()> {
        match event.payload {
            Payload::PostCreated { content, .. } => {
                self.add(writer, SearchKind::Post, event.seq, None, &content)
            }
            Payload::PostEdited {
                post_seq, content, ..
            } => self.add(writer, SearchKind::Post, post_seq, None, &content),
            Payload::PostDeleted { post_seq, .. } => {
                self.remove(writer, post_seq);
                Ok(())
            }
            Payload::MessageSent { room, body, .. } => {
                self.add(writer, SearchKind::Message, event.seq, Some(room), &body)
            }
            Payload::MessageEdited {
                room,
                message_seq,
                body,
                ..
            } => self.add(writer, SearchKind::Message, message_seq, Some(room), &body),
            Payload::MessageDeleted { message_seq, .. } => {
                self.remove(writer, message_seq);
                Ok(())
            }
            Payload::UserRegistered {
                user,
                username,
                display_name,
                ..
            } => {
                self.docs.lock().users.insert(user, event.seq);
                let text = user_text(&username, &display_name, "");
                self.add(writer, SearchKind::User, event.seq, None, &text)
            }
            Payload::ProfileUpdated { user, .. } => {
                let registered = self.docs.lock().users.get(&user).copied();
                // The record has every field as of now (at or after this event).
                let record: Option<UserRecord> =
                    record(store.get(Table::UseridUser, user.as_bytes())?, "user")?;
                if let (Some(seq), Some(r)) = (registered, record) {
                    let text = user_text(&r.username, &r.display_name, &r.bio);
                    self.add(writer, SearchKind::User, seq, None, &text)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

fn user_text(username: &str, display_name: &str, bio: &str) -> String {
    format!("{username} {display_name} {bio}")
}

fn search_error(e: tantivy::TantivyError) -> Error {
    Error::Internal(format!("search index: {e}"))
}

/// The running indexer thread.
pub struct Indexer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Indexer {
    /// Starts indexing `store`'s log into `index` from seq 1; with `until`, stops once the
    /// index reflects that seq (replay).
    pub fn start(store: Arc<Store>, index: Arc<SearchIndex>, until: Option<Seq>) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("girok-search".into())
                .spawn(move || {
                    crate::background::lower_priority("search indexer");
                    // Created here, so that tantivy's indexing and merge threads inherit
                    // the lowered priority.
                    match index.index.writer_with_num_threads(1, WRITER_BYTES) {
                        Ok(writer) => run(&store, &index, writer, &stop, until),
                        Err(error) => tracing::error!(%error, "search index writer failed"),
                    }
                })
                .map_err(|e| Error::Internal(format!("cannot start the search indexer: {e}")))?
        };
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Waits for an indexer started with `until` to finish.
    pub fn join(mut self) {
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("search indexer panicked");
        }
    }

    /// Stops the indexer and waits for it.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take()
            && {
                thread.thread().unpark();
                thread.join().is_err()
            }
        {
            tracing::error!("search indexer panicked");
        }
    }
}

impl Drop for Indexer {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.halt();
        }
    }
}

fn run(
    store: &Arc<Store>,
    index: &SearchIndex,
    mut writer: IndexWriter,
    stop: &AtomicBool,
    until: Option<Seq>,
) {
    let mut tail = Tailer::new(store.clone(), 1, until, "search indexer");
    let mut indexed: Seq = 0;
    let mut committed: Seq = 0;
    let mut last_commit = Instant::now();
    while !stop.load(Ordering::Acquire) {
        // Caught up means: up to the head as it was before this chunk (a head that moved
        // meanwhile does not hold back the commit).
        let limit = tail.limit();
        if tail.position() <= limit {
            match tail.next_chunk(CHUNK) {
                Ok(entries) => {
                    for (seq, bytes) in entries {
                        match decode_event(&bytes) {
                            Ok(event) => {
                                if let Err(error) = index.index_event(&writer, store, event) {
                                    tracing::error!(seq, %error, "search indexing failed");
                                }
                            }
                            Err(error) => tracing::error!(seq, %error, "undecodable entry"),
                        }
                        indexed = seq;
                    }
                }
                Err(retry) => {
                    std::thread::sleep(retry.after);
                    continue;
                }
            }
        }
        let caught_up = tail.position() > limit;
        if indexed > committed && (caught_up || last_commit.elapsed() >= COMMIT_EVERY) {
            match writer.commit().and_then(|_| index.reader.reload()) {
                Ok(()) => {
                    committed = indexed;
                    index.watermark.advance(committed);
                }
                Err(error) => tracing::error!(%error, "search commit failed"),
            }
            last_commit = Instant::now();
        }
        if let Some(target) = until
            && index.watermark.get() >= target.min(store.head().get())
        {
            break;
        }
        if caught_up {
            std::thread::park_timeout(POLL);
        }
    }
}
