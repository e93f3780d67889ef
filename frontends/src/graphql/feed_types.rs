//! The feed's GraphQL objects: posts (author and first comments resolved through the request's
//! batch loaders), comments, authors, follower lists, notifications and search results.

use super::args::engine;
use super::chat_types::MessageNode;
use super::errors::gql;
use super::loaders::Loaders;
use super::page_values::{Posts, Query};
use super::scalars::Seq;
use async_graphql::{Context, Enum, ID, Object, Result, SimpleObject, Union};
use girok_engine::accounts::UserView;
use girok_engine::feed;
use girok_engine::limits::MAX_INLINE_COMMENTS;
use girok_engine::views::NotificationKind;
use girok_schemas::{UserId, rfc3339_millis};
use std::sync::Arc;

/// A user as the feed shows them.
pub struct Author(pub Arc<UserView>);

// Serial: its fields answer from memory (prefetched), so resolving them one after another
// saves a task set per object.
#[Object(serial)]
impl Author {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn username(&self) -> &str {
        &self.0.username
    }
    /// The display name.
    async fn name(&self) -> &str {
        &self.0.display_name
    }
    /// The avatar's media id, if set.
    async fn avatar(&self) -> Option<&str> {
        self.0.avatar_media_id.as_deref()
    }
    /// The avatar, once ready.
    async fn avatar_media(&self, ctx: &Context<'_>) -> Result<Option<super::media::Media>> {
        let ids = self.0.avatar_media_id.iter().cloned().collect::<Vec<_>>();
        Ok(super::media::media_of(ctx, &ids).await?.pop())
    }
    async fn followers_count(&self, ctx: &Context<'_>) -> Result<i32> {
        let (followers, _) = engine(ctx)?.follow_counts(self.0.id).await.map_err(gql)?;
        Ok(followers as i32)
    }
    async fn following_count(&self, ctx: &Context<'_>) -> Result<i32> {
        let (_, following) = engine(ctx)?.follow_counts(self.0.id).await.map_err(gql)?;
        Ok(following as i32)
    }
    /// Whether you follow them (false for yourself and when signed out).
    async fn followed_by_me(&self, ctx: &Context<'_>) -> Result<bool> {
        let Ok(me) = super::errors::principal(ctx).map(|principal| principal.user) else {
            return Ok(false);
        };
        if me == self.0.id {
            return Ok(false);
        }
        engine(ctx)?.is_following(me, self.0.id).await.map_err(gql)
    }
}

/// A user by id: prefetched with the page, or through the request's loader when there is
/// one (queries), directly otherwise (subscriptions).
pub async fn author(ctx: &Context<'_>, id: UserId) -> Result<Author> {
    let user = match ctx.data_opt::<Loaders>() {
        Some(loaders) => loaders
            .user(id)
            .await
            .map_err(load_failed)?
            .ok_or_else(|| gql(girok_engine::Error::UserNotFound))?,
        None => Arc::new(engine(ctx)?.user(id).await.map_err(gql)?),
    };
    Ok(Author(user))
}

/// Prefetches what the selection of the page being resolved (a `Timeline`) will ask of its
/// posts: their authors, their first comments and those comments' authors. A failure is only
/// logged: the fields then load what they need themselves (and fail alone if they must).
pub async fn prefetch_page(ctx: &Context<'_>, posts: &[feed::Post]) {
    let Some(loaders) = ctx.data_opt::<Loaders>() else {
        return;
    };
    let timeline = ctx.with_selection_set(&ctx.item.node.selection_set);
    let Some(wanted) = Query::Executing(&timeline).wanted(&ctx.item.node.selection_set.node) else {
        return;
    };
    if let Err(error) = loaders.prefetch_page(posts, &wanted).await {
        tracing::warn!(%error, "prefetching a page's authors and comments failed");
    }
}

/// A batch load's failure, as the field's error (with the engine error's own code: a storage
/// outage is `STORAGE_UNAVAILABLE`, not `INTERNAL`).
pub(super) fn load_failed(error: super::loaders::LoadError) -> async_graphql::Error {
    gql(error.as_ref())
}

/// `comments`' default `limit`.
pub(super) const DEFAULT_INLINE_COMMENTS: usize = 3;

/// `comments`' `limit` checked: 0 to `MAX_INLINE_COMMENTS` (the one rule that the field, the
/// page's prefetch and the one-pass page all follow).
pub(super) fn inline_comment_limit(limit: i32) -> Result<usize> {
    usize::try_from(limit)
        .ok()
        .filter(|l| *l <= MAX_INLINE_COMMENTS)
        .ok_or_else(|| {
            super::errors::invalid(
                "limit",
                format!("must be between 0 and {MAX_INLINE_COMMENTS}"),
            )
        })
}

