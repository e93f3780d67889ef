//! The index itself: its schema, its checkpoint (the seq and digest a commit covers, kept by
//! tantivy with the commit), opening it from disk (or rebuilding it), the lookups of committed
//! documents that replacing and removing need, the query, and what each event does to it.

use super::{SearchHit, SearchKind, search_error};
use crate::error::{Error, Result};
use crate::records::record;
use crate::views::{Digest, Watermark};
use girok_schemas::proto::UserRecord;
use girok_schemas::{Event, Payload, RoomId, Seq, UserId};
use girok_storage::{Store, Table};
use parking_lot::Mutex;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use tantivy::collector::{DocSetCollector, TopDocs};
use tantivy::query::{BooleanQuery, Occur, Query, QueryParser, TermQuery};
use tantivy::schema::{FAST, Field, INDEXED, IndexRecordOption, STRING, Schema, TEXT};
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyDocument, Term, doc,
};

/// The index's format: the schema and what a document holds. An index of another format is
/// rebuilt from the log.
const FORMAT: u32 = 1;
/// Memory the tantivy writer may buffer before it flushes a segment.
pub const WRITER_BYTES: usize = 32 * 1024 * 1024;

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
pub(super) struct Checkpoint {
    format: u32,
    /// The last seq whose effect the commit holds.
    pub(super) seq: Seq,
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
    /// Commits since the index was opened (`girok_search_commits`).
    commits: Gauge,
}

impl SearchIndex {
    /// An empty in-memory index (replay).
    pub fn new() -> Result<Self> {
        let (schema, fields) = Fields::schema();
        let index = Index::create_in_ram(schema);
        let reader = reader(&index)?;
        Ok(Self::with(index, reader, fields, Checkpoint::default()))
    }

    /// The index kept in `dir`, as of its last commit; a missing one, one of another format
    /// or one ahead of `log_head` (the log lost a tail that the index had covered) is
    /// replaced by an empty one.
    pub fn open(dir: &Path, log_head: Seq) -> Result<Self> {
        let (schema, fields) = Fields::schema();
        // A rebuild interrupted by a crash left this behind.
        let removing = dir.with_extension("removing");
        if removing.exists() {
            std::fs::remove_dir_all(&removing).map_err(|e| io_error(&removing, e))?;
        }
        if dir.exists() {
            match Self::existing(dir, &schema, log_head) {
                Ok((index, reader, checkpoint)) => {
                    tracing::info!(seq = checkpoint.seq, "search index opened");
                    return Ok(Self::with(index, reader, fields, checkpoint));
                }
                Err(NotUsable::Failed(error)) => return Err(error),
                Err(NotUsable::Rebuild(why)) => {
                    tracing::warn!(dir = %dir.display(), %why, "search index rebuilt from the log");
                    // Renamed first, so that a crash never leaves half an index under `dir`.
                    std::fs::rename(dir, &removing).map_err(|e| io_error(dir, e))?;
                    std::fs::remove_dir_all(&removing).map_err(|e| io_error(&removing, e))?;
                }
            }
        }
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let index = Index::create_in_dir(dir, schema).map_err(search_error)?;
        let reader = reader(&index)?;
        Ok(Self::with(index, reader, fields, Checkpoint::default()))
    }

