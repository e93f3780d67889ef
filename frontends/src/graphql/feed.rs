//! Feed queries and mutations: posts, likes, comments, follows, timelines (seed 001's
//! `timeline(limit, cursor)` in one round trip, authors and comments batched), notifications
//! and search. Every read takes `after: Seq` (read your writes); pages take `cursor` (the
//! previous page's `endCursor`) — except `search`, whose `after` is its cursor as the API
//! names it, with `afterSeq` for read-your-writes.

use super::args::{engine, page_size, parse_id, user_id_arg};
use super::errors::{changing_principal, gql, invalid, principal};
use super::feed_types::{
    Author, Comment, CommentConnection, FeedAck, FeedPageInfo, FollowConnection, FollowResult,
    NotificationConnection, NotificationsRead, Post, SearchConnection, Timeline, author,
    prefetch_page,
};
use super::scalars::Seq;
use async_graphql::{Context, Enum, ID, Object, Result};
use girok_engine::feed::FeedCommand;
use girok_engine::limits::MAX_FEED_PAGE_SIZE;
use girok_engine::search::SearchKind;
use girok_engine::search::SearchQuery;
use girok_engine::{Ack, Command};
use girok_schemas::{EventId, UserId};

/// Most ids one `users` lookup takes.
const MAX_USERS_PER_LOOKUP: usize = 100;

fn post_id_arg(field: &'static str, id: &ID) -> Result<EventId> {
    parse_id(field, "a post id", id)
}

/// A timeline page's `limit`, `cursor` and `after`, checked, as the engine's timeline reads
/// take them (cursor, page size, read-your-writes seq).
pub(super) fn page_args(
    limit: Option<i32>,
    cursor: Option<String>,
    after: Option<Seq>,
) -> Result<(Option<u64>, Option<usize>, Option<u64>)> {
    Ok((
        cursor_arg(cursor)?,
        page_size(limit, MAX_FEED_PAGE_SIZE)?,
        after.map(|s| s.0),
    ))
}

fn cursor_arg(cursor: Option<String>) -> Result<Option<u64>> {
    cursor
        .map(|c| {
            crate::cursor::open(&c)
                .ok_or_else(|| invalid("cursor", "not a cursor a page of this server returned"))
        })
        .transpose()
}

async fn run(ctx: &Context<'_>, command: FeedCommand) -> Result<(UserId, Ack)> {
    let me = changing_principal(ctx)?.user;
    let ack = engine(ctx)?
        .execute(me, Command::Feed(command))
        .await
        .map_err(gql)?;
    Ok((me, ack))
}

/// The post as of `ack` (its counts include the change).
async fn post_after(ctx: &Context<'_>, me: UserId, post: EventId, ack: &Ack) -> Result<Post> {
    let post = engine(ctx)?
        .post(me, post, Some(ack.seq))
        .await
        .map_err(gql)?;
    Ok(Post(post))
}

/// What `search` looks at.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "SearchKind")]
pub enum SearchKindArg {
    Post,
    User,
    Message,
}

/// Feed queries.
#[derive(Default)]
pub struct FeedQuery;

#[Object]
impl FeedQuery {
    /// A post.
    async fn post(&self, ctx: &Context<'_>, id: ID, after: Option<Seq>) -> Result<Post> {
        let me = principal(ctx)?.user;
        let post = engine(ctx)?
            .post(me, post_id_arg("id", &id)?, after.map(|s| s.0))
            .await
            .map_err(gql)?;
        Ok(Post(post))
    }

    /// Your home timeline: your posts and those of everyone you follow, newest first.
    /// `limit`: 1 to 100 (default 20).
    async fn timeline(
        &self,
        ctx: &Context<'_>,
        limit: Option<i32>,
        cursor: Option<String>,
        after: Option<Seq>,
    ) -> Result<Timeline> {
        let me = principal(ctx)?.user;
        let (cursor, limit, after) = page_args(limit, cursor, after)?;
        let page = engine(ctx)?
            .timeline(me, cursor, limit, after)
            .await
            .map_err(gql)?;
        prefetch_page(ctx, &page.posts).await;
        Ok(page.into())
    }

    /// One user's posts, newest first.
    async fn user_timeline(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        limit: Option<i32>,
        cursor: Option<String>,
        after: Option<Seq>,
    ) -> Result<Timeline> {
        let me = principal(ctx)?.user;
        let (cursor, limit, after) = page_args(limit, cursor, after)?;
        let page = engine(ctx)?
            .user_timeline(me, user_id_arg("userId", &user_id)?, cursor, limit, after)
            .await
            .map_err(gql)?;
        prefetch_page(ctx, &page.posts).await;
        Ok(page.into())
    }

