//! Full-text search (tantivy) over posts, users and chat messages, maintained from the log:
//! the index here, the reads that resolve its hits in `reads.rs`.
//!
//! One indexer thread tails the durable log like the dataflow does and keeps a tantivy index:
//! a post, message or user is a document keyed by the seq of the event that created it (which
//! also names its kind and id, so the index stores nothing but terms, that seq and a hash of
//! the text); edits replace it, deletes remove it, profile changes re-read the user's record.
//! The live index is on disk (`<data>/search/`) and each commit carries a checkpoint: the seq
//! it covers and the digest of its documents, written atomically with it by tantivy. At start
//! the indexer resumes after that seq, so start-up does not re-index the history; a commit
//! torn by a crash is not there, and the log after the checkpoint is indexed again (nothing is
//! lost or indexed twice). An index of another format, or ahead of the log (a `buffered` log
//! that lost its tail in an OS crash), is dropped and rebuilt. `girok replay` builds one in
//! memory from seq 1. The index has a watermark like every view; a search with `after: seq`
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
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tantivy::collector::{DocSetCollector, TopDocs};
use tantivy::query::{BooleanQuery, Occur, Query, QueryParser, TermQuery};
use tantivy::schema::{FAST, Field, INDEXED, IndexRecordOption, STRING, Schema, TEXT};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term, doc};

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
/// Where the live index is kept, inside the data directory.
pub const SEARCH_DIR: &str = "search";
/// The index's format: the schema and what a document holds. An index of another format is
/// rebuilt from the log.
const FORMAT: u32 = 1;

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
    /// A user document's user id (a profile change finds the document by it).
    user: Field,
    text: Field,
    /// xxh3 of the text: what a replaced or removed document takes out of the digest.
    hash: Field,
}

impl Fields {
    fn schema() -> (Schema, Fields) {
        let mut schema = Schema::builder();
        let fields = Fields {
            seq: schema.add_u64_field("seq", INDEXED | FAST),
            kind: schema.add_text_field("kind", STRING),
            room: schema.add_text_field("room", STRING),
            user: schema.add_text_field("user", STRING),
            text: schema.add_text_field("text", TEXT),
            hash: schema.add_u64_field("hash", FAST),
        };
        (schema.build(), fields)
    }
}

/// What a commit of the index covers, kept by tantivy with the commit (its payload).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Checkpoint {
    format: u32,
    /// The last seq whose effect the commit holds.
    seq: Seq,
    /// The digest of the documents it holds.
    digest: Digest,
}

/// What changed since the last commit, which the committed index (all that lookups can see)
/// does not show yet, and the digest of everything indexed so far.
#[derive(Default)]
struct Pending {
    /// Documents added (their text's hash) or removed (`None`) since the last commit.
    docs: HashMap<Seq, Option<u64>>,
    /// Users registered since the last commit, with their registration seq.
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
    /// The seq the index held when it was opened: indexing resumes after it.
    resumed_at: Seq,
    pending: Mutex<Pending>,
}

impl SearchIndex {
    /// An empty in-memory index (replay).
    pub fn new() -> Result<Self> {
        let (schema, fields) = Fields::schema();
        Self::with(Index::create_in_ram(schema), fields, Checkpoint::default())
    }

    /// The index kept in `dir`, as of its last commit; a missing one, one of another format
    /// or one ahead of `log_head` (the log lost a tail that the index had covered) is
    /// replaced by an empty one.
    pub fn open(dir: &Path, log_head: Seq) -> Result<Self> {
        let (schema, fields) = Fields::schema();
        let existing = Index::open_in_dir(dir).ok().and_then(|index| {
            let metas = index.load_metas().ok()?;
            let checkpoint: Checkpoint = serde_json::from_str(metas.payload.as_deref()?).ok()?;
            let usable = index.schema() == schema
                && checkpoint.format == FORMAT
                && checkpoint.seq <= log_head;
            usable.then_some((index, checkpoint))
        });
        let (index, checkpoint) = match existing {
            Some(found) => found,
            None => {
                if dir.exists() {
                    tracing::info!(dir = %dir.display(), "search index rebuilt from the log");
                    std::fs::remove_dir_all(dir).map_err(|e| io_error(dir, e))?;
                }
                std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
                let index = Index::create_in_dir(dir, schema).map_err(search_error)?;
                (index, Checkpoint::default())
            }
        };
        tracing::info!(seq = checkpoint.seq, "search index opened");
        Self::with(index, fields, checkpoint)
    }

    fn with(index: Index, fields: Fields, checkpoint: Checkpoint) -> Result<Self> {
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(search_error)?;
        let watermark = Watermark::default();
        watermark.advance(checkpoint.seq);
        Ok(Self {
            index,
            reader,
            fields,
            watermark,
            resumed_at: checkpoint.seq,
            pending: Mutex::new(Pending {
                digest: checkpoint.digest,
                ..Pending::default()
            }),
        })
    }

    /// The seq the index held when it was opened (indexing resumed after it).
    pub fn resumed_at(&self) -> Seq {
        self.resumed_at
    }

