//! GraphQL's own parts beside the shared ones: the schema (twice: with strict validation, and
//! with fast validation for documents that passed it before), the bound on a document's size,
//! the documents parsed before, the batch loaders' counters.

use super::document_guard::DocumentGuard;
use super::documents::Documents;
use super::loaders::LoaderMetrics;
use super::schema::{GirokSchema, build_schema};
use crate::state::Shared;
use std::ops::Deref;
use std::sync::Arc;

/// GraphQL's state; a clone is one reference count.
#[derive(Clone)]
pub struct GraphqlState(Arc<GraphqlParts>);

impl Deref for GraphqlState {
    type Target = GraphqlParts;

    fn deref(&self) -> &GraphqlParts {
        &self.0
    }
}

/// What [`GraphqlState`] holds; it reads as the shared parts too.
pub struct GraphqlParts {
    pub shared: Shared,
    /// The schema; its callers check each document's size (`document_guard`) first.
    pub schema: GirokSchema,
    /// The same schema with fast validation, for documents that passed full validation.
    pub fast_schema: GirokSchema,
    /// The bound on a GraphQL document's size (`limits.graphql_max_nodes`, `_fragments`).
    pub document_guard: DocumentGuard,
    /// Parsed GraphQL documents by query text.
    pub documents: Documents,
    /// Counters of GraphQL's batch loaders (registered by the caller).
    pub loader_metrics: LoaderMetrics,
}

impl Deref for GraphqlParts {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
    }
}

impl GraphqlState {
    /// Builds the schemas over the shared parts.
    pub fn new(shared: Shared, loader_metrics: LoaderMetrics) -> Self {
        let config = &shared.config;
        let document_guard = DocumentGuard {
            max_nodes: config.limits.graphql_max_nodes,
            max_fragments: config.limits.graphql_max_fragments,
        };
        let schema = |validation| {
            build_schema(
                shared.engine.clone(),
                shared.presence.clone(),
                loader_metrics.clone(),
                config,
                validation,
            )
        };
        let (schema, fast_schema) = (
            schema(async_graphql::ValidationMode::Strict),
            schema(async_graphql::ValidationMode::Fast),
        );
        Self(Arc::new(GraphqlParts {
            schema,
            fast_schema,
            document_guard,
            documents: Documents::default(),
            loader_metrics,
            shared,
        }))
    }
}
