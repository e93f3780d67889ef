//! A bound on what a GraphQL document may cost before any validation rule runs. Validation
//! (async-graphql's depth and complexity checks among them) walks a document with every
//! fragment spread written out, and a fragment that spreads the one before it twice doubles
//! that walk per fragment: a 1 KB document of 30 such fragments would take minutes of a
//! worker's CPU. This guard counts the written-out size of every operation and fragment with
//! each fragment counted once (memoised), in time linear in the document, and refuses a
//! document past `limits.graphql_max_nodes` or with more than `limits.graphql_max_fragments`
//! fragment definitions with `GRAPHQL_DOCUMENT_TOO_LARGE`. It runs before anything else
//! looks at the parsed document (async-graphql's own nesting check follows every spread too):
//! `POST /graphql` calls [`DocumentGuard::check`] on each document it parses, and `/graphql/ws`
//! executes through [`Guarded`], which checks each request's document first. Neither is an
//! async-graphql extension: with one, every field of every answer resolves through the
//! extension chain (a boxed future and a registry lookup per field).
//! The parser bounds nesting itself, so the counting recursion stays shallow.

use super::GirokSchema;
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{
    Data, ErrorExtensionValues, Executor, Request, Response, ServerError, ServerResult,
};
use futures::stream::{self, BoxStream, StreamExt};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

/// The stable code of a refused document.
pub const TOO_LARGE: &str = "GRAPHQL_DOCUMENT_TOO_LARGE";

/// The guard's limits.
#[derive(Clone, Copy, Debug)]
pub struct DocumentGuard {
    /// Most fields, fragment spreads and inline fragments, every spread written out.
    pub max_nodes: u64,
    /// Most fragment definitions.
    pub max_fragments: usize,
}

/// A schema whose requests pass the guard first (`/graphql/ws`).
#[derive(Clone)]
pub struct Guarded {
    pub schema: GirokSchema,
    pub guard: DocumentGuard,
}

impl Guarded {
    /// The answer to a request whose document the guard refuses. A document that does not
    /// parse is left to the schema, which answers that as it always does.
    fn refusal(&self, request: &mut Request) -> Option<Response> {
        // Parsed once: the request keeps the document for execution.
        let document = request.parsed_query().ok()?;
        let error = self.guard.check(document).err()?;
        Some(Response::from_errors(vec![error]))
    }
}

impl Executor for Guarded {
    fn execute(&self, mut request: Request) -> impl Future<Output = Response> + Send {
        let refusal = self.refusal(&mut request);
        let schema = self.schema.clone();
        async move {
            match refusal {
                Some(refusal) => refusal,
                None => schema.execute(request).await,
            }
        }
    }

    fn execute_stream(
        &self,
        mut request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        match self.refusal(&mut request) {
            Some(refusal) => stream::once(async move { refusal }).boxed(),
            None => Executor::execute_stream(&self.schema, request, session_data),
        }
    }
}

impl DocumentGuard {
    /// Refuses `document` when it is past a limit.
    pub fn check(&self, document: &ExecutableDocument) -> ServerResult<()> {
        if document.fragments.len() > self.max_fragments {
            return Err(too_large(format!(
                "the document defines {} fragments; at most {} are allowed",
                document.fragments.len(),
                self.max_fragments
            )));
        }
        let mut sizes = Sizes {
            document,
            known: HashMap::new(),
            cap: self.max_nodes,
        };
        let mut total = 0u64;
        for (_, operation) in document.operations.iter() {
            total = total.saturating_add(sizes.of_set(&operation.node.selection_set.node));
        }
        for name in document.fragments.keys() {
            total = total.saturating_add(sizes.of_fragment(name.as_str()));
        }
        if total > self.max_nodes {
            return Err(too_large(format!(
                "the document has more than {} fields, fragment spreads and inline fragments \
                 with every fragment spread written out",
                self.max_nodes
            )));
        }
        Ok(())
    }
}

fn too_large(message: String) -> ServerError {
    let mut error = ServerError::new(message, None);
    let mut extensions = ErrorExtensionValues::default();
    extensions.set("code", TOO_LARGE);
    error.extensions = Some(extensions);
    error
}

/// A fragment's written-out size, or that it is being counted (a cycle, which validation
/// refuses on its own; counted as nothing here).
#[derive(Clone, Copy)]
enum Size {
    Counting,
    Known(u64),
}

/// Written-out sizes, each fragment's counted once. Every count stops growing just past
/// `cap`, so sums never overflow and a refused document costs no more than one that passes.
struct Sizes<'a> {
    document: &'a ExecutableDocument,
    known: HashMap<&'a str, Size>,
    cap: u64,
}

impl<'a> Sizes<'a> {
    fn of_fragment(&mut self, name: &'a str) -> u64 {
        match self.known.get(name) {
            Some(Size::Known(size)) => return *size,
            Some(Size::Counting) => return 0,
            None => {}
        }
        let Some((key, fragment)) = self.document.fragments.get_key_value(name) else {
            return 0; // unknown: validation names it
        };
        self.known.insert(key.as_str(), Size::Counting);
        let size = self.of_set(&fragment.node.selection_set.node);
        self.known.insert(key.as_str(), Size::Known(size));
        size
    }