    /// Documents indexed and the digest of their seqs and texts.
    pub fn digest(&self) -> Digest {
        self.pending.lock().digest
    }

    /// Makes everything added since the last commit searchable and durable, with the
    /// checkpoint `seq` (every event up to it is indexed).
    fn commit(&self, writer: &mut IndexWriter, seq: Seq) -> Result<()> {
        let digest = self.pending.lock().digest;
        let payload = serde_json::to_string(&Checkpoint {
            format: FORMAT,
            seq,
            digest,
        })
        .map_err(|e| Error::Internal(format!("search checkpoint: {e}")))?;
        let mut prepared = writer.prepare_commit().map_err(search_error)?;
        prepared.set_payload(&payload);
        prepared.commit().map_err(search_error)?;
        self.reader.reload().map_err(search_error)?;
        // The committed index shows all of it now.
        let mut pending = self.pending.lock();
        pending.docs.clear();
        pending.users.clear();
        Ok(())
    }

    /// A fast field of the one committed document matching `term`, if any.
    fn committed(&self, term: Term, fast: &str) -> Result<Option<u64>> {
        let searcher = self.reader.searcher();
        let query = TermQuery::new(term, IndexRecordOption::Basic);
        let found = searcher
            .search(&query, &DocSetCollector)
            .map_err(search_error)?;
        match found.into_iter().next() {
            Some(address) => Ok(searcher
                .segment_reader(address.segment_ord)
                .fast_fields()
                .u64(fast)
                .map_err(search_error)?
                .first(address.doc_id)),
            None => Ok(None),
        }
    }

    /// The hash of the text of the document keyed `seq`, if it is in the index.
    fn text_hash(&self, seq: Seq) -> Result<Option<u64>> {
        if let Some(pending) = self.pending.lock().docs.get(&seq) {
            return Ok(*pending);
        }
        self.committed(Term::from_field_u64(self.fields.seq, seq), "hash")
    }

