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
//! answer — returns `None`, and the request goes through the executor, which answers it (and
//! any error) as it always does; nothing here ever writes an error. Tests compare both paths
//! byte for byte.

use super::args::page_size;
use super::feed::cursor_arg;
use super::loaders::Loaders;
use super::page_values::{Object, ObjectJson, Page, PagePath, Query};
use super::scalars::Seq;
use super::state::GraphqlState;
use crate::auth::RequestAuth;
use async_graphql::InputType;
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, Field, OperationType, Selection,
};
use async_graphql::{Positioned, Value};
use girok_engine::limits::MAX_FEED_PAGE_SIZE;

/// The answer's JSON text (`{"data":{...}}`), or `None` for the executor to answer.
pub async fn answer(
    state: &GraphqlState,
    auth: &RequestAuth,
    document: &ExecutableDocument,
    operation_name: Option<&str>,
) -> Option<Vec<u8>> {
    let field = timeline_field(document, operation_name)?;
    let me = auth.principal?.user;
    let limit: Option<i32> = argument(&field.node, "limit")?;
    let cursor: Option<String> = argument(&field.node, "cursor")?;
    let after: Option<Seq> = argument(&field.node, "after")?;
    let page = state
        .engine
        .timeline(
            me,
            cursor_arg(cursor).ok()?,
            page_size(limit, MAX_FEED_PAGE_SIZE).ok()?,
            after.map(|s| s.0),
        )
        .await
        .ok()?;
    let query = Query::Constant(document);
    let selection = &field.node.selection_set.node;
    let wanted = query.wanted(selection)?;
    let loaders = Loaders::new(state.engine.clone(), state.loader_metrics.clone(), Some(me));
    loaders.prefetch_page(&page.posts, &wanted).await.ok()?;
    let body = loaders.with_ready(|ready| {
        let timeline = ObjectJson {
            page: &Page { query, ready },
            selection,
            object: Object::Timeline(&page),
        };
        let mut body = Vec::with_capacity(16 << 10);
        body.extend_from_slice(b"{\"data\":{");
        serde_json::to_writer(&mut body, field.node.response_key().node.as_str()).ok()?;
        body.push(b':');
        serde_json::to_writer(&mut body, &timeline).ok()?;
        body.extend_from_slice(b"}}");
        Some(body)
    })?;
    loaders.count_page(PagePath::Answer);
    Some(body)
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

/// A literal argument coerced as the resolver's parameter is (absent: `T`'s absence).
fn argument<T: InputType>(field: &Field, name: &str) -> Option<T> {
    let value: Option<Value> = match field.get_argument(name) {
        Some(value) => Some(value.node.clone().into_const()?),
        None => None,
    };
    T::parse(value).ok()
}
