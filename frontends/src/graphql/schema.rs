//! The schema: the merged query, mutation and subscription roots of every domain, with the
//! limits of the configuration.

use super::{accounts, chat, feed, loaders, matching, media, subscriptions};
use crate::config::FrontendConfig;
use async_graphql::{MergedObject, MergedSubscription, Schema, ValidationMode};
use girok_engine::Engine;
use std::sync::Arc;

/// Queries: chat, feed, accounts, matching and media.
#[derive(MergedObject, Default)]
pub struct QueryRoot(
    chat::ChatQuery,
    feed::FeedQuery,
    accounts::AccountQuery,
    matching::MatchingQuery,
    media::MediaQuery,
);

/// Mutations: chat, feed, accounts, matching and media.
#[derive(MergedObject, Default)]
pub struct MutationRoot(
    chat::ChatMutation,
    feed::FeedMutation,
    accounts::AccountMutation,
    matching::MatchingMutation,
    media::MediaMutation,
);

/// Subscriptions: chat, feed and matching.
#[derive(MergedSubscription, Default)]
pub struct SubscriptionRoot(
    subscriptions::ChatSubscription,
    subscriptions::FeedSubscription,
    matching::MatchingSubscription,
);

/// The schema type.
pub type GirokSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Builds the schema with its limits; `validation` is `Strict` but for documents that passed
/// it before (see `documents.rs`). It has no extension, so callers bound each document's size
/// themselves (`document_guard.rs`).
pub fn build_schema(
    engine: Arc<Engine>,
    presence: Arc<crate::presence::Presence>,
    loader_metrics: loaders::LoaderMetrics,
    config: &FrontendConfig,
    validation: ValidationMode,
) -> GirokSchema {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot::default(),
    )
    .data(engine)
    .data(presence)
    .data(loader_metrics)
    .limit_depth(config.limits.graphql_max_depth)
    .limit_complexity(config.limits.graphql_max_complexity)
    .validation_mode(validation)
    .finish()
}