    /// The registration seq of `user` (the key of their document), if indexed.
    fn user_document(&self, user: UserId) -> Result<Option<Seq>> {
        if let Some(seq) = self.pending.lock().users.get(&user) {
            return Ok(Some(*seq));
        }
        self.committed(
            Term::from_field_text(self.fields.user, &user.to_string()),
            "seq",
        )
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

    /// Adds the document of what the event at `seq` created (nothing is indexed under a new
    /// seq yet: indexing resumes after the last commit).
    fn add(&self, writer: &IndexWriter, seq: Seq, document: Document<'_>) -> Result<()> {
        let f = self.fields;
        let hash = xxhash_rust::xxh3::xxh3_64(document.text.as_bytes());
        let mut indexed: TantivyDocument = doc!(
            f.seq => seq,
            f.kind => document.kind.name(),
            f.text => document.text,
            f.hash => hash,
        );
        if let Some(room) = document.room {
            indexed.add_text(f.room, room.to_string());
        }
        if let Some(user) = document.user {
            indexed.add_text(f.user, user.to_string());
        }
        writer.add_document(indexed).map_err(search_error)?;
        let mut pending = self.pending.lock();
        pending.digest.apply(&(seq, hash), 1);
        pending.docs.insert(seq, Some(hash));
        Ok(())
    }

    /// Replaces the document keyed `seq` (an edit).
    fn replace(&self, writer: &IndexWriter, seq: Seq, document: Document<'_>) -> Result<()> {
        self.remove(writer, seq)?;
        self.add(writer, seq, document)
    }

    fn remove(&self, writer: &IndexWriter, seq: Seq) -> Result<()> {
        if let Some(hash) = self.text_hash(seq)? {
            writer.delete_term(Term::from_field_u64(self.fields.seq, seq));
            let mut pending = self.pending.lock();
            pending.digest.apply(&(seq, hash), -1);
            pending.docs.insert(seq, None);
        }
        Ok(())
    }

    /// Applies one event to the index.
    fn index_event(&self, writer: &IndexWriter, store: &Store, event: Event) -> Result<()> {
        match event.payload {
            Payload::PostCreated { content, .. } => {
                self.add(writer, event.seq, Document::post(&content))
            }
            Payload::PostEdited {
                post_seq, content, ..
            } => self.replace(writer, post_seq, Document::post(&content)),
            Payload::PostDeleted { post_seq, .. } => self.remove(writer, post_seq),
            Payload::MessageSent { room, body, .. } => {
                self.add(writer, event.seq, Document::message(room, &body))
            }
            Payload::MessageEdited {
                room,
                message_seq,
                body,
                ..
            } => self.replace(writer, message_seq, Document::message(room, &body)),
            Payload::MessageDeleted { message_seq, .. } => self.remove(writer, message_seq),
            Payload::UserRegistered {
                user,
                username,
                display_name,
                ..
            } => {
                self.pending.lock().users.insert(user, event.seq);
                let text = user_text(&username, &display_name, "");
                self.add(writer, event.seq, Document::user(user, &text))
            }
            Payload::ProfileUpdated { user, .. } => {
                let registered = self.user_document(user)?;
                // The record has every field as of now (at or after this event).
                let record: Option<UserRecord> =
                    record(store.get(Table::UseridUser, user.as_bytes())?, "user")?;
                if let (Some(seq), Some(r)) = (registered, record) {
                    let text = user_text(&r.username, &r.display_name, &r.bio);
                    self.replace(writer, seq, Document::user(user, &text))?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// What one document holds besides its key.
struct Document<'a> {
    kind: SearchKind,
    room: Option<RoomId>,
    user: Option<UserId>,
    text: &'a str,
}

impl<'a> Document<'a> {
    fn post(text: &'a str) -> Self {
        Self {
            kind: SearchKind::Post,
            room: None,
            user: None,
            text,
        }
    }

    fn message(room: RoomId, text: &'a str) -> Self {
        Self {
            kind: SearchKind::Message,
            room: Some(room),
            user: None,
            text,
        }
    }

    fn user(user: UserId, text: &'a str) -> Self {
        Self {
            kind: SearchKind::User,
            room: None,
            user: Some(user),
            text,
        }
    }
}

fn user_text(username: &str, display_name: &str, bio: &str) -> String {
    format!("{username} {display_name} {bio}")
}

fn search_error(e: tantivy::TantivyError) -> Error {
    Error::Internal(format!("search index: {e}"))
}

fn io_error(dir: &Path, e: std::io::Error) -> Error {
    Error::Internal(format!("search index directory {}: {e}", dir.display()))
}

/// The running indexer thread.
pub struct Indexer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Indexer {
    /// Starts indexing `store`'s log into `index` after the seq the index holds; with
    /// `until`, stops once the index reflects that seq (replay).
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
    let mut tail = Tailer::new(store.clone(), index.resumed_at + 1, until, "search indexer");
    let mut indexed: Seq = index.resumed_at;
    let mut committed: Seq = index.resumed_at;
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
            match index.commit(&mut writer, indexed) {
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

#[cfg(test)]
mod checkpoint_tests {
    use super::*;

    fn writer(index: &SearchIndex) -> IndexWriter {
        index.index.writer_with_num_threads(1, 15_000_000).unwrap()
    }

    fn found(index: &SearchIndex, word: &str) -> Vec<Seq> {
        let (hits, _) = index.search(word, &[], &[], 0, 10).unwrap();
        hits.into_iter().map(|hit| hit.seq).collect()
    }

    #[test]
    fn a_reopened_index_resumes_at_its_commit_and_one_ahead_of_the_log_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("search");
        let index = SearchIndex::open(&path, 0).unwrap();
        assert_eq!((index.resumed_at(), index.watermark.get()), (0, 0));
        let mut w = writer(&index);
        index.add(&w, 3, Document::post("hello world")).unwrap();
        index.add(&w, 4, Document::post("other words")).unwrap();
        index.commit(&mut w, 5).unwrap();
        // Not committed: gone after a reopen, as after a crash.
        index.add(&w, 6, Document::post("hello again")).unwrap();
        let digest_at_commit = {
            let mut d = Digest::default();
            d.apply(&(3u64, xxhash_rust::xxh3::xxh3_64(b"hello world")), 1);
            d.apply(&(4u64, xxhash_rust::xxh3::xxh3_64(b"other words")), 1);
            d
        };
        drop(w);
        drop(index);

        let index = SearchIndex::open(&path, 9).unwrap();
        assert_eq!((index.resumed_at(), index.watermark.get()), (5, 5));
        assert_eq!(index.digest(), digest_at_commit);
        assert_eq!(found(&index, "hello"), vec![3]);
        // A committed document is found, replaced and removed through the committed index.
        let mut w = writer(&index);
        index
            .replace(&w, 3, Document::post("goodbye world"))
            .unwrap();
        index.remove(&w, 4).unwrap();
        index.remove(&w, 4).unwrap();
        index.commit(&mut w, 7).unwrap();
        assert_eq!(found(&index, "hello"), Vec::<Seq>::new());
        assert_eq!(found(&index, "goodbye"), vec![3]);
        assert_eq!(found(&index, "words"), Vec::<Seq>::new());
        assert_eq!(index.digest().entries, 1);
        drop(w);
        drop(index);

        // The log holds less than the index covers (a buffered log lost its tail): rebuilt.
        let index = SearchIndex::open(&path, 6).unwrap();
        assert_eq!(index.resumed_at(), 0);
        assert_eq!(index.digest(), Digest::default());
        assert_eq!(found(&index, "goodbye"), Vec::<Seq>::new());
    }

    #[test]
    fn an_index_of_another_format_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("search");
        let index = SearchIndex::open(&path, 0).unwrap();
        let mut w = writer(&index);
        index.add(&w, 1, Document::post("old format")).unwrap();
        let mut prepared = w.prepare_commit().unwrap();
        prepared.set_payload(r#"{"format":0,"seq":1,"digest":{"entries":1,"hash":7}}"#);
        prepared.commit().unwrap();
        drop(w);
        drop(index);
        let index = SearchIndex::open(&path, 5).unwrap();
        assert_eq!(index.resumed_at(), 0);
        assert_eq!(found(&index, "format"), Vec::<Seq>::new());
    }
}