    /// A post's comments, oldest first.
    async fn comments(
        &self,
        ctx: &Context<'_>,
        post_id: ID,
        first: Option<i32>,
        cursor: Option<String>,
        after: Option<Seq>,
    ) -> Result<CommentConnection> {
        principal(ctx)?;
        let (comments, next) = engine(ctx)?
            .comments(
                post_id_arg("postId", &post_id)?,
                cursor_arg(cursor)?,
                page_size(first, MAX_FEED_PAGE_SIZE)?,
                after.map(|s| s.0),
            )
            .await
            .map_err(gql)?;
        Ok(CommentConnection {
            comments: comments.into_iter().map(Comment).collect(),
            page_info: FeedPageInfo::new(next),
        })
    }

    /// Who follows a user (default: you), most recent first.
    async fn followers(
        &self,
        ctx: &Context<'_>,
        user_id: Option<ID>,
        first: Option<i32>,
        cursor: Option<String>,
        after: Option<Seq>,
    ) -> Result<FollowConnection> {
        self.follow_list(ctx, user_id, first, cursor, after, true)
            .await
    }

    /// Whom a user (default: you) follows, most recent first.
    async fn following(
        &self,
        ctx: &Context<'_>,
        user_id: Option<ID>,
        first: Option<i32>,
        cursor: Option<String>,
        after: Option<Seq>,
    ) -> Result<FollowConnection> {
        self.follow_list(ctx, user_id, first, cursor, after, false)
            .await
    }

    /// Public profiles by id (at most [`MAX_USERS_PER_LOOKUP`]), in the order asked; ids of
    /// no account are left out. For clients that hold ids (a message's sender, a live post's
    /// author) and want names and avatars.
    async fn users(&self, ctx: &Context<'_>, ids: Vec<ID>) -> Result<Vec<Author>> {
        principal(ctx)?;
        if ids.len() > MAX_USERS_PER_LOOKUP {
            return Err(invalid(
                "ids",
                format!("at most {MAX_USERS_PER_LOOKUP} ids at once"),
            ));
        }
        let ids = ids
            .iter()
            .map(|id| user_id_arg("ids", id))
            .collect::<Result<Vec<_>>>()?;
        // One batch through the accounts' hot-object cache; ids of nobody are not in it.
        let found = engine(ctx)?.users(ids.clone()).await.map_err(gql)?;
        Ok(ids
            .iter()
            .filter_map(|id| found.get(id).cloned().map(Author))
            .collect())
    }

    /// Your notifications, newest first, with your unread count.
    async fn notifications(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        cursor: Option<String>,
        after: Option<Seq>,
    ) -> Result<NotificationConnection> {
        let me = principal(ctx)?.user;
        let page = engine(ctx)?
            .notifications(
                me,
                cursor_arg(cursor)?,
                page_size(first, MAX_FEED_PAGE_SIZE)?,
                after.map(|s| s.0),
            )
            .await
            .map_err(gql)?;
        Ok(page.into())
    }

    /// Full-text search over posts, users and the messages of your rooms, best first.
    /// `query` uses tantivy's syntax (words, "phrases", +must, -not); `kind` limits it;
    /// `first`: 1 to 100 (default 20); `after`: the previous page's `endCursor` (results page
    /// up to 1,000 deep); `afterSeq`: answer once the index reflects this seq.
    async fn search(
        &self,
        ctx: &Context<'_>,
        query: String,
        kind: Option<SearchKindArg>,
        first: Option<i32>,
        after: Option<String>,
        after_seq: Option<Seq>,
    ) -> Result<SearchConnection> {
        let me = principal(ctx)?.user;
        let page = engine(ctx)?
            .search(
                me,
                SearchQuery {
                    text: query,
                    kind: kind.map(|k| match k {
                        SearchKindArg::Post => SearchKind::Post,
                        SearchKindArg::User => SearchKind::User,
                        SearchKindArg::Message => SearchKind::Message,
                    }),
                    limit: page_size(first, MAX_FEED_PAGE_SIZE)?,
                    cursor: after,
                    after: after_seq.map(|s| s.0),
                },
            )
            .await
            .map_err(gql)?;
        Ok(page.into())
    }
}

impl FeedQuery {
    async fn follow_list(
        &self,
        ctx: &Context<'_>,
        user_id: Option<ID>,
        first: Option<i32>,
        cursor: Option<String>,
        after: Option<Seq>,
        followers: bool,
    ) -> Result<FollowConnection> {
        let me = principal(ctx)?.user;
        let user = match user_id {
            Some(id) => user_id_arg("userId", &id)?,
            None => me,
        };
        let engine = engine(ctx)?;
        let (cursor, limit, after) = (
            cursor_arg(cursor)?,
            page_size(first, MAX_FEED_PAGE_SIZE)?,
            after.map(|s| s.0),
        );
        let page = if followers {
            engine.followers(user, cursor, limit, after).await
        } else {
            engine.following(user, cursor, limit, after).await
        };
        Ok(page.map_err(gql)?.into())
    }
}

/// Feed mutations.
#[derive(Default)]
pub struct FeedMutation;

