//! Prepared GraphQL documents. Clients send the same few query texts again and again, so a
//! text (with its operation name) that ran once without any error is kept parsed: parsing was
//! an eighth of a timeline request's CPU. Only documents that passed validation are kept, so
//! the depth and complexity limits bound what each costs in memory. Once such a document ran
//! without variables and without errors under full validation, later requests with it and no
//! variables run under async-graphql's fast validation, which still enforces the limits and
//! skips the rules whose answer then depends on the document and the schema alone (known to
//! pass). Requests with variables are always validated in full: validation also checks the
//! variables' values. Bounded by the total length of the texts kept.

use async_graphql::Request;
use async_graphql::parser::types::ExecutableDocument;
use quick_cache::Weighter;
use quick_cache::sync::Cache;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Most bytes of query text kept (their parsed documents take a few times that).
pub const DOCUMENT_CACHE_BYTES: u64 = 4 << 20;

/// A parsed document, whether it passed full validation without variables, and whether its
/// shape lets `direct` answer it.
pub struct Prepared {
    document: ExecutableDocument,
    validated: AtomicBool,
    direct: AtomicBool,
}

impl Prepared {
    pub fn document(&self) -> &ExecutableDocument {
        &self.document
    }

    /// A request with this document and no variables ran under full validation without any
    /// error.
    pub fn validated(&self) -> bool {
        self.validated.load(Ordering::Relaxed)
    }

    pub fn mark_validated(&self) {
        self.validated.store(true, Ordering::Relaxed);
    }

    /// Whether `direct` may answer it (until its shape was found to fall back).
    pub fn direct(&self) -> bool {
        self.direct.load(Ordering::Relaxed)
    }

    pub fn mark_not_direct(&self) {
        self.direct.store(false, Ordering::Relaxed);
    }
}

/// A document's query text and operation name.
pub type Key = (String, Option<String>);

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
    pub fn key(request: &Request) -> Key {
        (request.query.clone(), request.operation_name.clone())
    }

    pub fn get(&self, key: &Key) -> Option<Arc<Prepared>> {
        self.cache.get(key)
    }

    /// Keeps a document that ran without errors (`validated`: and without variables).
    pub fn remember(&self, key: Key, document: ExecutableDocument, validated: bool) {
        let prepared = Prepared {
            document,
            validated: AtomicBool::new(validated),
            direct: AtomicBool::new(true),
        };
        self.cache.insert(key, Arc::new(prepared));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_kept_by_text_and_operation() {
        let documents = Documents::default();
        let mut request = Request::new("{ a }");
        let key = Documents::key(&request);
        assert!(documents.get(&key).is_none());
        let document = request.parsed_query().unwrap().clone();
        documents.remember(key.clone(), document, false);
        let prepared = documents.get(&key).unwrap();
        assert!(!prepared.validated());
        prepared.mark_validated();
        assert!(documents.get(&key).unwrap().validated());
        let named = Documents::key(&Request::new("{ a }").operation_name("A"));
        assert!(documents.get(&named).is_none());
    }
}