/// A post.
pub struct Post(pub feed::Post);

// Serial: its fields answer from memory (prefetched), so resolving them one after another
// saves a task set per object.
#[Object(serial)]
impl Post {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The seq of its creation (timelines are ordered by it).
    async fn seq(&self) -> Seq {
        Seq(self.0.seq)
    }
    async fn content(&self) -> &str {
        &self.0.content
    }
    async fn media_ids(&self) -> &[String] {
        &self.0.media_ids
    }
    /// Its images that are ready, in order (a deleted one is gone at once).
    async fn media(&self, ctx: &Context<'_>) -> Result<Vec<super::media::Media>> {
        super::media::media_of(ctx, &self.0.media_ids).await
    }
    async fn author(&self, ctx: &Context<'_>) -> Result<Author> {
        author(ctx, self.0.author).await
    }
    async fn created_at(&self) -> String {
        rfc3339_millis(self.0.created_ms)
    }
    async fn edited_at(&self) -> Option<String> {
        self.0.edited_ms.map(rfc3339_millis)
    }
    /// How many users like it.
    async fn likes(&self) -> i32 {
        self.0.like_count as i32
    }
    /// Whether you like it.
    async fn liked_by_me(&self) -> bool {
        self.0.liked_by_me
    }
    async fn comment_count(&self) -> i32 {
        self.0.comment_count as i32
    }
    /// Its first comments, oldest first (`limit`: 0 to 20, default 3).
    async fn comments(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "DEFAULT_INLINE_COMMENTS as i32")] limit: i32,
    ) -> Result<Vec<Comment>> {
        let limit = inline_comment_limit(limit)?;
        if limit == 0 || self.0.comment_count == 0 {
            return Ok(Vec::new());
        }
        let key = (self.0.seq, limit);
        let comments = match ctx.data_opt::<Loaders>() {
            Some(loaders) => loaders.first_comments(key).await.map_err(load_failed)?,
            None => engine(ctx)?
                .first_comments(vec![key.0], key.1)
                .await
                .map_err(gql)?
                .remove(&key.0)
                .unwrap_or_default(),
        };
        Ok(comments.into_iter().map(Comment).collect())
    }
}

/// A comment.
pub struct Comment(pub feed::Comment);

// Serial: its fields answer from memory (prefetched), so resolving them one after another
// saves a task set per object.
#[Object(serial)]
impl Comment {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn seq(&self) -> Seq {
        Seq(self.0.seq)
    }
    async fn post_id(&self) -> ID {
        ID(self.0.post.to_string())
    }
    async fn content(&self) -> &str {
        &self.0.content
    }
    async fn author(&self, ctx: &Context<'_>) -> Result<Author> {
        author(ctx, self.0.author).await
    }
    async fn created_at(&self) -> String {
        rfc3339_millis(self.0.created_ms)
    }
}

/// Where the next page starts.
#[derive(SimpleObject)]
#[graphql(serial)]
pub struct FeedPageInfo {
    pub has_next_page: bool,
    /// Pass as `cursor` for the next page.
    pub end_cursor: Option<String>,
}

impl FeedPageInfo {
    pub fn new(next: Option<u64>) -> Self {
        Self {
            has_next_page: next.is_some(),
            end_cursor: next.map(crate::cursor::seal),
        }
    }
}

/// A page of a timeline.
#[derive(SimpleObject)]
#[graphql(serial)]
pub struct Timeline {
    pub posts: Posts,
    pub page_info: FeedPageInfo,
}

impl From<feed::PostPage> for Timeline {
    fn from(page: feed::PostPage) -> Self {
        Self {
            page_info: FeedPageInfo::new(page.next_cursor),
            posts: Posts(page.posts.into_iter().map(Post).collect()),
        }
    }
}

/// A page of a post's comments.
#[derive(SimpleObject)]
pub struct CommentConnection {
    pub comments: Vec<Comment>,
    pub page_info: FeedPageInfo,
}

/// One follower or followee.
pub struct FollowEdge(pub feed::FollowEdge);

#[Object]
impl FollowEdge {
    async fn user(&self, ctx: &Context<'_>) -> Result<Author> {
        author(ctx, self.0.user).await
    }
    /// The seq of the follow.
    async fn since_seq(&self) -> Seq {
        Seq(self.0.since_seq)
    }
}

/// A page of a follower or following list, most recent follow first.
#[derive(SimpleObject)]
pub struct FollowConnection {
    pub total_count: i32,
    pub edges: Vec<FollowEdge>,
    pub page_info: FeedPageInfo,
}