#[Object]
impl FeedMutation {
    /// Posts up to 5,000 characters with up to 4 media ids; `@username` mentions notify.
    async fn create_post(
        &self,
        ctx: &Context<'_>,
        content: String,
        media_ids: Option<Vec<String>>,
    ) -> Result<Post> {
        let media_ids = media_ids.unwrap_or_default();
        let (me, ack) = run(ctx, FeedCommand::CreatePost { content, media_ids }).await?;
        post_after(ctx, me, ack.id, &ack).await
    }

    /// Replaces the content of one of your posts, and its media when `mediaIds` is given
    /// (omitted: kept; `[]`: removed).
    async fn edit_post(
        &self,
        ctx: &Context<'_>,
        id: ID,
        content: String,
        media_ids: Option<Vec<String>>,
    ) -> Result<Post> {
        let post = post_id_arg("id", &id)?;
        let command = FeedCommand::EditPost {
            post,
            content,
            media_ids,
        };
        let (me, ack) = run(ctx, command).await?;
        post_after(ctx, me, post, &ack).await
    }

    /// Deletes one of your posts (with its likes and comments).
    async fn delete_post(&self, ctx: &Context<'_>, id: ID) -> Result<FeedAck> {
        let post = post_id_arg("id", &id)?;
        let (_, ack) = run(ctx, FeedCommand::DeletePost { post }).await?;
        Ok(FeedAck {
            seq: Seq(ack.seq),
            id,
        })
    }

    /// Likes a post (once; `ALREADY_LIKED` after).
    async fn like_post(&self, ctx: &Context<'_>, id: ID) -> Result<Post> {
        let post = post_id_arg("id", &id)?;
        let (me, ack) = run(ctx, FeedCommand::LikePost { post }).await?;
        post_after(ctx, me, post, &ack).await
    }

    /// Takes back your like (`NOT_LIKED` if there is none).
    async fn unlike_post(&self, ctx: &Context<'_>, id: ID) -> Result<Post> {
        let post = post_id_arg("id", &id)?;
        let (me, ack) = run(ctx, FeedCommand::UnlikePost { post }).await?;
        post_after(ctx, me, post, &ack).await
    }

    /// Comments on a post (up to 1,000 characters).
    async fn add_comment(
        &self,
        ctx: &Context<'_>,
        post_id: ID,
        content: String,
    ) -> Result<Comment> {
        let post = post_id_arg("postId", &post_id)?;
        let (_, ack) = run(ctx, FeedCommand::AddComment { post, content }).await?;
        let comment = engine(ctx)?.comment_at(ack.seq).await.map_err(gql)?;
        Ok(Comment(comment))
    }

    /// Deletes one of your comments.
    async fn delete_comment(&self, ctx: &Context<'_>, id: ID) -> Result<FeedAck> {
        let comment = parse_id("id", "a comment id", &id)?;
        let (_, ack) = run(ctx, FeedCommand::DeleteComment { comment }).await?;
        Ok(FeedAck {
            seq: Seq(ack.seq),
            id,
        })
    }

    /// Follows a user (`ALREADY_FOLLOWING` if you do).
    async fn follow(&self, ctx: &Context<'_>, user_id: ID) -> Result<FollowResult> {
        let user = user_id_arg("userId", &user_id)?;
        let (_, ack) = run(ctx, FeedCommand::Follow { user }).await?;
        // The counts of `user` read the views: as of this change.
        engine(ctx)?
            .wait_for_views(Some(ack.seq))
            .await
            .map_err(gql)?;
        Ok(FollowResult {
            seq: Seq(ack.seq),
            following: true,
            user: author(ctx, user).await?,
        })
    }

    /// Stops following a user (`NOT_FOLLOWING` if you do not).
    async fn unfollow(&self, ctx: &Context<'_>, user_id: ID) -> Result<FollowResult> {
        let user = user_id_arg("userId", &user_id)?;
        let (_, ack) = run(ctx, FeedCommand::Unfollow { user }).await?;
        // The counts of `user` read the views: as of this change.
        engine(ctx)?
            .wait_for_views(Some(ack.seq))
            .await
            .map_err(gql)?;
        Ok(FollowResult {
            seq: Seq(ack.seq),
            following: false,
            user: author(ctx, user).await?,
        })
    }

    /// Marks your notifications read up to `upToSeq` (default: all so far); never backwards.
    async fn mark_notifications_read(
        &self,
        ctx: &Context<'_>,
        up_to_seq: Option<Seq>,
    ) -> Result<NotificationsRead> {
        let command = FeedCommand::MarkNotificationsRead {
            up_to: up_to_seq.map(|s| s.0),
        };
        let (_, ack) = run(ctx, command).await?;
        Ok(NotificationsRead {
            seq: Seq(ack.seq),
            read_up_to_seq: Seq(ack.read_up_to.unwrap_or_default()),
        })
    }
}