    fn of_set(&mut self, set: &'a SelectionSet) -> u64 {
        let mut size = 0u64;
        for item in &set.items {
            let inner = match &item.node {
                Selection::Field(field) => self.of_set(&field.node.selection_set.node),
                Selection::InlineFragment(inline) => self.of_set(&inline.node.selection_set.node),
                Selection::FragmentSpread(spread) => {
                    self.of_fragment(spread.node.fragment_name.node.as_str())
                }
            };
            size = size.saturating_add(1).saturating_add(inner);
            if size > self.cap {
                return size;
            }
        }
        size
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;

    fn guard() -> DocumentGuard {
        DocumentGuard {
            max_nodes: 100,
            max_fragments: 8,
        }
    }

    /// A document of `levels` fragments, each spreading the one before twice.
    fn doubling(levels: usize) -> String {
        let mut text = format!("query {{ ...F{levels} }}\nfragment F0 on Query {{ __typename }}\n");
        for level in 1..=levels {
            let before = level - 1;
            text.push_str(&format!(
                "fragment F{level} on Query {{ ...F{before} ...F{before} }}\n"
            ));
        }
        text
    }

    #[test]
    fn a_plain_document_passes() {
        let document = parse_query("{ a { b c } ... on Query { d } }").unwrap();
        guard().check(&document).unwrap();
    }

    #[test]
    fn fragments_count_as_written_out() {
        // F0 = 1, F1 = 2 + 2, F2 = 2 + 8: the operation spreads F2 (11), plus every
        // fragment's own size (1 + 6 + 14).
        let fits = parse_query(doubling(2)).unwrap();
        guard().check(&fits).unwrap();
        let bomb = parse_query(doubling(6)).unwrap();
        let error = guard().check(&bomb).unwrap_err();
        let code = error.extensions.unwrap().get("code").cloned();
        assert_eq!(code, Some(TOO_LARGE.into()));
    }

    #[test]
    fn a_deep_bomb_is_refused_at_once() {
        let guard = DocumentGuard {
            max_nodes: 2000,
            max_fragments: 128,
        };
        let bomb = parse_query(doubling(60)).unwrap();
        let started = std::time::Instant::now();
        assert!(guard.check(&bomb).is_err());
        // Written out, this document has 2^60 fields: only counting each fragment once ends.
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn too_many_fragments_are_refused() {
        let document = parse_query(doubling(8)).unwrap();
        let error = guard().check(&document).unwrap_err();
        assert!(error.message.contains("9 fragments"), "{}", error.message);
    }

    const SEEDS: &[&str] = &[
        r#"{"query":"query($c: String) { timeline(limit: 20, cursor: $c) { posts { id content author { id name avatar } likes likedByMe comments(limit: 3) { content author { name } } } pageInfo { hasNextPage endCursor } } }","variables":{"c":null}}"#,
        r#"{"query":"mutation($r: ID!, $b: String!) { sendMessage(roomId: $r, body: $b) { seq id } }","variables":{"r":"x","b":"hi"},"operationName":null}"#,
        r#"{"query":"query A { ...F } fragment F on QueryRoot { me { ...G } } fragment G on User { id }","operationName":"A"}"#,
        r#"{"query":"subscription { messageAdded(roomId: \"r\") { seq body } }"}"#,
        r#"{"query":"{ a: __typename b: __typename ... on QueryRoot { c: __typename } }"}"#,
        r#"{"query":"query($x: [Int!]! = [1, 2], $y: Input = {a: {b: [\"c\"]}}) @dir(a: 1) { f(x: $x) }"}"#,
    ];
    const TOKENS: &[&str] = &[
        "{",
        "}",
        "(",
        ")",
        "[",
        "]",
        ":",
        "$",
        "@",
        "!",
        "=",
        "...",
        "on ",
        "fragment F on QueryRoot ",
        "...F ",
        "query ",
        "mutation ",
        "subscription ",
        "__typename ",
        r#"\""#,
        r"\n",
        "#",
        r#"\"\"\""#,
        " { a { b { c { d } } } } ",
        r#""variables":"#,
        r#""operationName":"#,
        "1.5e10",
    ];

    #[test]
    fn graphql_requests_never_panic_the_parser_or_the_guard() {
        use crate::fuzz::{Mutator, inputs, run};
        let guard = DocumentGuard {
            max_nodes: 2000,
            max_fragments: 128,
        };
        let mut mutator = Mutator::new(11, SEEDS, TOKENS);
        let parsed = std::sync::atomic::AtomicUsize::new(0);
        let count = inputs(20_000);
        run(count, &mut mutator, |input| {
            if let Ok(mut request) = serde_json::from_slice::<async_graphql::Request>(input)
                && let Ok(document) = request.parsed_query()
            {
                parsed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let _ = guard.check(document);
            }
        });
        eprintln!(
            "{count} inputs, {} parsed as documents",
            parsed.into_inner()
        );
    }

    #[test]
    fn cycles_and_unknown_fragments_are_left_to_validation() {
        let text = "{ ...A ...Missing } fragment A on Query { ...B } fragment B on Query { ...A }";
        guard().check(&parse_query(text).unwrap()).unwrap();
    }
}