impl From<feed::FollowPage> for FollowConnection {
    fn from(page: feed::FollowPage) -> Self {
        Self {
            total_count: page.total as i32,
            page_info: FeedPageInfo::new(page.next_cursor),
            edges: page.edges.into_iter().map(FollowEdge).collect(),
        }
    }
}

/// The answer to `follow` and `unfollow`.
#[derive(SimpleObject)]
pub struct FollowResult {
    pub seq: Seq,
    pub following: bool,
    pub user: Author,
}

/// The ack of a change that leaves nothing to show (a deletion).
#[derive(SimpleObject)]
pub struct FeedAck {
    pub seq: Seq,
    pub id: ID,
}

/// Why you are notified.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum NotificationType {
    Like,
    Comment,
    Follow,
    Mention,
    /// You were matched with someone at random: `actor` is your partner, `roomId` your room.
    Match,
}

impl From<NotificationKind> for NotificationType {
    fn from(kind: NotificationKind) -> Self {
        match kind {
            NotificationKind::Like => NotificationType::Like,
            NotificationKind::Comment => NotificationType::Comment,
            NotificationKind::Follow => NotificationType::Follow,
            NotificationKind::Mention => NotificationType::Mention,
            NotificationKind::Match => NotificationType::Match,
        }
    }
}

/// A notification.
pub struct Notification(pub feed::Notification);

#[Object]
impl Notification {
    /// The seq of what caused it (the like, comment, follow, or mentioning version).
    async fn seq(&self) -> Seq {
        Seq(self.0.seq)
    }
    async fn kind(&self) -> NotificationType {
        self.0.kind.into()
    }
    /// Who liked, commented, followed or mentioned you, or your match partner.
    async fn actor(&self, ctx: &Context<'_>) -> Result<Option<Author>> {
        match self.0.actor {
            Some(id) => author(ctx, id).await.map(Some),
            None => Ok(None),
        }
    }
    async fn post_id(&self) -> Option<ID> {
        self.0.post.map(|p| ID(p.to_string()))
    }
    async fn comment_id(&self) -> Option<ID> {
        self.0.comment.map(|c| ID(c.to_string()))
    }
    /// A match's room.
    async fn room_id(&self) -> Option<ID> {
        self.0.room.map(|r| ID(r.to_string()))
    }
    async fn created_at(&self) -> String {
        rfc3339_millis(self.0.created_ms)
    }
    async fn read(&self) -> bool {
        self.0.read
    }
}

/// A page of notifications, newest first.
#[derive(SimpleObject)]
pub struct NotificationConnection {
    pub notifications: Vec<Notification>,
    /// Notifications after your read marker (counted up to 10,000).
    pub unread_count: i32,
    pub read_up_to_seq: Seq,
    pub page_info: FeedPageInfo,
}

impl From<feed::NotificationPage> for NotificationConnection {
    fn from(page: feed::NotificationPage) -> Self {
        Self {
            unread_count: page.unread_count as i32,
            read_up_to_seq: Seq(page.read_up_to),
            page_info: FeedPageInfo::new(page.next_cursor),
            notifications: page.notifications.into_iter().map(Notification).collect(),
        }
    }
}

/// The answer to `markNotificationsRead`.
#[derive(SimpleObject)]
pub struct NotificationsRead {
    pub seq: Seq,
    pub read_up_to_seq: Seq,
}

/// One search result.
#[derive(Union)]
pub enum SearchResult {
    Post(Post),
    User(Author),
    Message(MessageNode),
}

/// A page of search results, best first.
#[derive(SimpleObject)]
pub struct SearchConnection {
    pub results: Vec<SearchResult>,
    pub page_info: FeedPageInfo,
}

impl From<girok_engine::search::SearchPage> for SearchConnection {
    fn from(page: girok_engine::search::SearchPage) -> Self {
        Self {
            // Search's cursor is the engine's own (a result offset, checked by the engine).
            page_info: FeedPageInfo {
                has_next_page: page.next_cursor.is_some(),
                end_cursor: page.next_cursor,
            },
            results: page
                .results
                .into_iter()
                .map(|r| match r {
                    girok_engine::search::SearchResult::Post(p) => SearchResult::Post(Post(p)),
                    girok_engine::search::SearchResult::User(u) => {
                        SearchResult::User(Author(Arc::new(u)))
                    }
                    girok_engine::search::SearchResult::Message(m) => {
                        SearchResult::Message(MessageNode(m))
                    }
                })
                .collect(),
        }
    }
}