    /// The index in `dir` with a reader over its segments, if it is usable as it is; why not
    /// otherwise.
    fn existing(
        dir: &Path,
        schema: &Schema,
        log_head: Seq,
    ) -> std::result::Result<(Index, IndexReader, Checkpoint), NotUsable> {
        let index = Index::open_in_dir(dir).map_err(|e| NotUsable::of("cannot open it", e))?;
        let metas = index
            .load_metas()
            .map_err(|e| NotUsable::of("cannot read its commit", e))?;
        let checkpoint =
            checkpoint(metas.payload.as_deref()).map_err(|e| NotUsable::Rebuild(e.to_string()))?;
        if index.schema() != *schema {
            return Err(NotUsable::Rebuild(
                "its schema differs from this girok's".into(),
            ));
        }
        if checkpoint.format != FORMAT {
            return Err(NotUsable::Rebuild(format!(
                "format {} (this girok: {FORMAT})",
                checkpoint.format
            )));
        }
        if checkpoint.seq > log_head {
            return Err(NotUsable::Rebuild(format!(
                "it covers seq {} but the log ends at {log_head}",
                checkpoint.seq
            )));
        }
        // Opens every segment: a missing or unreadable one is found here, not by a search.
        let reader = open_reader(&index).map_err(|e| NotUsable::of("cannot read it", e))?;
        Ok((index, reader, checkpoint))
    }

    fn with(index: Index, reader: IndexReader, fields: Fields, checkpoint: Checkpoint) -> Self {
        let watermark = Watermark::default();
        watermark.advance(checkpoint.seq);
        Self {
            index,
            reader,
            fields,
            watermark,
            resumed_at: checkpoint.seq,
            pending: Mutex::new(Pending {
                digest: checkpoint.digest,
                ..Pending::default()
            }),
            commits: Gauge::default(),
        }
    }

    /// Registers the index's metrics: the seq it resumed after, and its commits.
    pub fn register_metrics(&self, registry: &mut Registry) {
        let resumed = Gauge::<i64>::default();
        resumed.set(self.resumed_at as i64);
        registry.register(
            "girok_search_resumed_seq",
            "Log seq the on-disk search index held at start (indexing resumed after it)",
            resumed,
        );
        registry.register(
            "girok_search_commits",
            "Commits of the search index since start (rounds that change no document commit nothing)",
            self.commits.clone(),
        );
    }

    /// Whether any document changed since the last commit (a registration adds one too).
    pub(super) fn has_changes(&self) -> bool {
        !self.pending.lock().docs.is_empty()
    }

    /// A writer for the indexer (one indexing thread, [`WRITER_BYTES`] of buffer). Created on
    /// the indexer's thread, so that tantivy's threads inherit its lowered priority.
    pub(super) fn writer(&self) -> Result<IndexWriter> {
        self.index
            .writer_with_num_threads(1, WRITER_BYTES)
            .map_err(search_error)
    }

