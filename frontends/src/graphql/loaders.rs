//! Batch loaders (async-graphql's DataLoader), one set per request, so that a page of posts
//! costs one read for all their authors and one for all their first comments, however many
//! posts it has (no N+1). `girok_graphql_batch_loads_total` and
//! `girok_graphql_batch_keys_total` (by loader) count the batches and the keys they carried.

use async_graphql::dataloader::{DataLoader, Loader};
use girok_engine::Engine;
use girok_engine::accounts::UserView;
use girok_engine::feed::Comment;
use girok_schemas::{Seq, UserId};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoaderLabel {
    loader: &'static str,
}

/// Counters of batch loads.
#[derive(Clone, Default)]
pub struct LoaderMetrics {
    loads: Family<LoaderLabel, Counter>,
    keys: Family<LoaderLabel, Counter>,
}

impl LoaderMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "girok_graphql_batch_loads",
            "Batched reads made by GraphQL loaders",
            self.loads.clone(),
        );
        registry.register(
            "girok_graphql_batch_keys",
            "Keys read by GraphQL loaders",
            self.keys.clone(),
        );
    }

    fn count(&self, loader: &'static str, keys: usize) {
        let label = LoaderLabel { loader };
        self.loads.get_or_create(&label).inc();
        self.keys.get_or_create(&label).inc_by(keys as u64);
    }
}

/// Users by id.
pub struct UserLoader {
    engine: Arc<Engine>,
    metrics: LoaderMetrics,
}

impl Loader<UserId> for UserLoader {
    type Value = UserView;
    type Error = Arc<girok_engine::Error>;

    async fn load(&self, keys: &[UserId]) -> Result<HashMap<UserId, UserView>, Self::Error> {
        self.metrics.count("users", keys.len());
        self.engine.users(keys.to_vec()).await.map_err(Arc::new)
    }
}

/// The first comments of posts: key `(post seq, how many)`.
pub struct CommentLoader {
    engine: Arc<Engine>,
    metrics: LoaderMetrics,
}

impl Loader<(Seq, usize)> for CommentLoader {
    type Value = Vec<Comment>;
    type Error = Arc<girok_engine::Error>;

    async fn load(
        &self,
        keys: &[(Seq, usize)],
    ) -> Result<HashMap<(Seq, usize), Vec<Comment>>, Self::Error> {
        self.metrics.count("comments", keys.len());
        // One read per distinct limit (a query asks for one limit almost always).
        let mut by_limit: HashMap<usize, Vec<Seq>> = HashMap::new();
        for (post, limit) in keys {
            by_limit.entry(*limit).or_default().push(*post);
        }
        let mut out = HashMap::with_capacity(keys.len());
        for (limit, posts) in by_limit {
            let found = self
                .engine
                .first_comments(posts, limit)
                .await
                .map_err(Arc::new)?;
            out.extend(found.into_iter().map(|(post, c)| ((post, limit), c)));
        }
        Ok(out)
    }
}

/// The loaders of one request.
pub struct Loaders {
    pub users: DataLoader<UserLoader>,
    pub comments: DataLoader<CommentLoader>,
}

impl Loaders {
    pub fn new(engine: Arc<Engine>, metrics: LoaderMetrics) -> Self {
        Self {
            users: DataLoader::new(
                UserLoader {
                    engine: engine.clone(),
                    metrics: metrics.clone(),
                },
                tokio::spawn,
            ),
            comments: DataLoader::new(CommentLoader { engine, metrics }, tokio::spawn),
        }
    }
}
