//! Search reads: runs a query on the search index with the searcher's rooms as the message
//! filter, then resolves each hit to what it names (a live post, a user, a message as of its
//! latest edit) in one pass over the log, dropping hits deleted since they were indexed.

use super::{SearchHit, SearchKind};
use crate::accounts::UserView;
use crate::accounts::read_user;
use crate::chat::message_record::message_deleted;
use crate::chat::{Message, message_of};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::feed::{Post, post_of};
use crate::limits::{MAX_FEED_PAGE_SIZE, MAX_SEARCH_DEPTH, MAX_SEARCH_QUERY_CHARS};
use crate::log_reads::{page_size, read_event};
use girok_schemas::{Payload, Seq, UserId};

/// A search request.
#[derive(Clone, Debug, Default)]
pub struct SearchQuery {
    pub text: String,
    /// What to search (default: posts, users and messages).
    pub kind: Option<SearchKind>,
    /// Page size, 1 to [`MAX_FEED_PAGE_SIZE`]; default 20.
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Read-your-writes: wait until the index reflects this seq.
    pub after: Option<Seq>,
}

/// One result.
#[derive(Clone, Debug)]
pub enum SearchResult {
    Post(Post),
    User(UserView),
    Message(Message),
}

/// A page of results, best first.
#[derive(Clone, Debug)]
pub struct SearchPage {
    pub results: Vec<SearchResult>,
    pub next_cursor: Option<String>,
}

impl Engine {
    /// Full-text search over posts, users and the messages of the searcher's rooms.
    pub async fn search(&self, searcher: UserId, query: SearchQuery) -> Result<SearchPage> {
        let text = query.text.trim().to_owned();
        if text.is_empty() {
            return Err(Error::invalid("query", "must not be empty"));
        }
        if text.chars().count() > MAX_SEARCH_QUERY_CHARS {
            return Err(Error::invalid(
                "query",
                format!("at most {MAX_SEARCH_QUERY_CHARS} characters"),
            ));
        }
        let limit = page_size(query.limit, MAX_FEED_PAGE_SIZE)?;
        let offset = match &query.cursor {
            None => 0,
            Some(raw) => raw
                .parse::<usize>()
                .map_err(|_| Error::invalid("after", "not a cursor this server gave"))?,
        };
        // A forged cursor can be any number: no overflow.
        if offset.saturating_add(limit) > MAX_SEARCH_DEPTH {
            return Err(Error::invalid(
                "after",
                format!("results are paged up to {MAX_SEARCH_DEPTH} deep; refine the query"),
            ));
        }
        self.wait_for_search(query.after).await?;
        let rooms: Vec<_> = self
            .views
            .memberships
            .rooms_of(searcher)
            .into_iter()
            .map(|(room, _)| room)
            .collect();
        let kinds: Vec<SearchKind> = query.kind.into_iter().collect();
        let index = self.search_index().clone();
        let (hits, more) = self
            .blocking(move |_| index.search(&text, &kinds, &rooms, offset, limit))
            .await?;
        let results = self.resolve_hits(searcher, hits).await?;
        Ok(SearchPage {
            results,
            next_cursor: more.then(|| (offset + limit).to_string()),
        })
    }

    /// Each hit is the seq of the event that created the match: a post, a message or a
    /// registration. One blocking pass reads each event once and builds what it names,
    /// dropping what was deleted since it was indexed.
    async fn resolve_hits(
        &self,
        reader: UserId,
        hits: Vec<SearchHit>,
    ) -> Result<Vec<SearchResult>> {
        let views = self.views.clone();
        self.blocking(move |store| {
            let mut results = Vec::with_capacity(hits.len());
            for hit in hits {
                let event = read_event(store, hit.seq)?;
                let result = match &event.payload {
                    Payload::PostCreated { .. } => match post_of(store, &views, reader, event) {
                        Ok(post) => SearchResult::Post(post),
                        Err(Error::PostNotFound(_)) => continue,
                        Err(other) => return Err(other),
                    },
                    Payload::UserRegistered { user, .. } => match read_user(store, *user) {
                        Ok(user) => SearchResult::User(user),
                        Err(Error::UserNotFound) => continue,
                        Err(other) => return Err(other),
                    },
                    Payload::MessageSent { .. } => {
                        if message_deleted(store.as_ref(), &event)? {
                            continue;
                        }
                        let edit = views.room_history.latest_edit(hit.seq);
                        SearchResult::Message(message_of(store, event, edit)?)
                    }
                    _ => continue,
                };
                results.push(result);
            }
            Ok(results)
        })
        .await
    }
}
