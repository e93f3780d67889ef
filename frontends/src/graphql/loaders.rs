//! Batched reads of a request's related objects, so that a page of posts costs one read for
//! all their authors and one for all their first comments, however many posts it has (no
//! N+1). A timeline page prefetches them as soon as it has its posts ([`Loaders::prefetch`]):
//! what the query selects is known from a walk of its selection, the engine answers from its
//! hot-object caches, and the fields then find their values here without waiting. Fields that
//! nobody prefetched fall back to async-graphql's DataLoader, which gathers their keys for
//! 1 ms.
//! `girok_graphql_batch_loads_total` and `girok_graphql_batch_keys_total` (by loader) count
//! the batches and the keys they carried, prefetches included.

use super::page_values::PagePath;
use async_graphql::dataloader::{DataLoader, Loader};
use girok_engine::accounts::UserView;
use girok_engine::feed::{self, Comment};
use girok_engine::{Engine, MediaInfo};
use girok_schemas::{Seq, UserId};
use parking_lot::Mutex;
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PathLabel {
    path: &'static str,
}

/// Counters of batch loads, and of the pages of posts resolved in one pass or field by field.
#[derive(Clone, Default)]
pub struct LoaderMetrics {
    loads: Family<LoaderLabel, Counter>,
    keys: Family<LoaderLabel, Counter>,
    pages: Family<PathLabel, Counter>,
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
        registry.register(
            "girok_graphql_post_pages",
            "Pages of posts answered in one pass (path=direct), field by field (path=fields), or in one pass as JSON for a request answered without the executor (path=answer)",
            self.pages.clone(),
        );
    }

    fn count(&self, loader: &'static str, keys: usize) {
        let label = LoaderLabel { loader };
        self.loads.get_or_create(&label).inc();
        self.keys.get_or_create(&label).inc_by(keys as u64);
    }
}

/// Why a batch load failed (shared by every key of the batch).
pub type LoadError = Arc<girok_engine::Error>;

/// Users by id.
pub struct UserLoader {
    engine: Arc<Engine>,
    metrics: LoaderMetrics,
}

impl Loader<UserId> for UserLoader {
    type Value = Arc<UserView>;
    type Error = Arc<girok_engine::Error>;

    async fn load(&self, keys: &[UserId]) -> Result<HashMap<UserId, Arc<UserView>>, Self::Error> {
        self.metrics.count("users", keys.len());
        self.engine.users(keys.to_vec()).await.map_err(Arc::new)
    }
}

/// Ready media the request's caller may see, by id (for `Post.media`, `Message.attachments`,
/// avatars): one read for every media of a page.
pub struct MediaLoader {
    engine: Arc<Engine>,
    viewer: Option<UserId>,
    metrics: LoaderMetrics,
}

