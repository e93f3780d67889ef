//! Prepared GraphQL documents. Clients send the same few query texts again and again, so each
//! text (with its operation name) is parsed once: parsing was an eighth of a timeline request's
//! CPU. Once a request with a document and no variables ran without any error under full
//! validation, later such requests run under async-graphql's fast validation, which still
//! enforces the depth and complexity limits and skips the rules whose answer then depends on
//! the document and the schema alone (already known to pass). Requests with variables are
//! always validated in full: validation also checks the variables' values. Bounded by the
//! total length of the texts kept.

use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Request, ServerError};
use quick_cache::Weighter;
use quick_cache::sync::Cache;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Most bytes of query text kept (with the parsed documents, about five times that in memory).
pub const DOCUMENT_CACHE_BYTES: u64 = 4 << 20;

/// A parsed document and whether it passed full validation.
pub struct Prepared {
    document: ExecutableDocument,
    validated: AtomicBool,
}

impl Prepared {
    /// A request with this document and no variables ran under full validation without any
    /// error.
    pub fn validated(&self) -> bool {
        self.validated.load(Ordering::Relaxed)
    }

    pub fn mark_validated(&self) {
        self.validated.store(true, Ordering::Relaxed);
    }
}

type Key = (String, Option<String>);

#[derive(Clone)]
struct TextWeight;

impl Weighter<Key, Arc<Prepared>> for TextWeight {
    fn weight(&self, (query, operation): &Key, _: &Arc<Prepared>) -> u64 {
        (query.len() + operation.as_ref().map_or(0, String::len) + 64) as u64
    }
}

/// The cache of prepared documents.
pub struct Documents {
    cache: Cache<Key, Arc<Prepared>, TextWeight>,
}

impl Default for Documents {
    fn default() -> Self {
        Self {
            cache: Cache::with_weighter(4096, DOCUMENT_CACHE_BYTES, TextWeight),
        }
    }
}

impl Documents {
    /// Gives `request` its parsed document (from the cache, or parsed now and kept); a text
    /// that does not parse is an error and is not kept.
    pub fn prepare(&self, request: &mut Request) -> Result<Arc<Prepared>, ServerError> {
        let key = (request.query.clone(), request.operation_name.clone());
        if let Some(prepared) = self.cache.get(&key) {
            request.set_parsed_query(prepared.document.clone());
            return Ok(prepared);
        }
        let prepared = Arc::new(Prepared {
            document: request.parsed_query()?.clone(),
            validated: AtomicBool::new(false),
        });
        self.cache.insert(key, prepared.clone());
        Ok(prepared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_is_parsed_once_and_broken_ones_are_not_kept() {
        let documents = Documents::default();
        let mut first = Request::new("{ a }");
        let prepared = documents.prepare(&mut first).unwrap();
        assert!(!prepared.validated());
        prepared.mark_validated();
        let mut again = Request::new("{ a }");
        assert!(documents.prepare(&mut again).unwrap().validated());
        let mut named = Request::new("{ a }").operation_name("A");
        assert!(!documents.prepare(&mut named).unwrap().validated());
        let mut broken = Request::new("{ a ");
        assert!(documents.prepare(&mut broken).is_err());
        assert_eq!(documents.cache.len(), 2);
    }
}
