//! Whole answers to a home-timeline query written without async-graphql's executor.
//!
//! Seed 001's timeline query is the request clients send most, always with the same text. Once
//! its document is known to pass validation (`documents.rs`), an answer built by the executor
//! costs, beyond the page's reads, a `Value` tree (an `IndexMap` per object), its
//! serialization and its drop, and the executor's own futures around the one root field:
//! about a third of the server's CPU per query, measured. So a request whose operation is a
//! query that declares no variables and selects exactly one field, `timeline`, with literal
//! arguments and no directives, is answered here: the same engine read and prefetch as the
//! resolver's, then the page written straight to JSON by the one-pass walk of
//! `page_values.rs` (which also answers inside the executor). Everything else — another root
//! field, variables, a refused argument, an engine error, a field or shape the walk does not
//! answer — returns a [`Fallback`], and the request goes through the executor, which answers
//! it (and any error) as it always does; nothing here ever writes an error. A document whose shape
//! falls back is not tried here again (`documents.rs`), and what the document alone decides
//! is checked before anything is read. Tests compare both paths byte for byte.

use super::feed::page_args;
use super::loaders::Loaders;
use super::page_values::{Object, ObjectJson, Page, PagePath, Query, literal};
use super::scalars::Seq;
use super::state::GraphqlState;
use crate::auth::RequestAuth;
use crate::http::json::PAGE_BYTES;
use async_graphql::Positioned;
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, Field, OperationType, Selection,
};

/// Why a request went to the executor instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fallback {
    /// The document's shape, whatever the data: the same document always falls back (its
    /// caller stops trying it here).
    Shape,
    /// This request (not signed in, an engine error, a value not prefetched).
    Request,
}

/// The answer's JSON text (`{"data":{...}}`), or why the executor must answer. Everything
/// the document alone decides is checked before the engine is read.
pub async fn answer(
    state: &GraphqlState,
    auth: &RequestAuth,
    document: &ExecutableDocument,
    operation_name: Option<&str>,
) -> Result<Vec<u8>, Fallback> {
    let field = timeline_field(document, operation_name).ok_or(Fallback::Shape)?;
    let arguments = (|| {
        let limit: Option<i32> = literal(&field.node, "limit")?;
        let cursor: Option<String> = literal(&field.node, "cursor")?;
        let after: Option<Seq> = literal(&field.node, "after")?;
        page_args(limit, cursor, after).ok()
    })();
    let (cursor, limit, after) = arguments.ok_or(Fallback::Shape)?;
    let query = Query::Constant(document);
    let selection = &field.node.selection_set.node;
    let wanted = query.wanted(selection).ok_or(Fallback::Shape)?;
    let me = auth.principal.ok_or(Fallback::Request)?.user;
    let page = state
        .engine
        .timeline(me, cursor, limit, after)
        .await
        .map_err(|_| Fallback::Request)?;
    let loaders = Loaders::new(state.engine.clone(), state.loader_metrics.clone(), Some(me));
    loaders
        .prefetch_page(&page.posts, &wanted)
        .await
        .map_err(|_| Fallback::Request)?;
    let body = loaders.with_ready(|ready| {
        let page_walk = Page::new(query, ready);
        let timeline = ObjectJson {
            page: &page_walk,
            selection,
            object: Object::Timeline(&page),
        };
        let mut body = Vec::with_capacity(PAGE_BYTES);
        body.extend_from_slice(b"{\"data\":{");
        let written = serde_json::to_writer(&mut body, field.node.response_key().node.as_str())
            .and_then(|()| {
                body.push(b':');
                serde_json::to_writer(&mut body, &timeline)
            });
        match written {
            Ok(()) => {
                body.extend_from_slice(b"}}");
                Ok(body)
            }
            Err(_) if page_walk.missed_data() => Err(Fallback::Request),
            Err(_) => Err(Fallback::Shape),
        }
    })?;
    loaders.count_page(PagePath::Answer);
    Ok(body)
}

/// The operation's one root field, if the operation is a query without variables or
/// directives that selects `timeline` alone. The operation is chosen as async-graphql
/// chooses it.
fn timeline_field<'q>(
    document: &'q ExecutableDocument,
    operation_name: Option<&str>,
) -> Option<&'q Positioned<Field>> {
    let operation = match (&document.operations, operation_name) {
        (DocumentOperations::Single(operation), None) => operation,
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name)?,
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
            operations.values().next()?
        }
        _ => return None,
    };
    let operation = &operation.node;
    if operation.ty != OperationType::Query
        || !operation.variable_definitions.is_empty()
        || !operation.directives.is_empty()
    {
        return None;
    }
    let [item] = operation.selection_set.node.items.as_slice() else {
        return None;
    };
    match &item.node {
        Selection::Field(field)
            if field.node.name.node == "timeline" && field.node.directives.is_empty() =>
        {
            Some(field)
        }
        _ => None,
    }
}