impl Loader<String> for MediaLoader {
    type Value = MediaInfo;
    type Error = Arc<girok_engine::Error>;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, MediaInfo>, Self::Error> {
        self.metrics.count("media", keys.len());
        self.engine
            .media_many(self.viewer, keys.to_vec())
            .await
            .map_err(Arc::new)
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

/// The loaders of one request, and what it prefetched.
pub struct Loaders {
    users: DataLoader<UserLoader>,
    comments: DataLoader<CommentLoader>,
    media: DataLoader<MediaLoader>,
    engine: Arc<Engine>,
    metrics: LoaderMetrics,
    ready_users: Mutex<HashMap<UserId, Arc<UserView>>>,
    ready_comments: Mutex<HashMap<(Seq, usize), Vec<Comment>>>,
}

impl Loaders {
    /// The loaders of a request by `viewer` (`None`: not signed in).
    pub fn new(engine: Arc<Engine>, metrics: LoaderMetrics, viewer: Option<UserId>) -> Self {
        Self {
            media: DataLoader::new(
                MediaLoader {
                    engine: engine.clone(),
                    viewer,
                    metrics: metrics.clone(),
                },
                tokio::spawn,
            ),
            users: DataLoader::new(
                UserLoader {
                    engine: engine.clone(),
                    metrics: metrics.clone(),
                },
                tokio::spawn,
            ),
            comments: DataLoader::new(
                CommentLoader {
                    engine: engine.clone(),
                    metrics: metrics.clone(),
                },
                tokio::spawn,
            ),
            engine,
            metrics,
            ready_users: Mutex::new(HashMap::new()),
            ready_comments: Mutex::new(HashMap::new()),
        }
    }

    /// A user: prefetched, or through the batch loader (`None`: nobody by that id).
    pub async fn user(&self, id: UserId) -> Result<Option<Arc<UserView>>, LoadError> {
        let ready = self.ready_users.lock().get(&id).cloned();
        match ready {
            Some(user) => Ok(Some(user)),
            None => self.users.load_one(id).await,
        }
    }

    /// The ready media among `ids` the caller may see, by id (batched across the request).
    pub async fn media(&self, ids: &[String]) -> Result<HashMap<String, MediaInfo>, LoadError> {
        self.media.load_many(ids.iter().cloned()).await
    }

    /// A post's first comments (key: post seq, how many): prefetched (taken, not copied: a
    /// field asks once), or through the batch loader.
    pub async fn first_comments(&self, key: (Seq, usize)) -> Result<Vec<Comment>, LoadError> {
        let ready = self.ready_comments.lock().remove(&key);
        match ready {
            Some(comments) => Ok(comments),
            None => Ok(self.comments.load_one(key).await?.unwrap_or_default()),
        }
    }

    /// Runs `f` over what was prefetched (both sets locked for its duration: `f` must not
    /// wait for anything).
    pub fn with_ready<R>(&self, f: impl FnOnce(&ReadyObjects<'_>) -> R) -> R {
        let users = self.ready_users.lock();
        let comments = self.ready_comments.lock();
        f(&ReadyObjects {
            users: &users,
            comments: &comments,
        })
    }

    /// Counts a page of posts by how it was answered.
    pub fn count_page(&self, path: PagePath) {
        let path = path.label();
        self.metrics.pages.get_or_create(&PathLabel { path }).inc();
    }

    /// [`Loaders::prefetch`] for a page of posts.
    pub async fn prefetch_page(
        &self,
        posts: &[feed::Post],
        wanted: &PageSelection,
    ) -> girok_engine::Result<()> {
        let keys: Vec<_> = posts
            .iter()
            .map(|p| (p.seq, p.author, p.comment_count))
            .collect();
        self.prefetch(&keys, wanted).await
    }

    /// Reads what `wanted` says the page's fields will ask for: the first comments of
    /// `posts` (one read per distinct `limit`), then every author of the posts and of those
    /// comments (one read).
    pub async fn prefetch(
        &self,
        posts: &[(Seq, UserId, usize)],
        wanted: &PageSelection,
    ) -> girok_engine::Result<()> {
        let mut authors: Vec<UserId> = Vec::new();
        if wanted.post_authors {
            authors.extend(posts.iter().map(|(_, author, _)| *author));
        }
        let commented: Vec<Seq> = posts
            .iter()
            .filter(|(_, _, comments)| *comments > 0)
            .map(|(seq, ..)| *seq)
            .collect();
        for &limit in wanted.comment_limits.iter().filter(|l| **l > 0) {
            if commented.is_empty() {
                break;
            }
            self.metrics.count("comments", commented.len());
            let found = self.engine.first_comments(commented.clone(), limit).await?;
            if wanted.comment_authors {
                authors.extend(found.values().flatten().map(|c| c.author));
            }
            self.ready_comments
                .lock()
                .extend(found.into_iter().map(|(post, c)| ((post, limit), c)));
        }
        authors.sort_unstable();
        authors.dedup();
        if !authors.is_empty() {
            self.metrics.count("users", authors.len());
            let users = self.engine.users(authors).await?;
            self.ready_users.lock().extend(users);
        }
        Ok(())
    }
}

/// The objects a request prefetched, read in place.
pub struct ReadyObjects<'a> {
    users: &'a HashMap<UserId, Arc<UserView>>,
    comments: &'a HashMap<(Seq, usize), Vec<Comment>>,
}

impl ReadyObjects<'_> {
    pub fn user(&self, id: UserId) -> Option<&UserView> {
        self.users.get(&id).map(|user| &**user)
    }

    /// A post's first `limit` comments, if they were prefetched.
    pub fn first_comments(&self, post: Seq, limit: usize) -> Option<&[Comment]> {
        self.comments.get(&(post, limit)).map(Vec::as_slice)
    }
}

/// What a page's query selects of each post (`page_values::Query::wanted`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PageSelection {
    pub post_authors: bool,
    /// The distinct `limit`s of `comments` selections (usually one).
    pub comment_limits: Vec<usize>,
    pub comment_authors: bool,
}