    /// Forgets every change since the last commit (after the writer went back to it) and
    /// returns that commit's checkpoint, read from the index.
    pub(super) fn reset_to_last_commit(&self) -> Result<Checkpoint> {
        let metas = self.index.load_metas().map_err(search_error)?;
        let checkpoint = checkpoint(metas.payload.as_deref())?;
        *self.pending.lock() = Pending {
            digest: checkpoint.digest,
            ..Pending::default()
        };
        self.reader.reload().map_err(search_error)?;
        Ok(checkpoint)
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
    pub(super) fn commit(&self, writer: &mut IndexWriter, seq: Seq) -> Result<()> {
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
        self.commits.inc();
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
            Some(address) => fast_u64(&searcher, address, fast),
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
            let seq = fast_u64(&searcher, address, "seq")?
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
    pub(super) fn index_event(
        &self,
        writer: &IndexWriter,
        store: &Store,
        event: Event,
    ) -> std::result::Result<(), Failure> {
        let retry = Failure::Retry;
        match event.payload {
            Payload::PostCreated { content, .. } => self
                .add(writer, event.seq, Document::post(&content))
                .map_err(retry),
            Payload::PostEdited {
                post_seq, content, ..
            } => self
                .replace(writer, post_seq, Document::post(&content))
                .map_err(retry),
            Payload::PostDeleted { post_seq, .. } => self.remove(writer, post_seq).map_err(retry),
            Payload::MessageSent { room, body, .. } => self
                .add(writer, event.seq, Document::message(room, &body))
                .map_err(retry),
            Payload::MessageEdited {
                room,
                message_seq,
                body,
                ..
            } => self
                .replace(writer, message_seq, Document::message(room, &body))
                .map_err(retry),
            Payload::MessageDeleted { message_seq, .. } => {
                self.remove(writer, message_seq).map_err(retry)
            }
            Payload::UserRegistered {
                user,
                username,
                display_name,
                ..
            } => {
                self.pending.lock().users.insert(user, event.seq);
                let text = user_text(&username, &display_name, "");
                self.add(writer, event.seq, Document::user(user, &text))
                    .map_err(retry)
            }
            Payload::ProfileUpdated { user, .. } => {
                let registered = self.user_document(user).map_err(retry)?;
                // The record has every field as of now (at or after this event).
                let bytes = store
                    .get(Table::UseridUser, user.as_bytes())
                    .map_err(|e| retry(e.into()))?;
                let record: Option<UserRecord> = record(bytes, "user").map_err(Failure::Skip)?;
                if let (Some(seq), Some(r)) = (registered, record) {
                    let text = user_text(&r.username, &r.display_name, &r.bio);
                    self.replace(writer, seq, Document::user(user, &text))
                        .map_err(retry)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Why an event was not indexed.
#[derive(Debug)]
pub(super) enum Failure {
    /// The event cannot be indexed (a corrupt record): it is skipped, as replay skips it.
    Skip(Error),
    /// The index or the store failed, which may pass: indexing goes back to the last commit
    /// and indexes again from there.
    Retry(Error),
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

/// A document's value of a u64 fast field.
fn fast_u64(searcher: &Searcher, address: DocAddress, field: &str) -> Result<Option<u64>> {
    Ok(searcher
        .segment_reader(address.segment_ord)
        .fast_fields()
        .u64(field)
        .map_err(search_error)?
        .first(address.doc_id))
}

fn reader(index: &Index) -> Result<IndexReader> {
    open_reader(index).map_err(search_error)
}

fn open_reader(index: &Index) -> tantivy::Result<IndexReader> {
    index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .try_into()
}

/// Why an index on disk is not opened as it is.
enum NotUsable {
    /// It is unusable for good (another format, lost or corrupt files): rebuilt from the log.
    Rebuild(String),
    /// Opening it failed in a way that may pass (too many open files, permissions, an I/O
    /// error): the start fails rather than throw the index away.
    Failed(Error),
}

impl NotUsable {
    fn of(what: &str, error: tantivy::TantivyError) -> Self {
        use tantivy::TantivyError as T;
        use tantivy::directory::error::{OpenDirectoryError, OpenReadError};
        let io = match &error {
            T::IoError(io)
            | T::OpenReadError(OpenReadError::IoError { io_error: io, .. })
            | T::OpenDirectoryError(OpenDirectoryError::IoError { io_error: io, .. }) => {
                Some(io.kind())
            }
            T::LockFailure(..) | T::SystemError(_) => Some(std::io::ErrorKind::Other),
            _ => None,
        };
        let lasting = |kind| {
            matches!(
                kind,
                std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::InvalidData
                    | std::io::ErrorKind::UnexpectedEof
            )
        };
        match io {
            Some(kind) if !lasting(kind) => NotUsable::Failed(search_error(error)),
            _ => NotUsable::Rebuild(format!("{what}: {error}")),
        }
    }
}

/// The checkpoint a commit's payload holds.
fn checkpoint(payload: Option<&str>) -> Result<Checkpoint> {
    match payload {
        // Created by this build and never committed (an empty log, a crash before the
        // first commit): usable as it is.
        None => Ok(Checkpoint {
            format: FORMAT,
            ..Checkpoint::default()
        }),
        Some(payload) => serde_json::from_str(payload)
            .map_err(|e| Error::Internal(format!("search checkpoint {payload:?}: {e}"))),
    }
}

fn io_error(dir: &Path, e: std::io::Error) -> Error {
    Error::Internal(format!("search index directory {}: {e}", dir.display()))
}

#[cfg(test)]
mod checkpoint_tests {
    use super::*;

    fn writer(index: &SearchIndex) -> IndexWriter {
        index.writer().unwrap()
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
    fn a_crash_forgets_an_uncommitted_replacement_and_unreadable_segments_are_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("search");
        let index = SearchIndex::open(&path, 0).unwrap();
        let mut w = writer(&index);
        index.add(&w, 3, Document::post("hello world")).unwrap();
        index.commit(&mut w, 3).unwrap();
        let committed = index.digest();
        index
            .replace(&w, 3, Document::post("goodbye world"))
            .unwrap();
        index.add(&w, 4, Document::post("more words")).unwrap();
        w.prepare_commit().unwrap(); // flushed, never committed: as at a crash
        drop(w);
        drop(index);
        let index = SearchIndex::open(&path, 9).unwrap();
        assert_eq!((index.resumed_at(), index.digest()), (3, committed));
        assert_eq!(found(&index, "hello"), vec![3]);
        assert_eq!(found(&index, "goodbye"), Vec::<Seq>::new());
        drop(index);

        // A segment file gone (an OS crash after the commit, a disk error): rebuilt, not a
        // failed start.
        for entry in std::fs::read_dir(&path).unwrap() {
            let file = entry.unwrap().path();
            if file.extension().is_some_and(|e| e == "idx") {
                std::fs::remove_file(file).unwrap();
            }
        }
        let index = SearchIndex::open(&path, 9).unwrap();
        assert_eq!((index.resumed_at(), index.digest()), (0, Digest::default()));
        assert!(!path.with_extension("removing").exists());
    }

    #[test]
    fn going_back_to_the_last_commit_forgets_what_was_indexed_since() {
        let index = SearchIndex::new().unwrap();
        let mut w = writer(&index);
        index.add(&w, 1, Document::post("kept")).unwrap();
        index.commit(&mut w, 2).unwrap();
        let committed = index.digest();
        index.add(&w, 3, Document::post("dropped")).unwrap();
        index.remove(&w, 1).unwrap();
        // What the indexer does after a failure: the writer goes, a new one starts from the
        // last commit.
        drop(w);
        let mut w = writer(&index);
        assert_eq!(index.reset_to_last_commit().unwrap().seq, 2);
        assert_eq!(index.digest(), committed);
        // The removal is forgotten too: the document is found (and removable) again.
        index.commit(&mut w, 2).unwrap();
        assert_eq!(found(&index, "kept"), vec![1]);
        assert_eq!(found(&index, "dropped"), Vec::<Seq>::new());
        index.remove(&w, 1).unwrap();
        assert_eq!(index.digest(), Digest::default());
    }

    #[test]
    fn an_index_never_committed_is_kept_and_only_lasting_open_failures_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("search");
        drop(SearchIndex::open(&path, 0).unwrap());
        // A rebuild would rename the directory away, and this file with it.
        std::fs::write(path.join("kept"), b"").unwrap();
        let index = SearchIndex::open(&path, 0).unwrap();
        assert!(path.join("kept").exists());
        assert_eq!(index.resumed_at(), 0);

        let io = |kind: std::io::ErrorKind| {
            tantivy::TantivyError::IoError(std::sync::Arc::new(std::io::Error::from(kind)))
        };
        let passing = [
            io(std::io::ErrorKind::PermissionDenied),
            io(std::io::ErrorKind::Other),
        ];
        for error in passing {
            assert!(matches!(NotUsable::of("x", error), NotUsable::Failed(_)));
        }
        let lasting = [
            io(std::io::ErrorKind::NotFound),
            io(std::io::ErrorKind::InvalidData),
            tantivy::directory::error::OpenReadError::FileDoesNotExist("x.idx".into()).into(),
        ];
        for error in lasting {
            assert!(matches!(NotUsable::of("x", error), NotUsable::Rebuild(_)));
        }
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
