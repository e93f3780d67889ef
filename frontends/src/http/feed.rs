//! REST for the feed, for simple clients: the same operations as GraphQL's. `after` (query)
//! is the read-your-writes seq and `cursor` the previous page's `endCursor`. Post and comment
//! authors are ids here (GraphQL resolves them to users in one batch).

use super::accounts::Auth;
use super::execute_as_caller;
use super::json::{AfterQuery, JsonBody, QueryParams, path_id};
use crate::app::AppState;
use crate::dto::{AckDto, CommentDto, NotificationDto, PostDto, ToJson};
use crate::error::ApiError;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use girok_engine::feed::{FeedCommand, FollowPage, PostPage};
use girok_engine::{Ack, Command};
use girok_schemas::{EventId, Seq, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/posts", post(create_post))
        .route(
            "/v1/posts/{post}",
            get(read_post).patch(edit_post).delete(delete_post),
        )
        .route("/v1/posts/{post}/like", post(like).delete(unlike))
        .route("/v1/posts/{post}/comments", get(comments).post(add_comment))
        .route("/v1/comments/{comment}", delete(delete_comment))
        .route("/v1/timeline", get(timeline))
        .route("/v1/users/{user}/posts", get(user_timeline))
        .route("/v1/users/{user}/follow", post(follow).delete(unfollow))
        .route("/v1/users/{user}/followers", get(followers))
        .route("/v1/users/{user}/following", get(following))
        .route("/v1/notifications", get(notifications))
        .route("/v1/notifications/read", post(mark_read))
}

fn id<T: std::str::FromStr>(field: &str, raw: &str) -> Result<T, ApiError> {
    path_id(field, "an id (a UUID)", raw)
}

/// A page of posts: serialized straight from the posts (no intermediate JSON values), as
/// timelines are the busiest REST reads.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PostPageJson<'a> {
    posts: Vec<PostDto<'a>>,
    page_info: PageInfoJson,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PageInfoJson {
    has_next_page: bool,
    end_cursor: Option<String>,
}

fn page_info(next: Option<Seq>) -> Value {
    serde_json::to_value(PageInfoJson::from(next)).unwrap_or(Value::Null)
}

impl From<Option<Seq>> for PageInfoJson {
    fn from(next: Option<Seq>) -> Self {
        Self {
            has_next_page: next.is_some(),
            end_cursor: next.map(crate::cursor::seal),
        }
    }
}

fn post_page_json(page: &PostPage) -> PostPageJson<'_> {
    PostPageJson {
        posts: page.posts.iter().map(PostDto::from).collect(),
        page_info: page.next_cursor.into(),
    }
}

fn follow_page_json(page: &FollowPage) -> Value {
    json!({
        "totalCount": page.total,
        "users": page.edges.iter()
            .map(|e| json!({ "userId": e.user, "sinceSeq": e.since_seq }))
            .collect::<Vec<_>>(),
        "pageInfo": page_info(page.next_cursor),
    })
}

async fn run(
    state: &AppState,
    auth: &Auth,
    command: FeedCommand,
) -> Result<(UserId, Ack), ApiError> {
    execute_as_caller(state, &auth.0, Command::Feed(command)).await
}

/// The post as of `ack`.
async fn post_after(
    state: &AppState,
    me: UserId,
    post: EventId,
    ack: &Ack,
) -> Result<Json<Value>, ApiError> {
    let post = state.engine.post(me, post, Some(ack.seq)).await?;
    Ok(Json(PostDto::from(&post).to_json()))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PostBody {
    content: String,
    /// Creating: none if omitted. Editing: kept if omitted, replaced if given.
    media_ids: Option<Vec<String>>,
}

async fn create_post(
    State(state): State<AppState>,
    auth: Auth,
    JsonBody(body): JsonBody<PostBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let command = FeedCommand::CreatePost {
        content: body.content,
        media_ids: body.media_ids.unwrap_or_default(),
    };
    let (me, ack) = run(&state, &auth, command).await?;
    Ok((
        StatusCode::CREATED,
        post_after(&state, me, ack.id, &ack).await?,
    ))
}

async fn read_post(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path(post): Path<String>,
    QueryParams(params): QueryParams<AfterQuery>,
) -> Result<Json<Value>, ApiError> {
    let me = auth.require()?;
    let post = state
        .engine
        .post(me.user, id("post", &post)?, params.after)
        .await?;
    Ok(Json(PostDto::from(&post).to_json()))
}

async fn edit_post(
    State(state): State<AppState>,
    auth: Auth,
    Path(post): Path<String>,
    JsonBody(body): JsonBody<PostBody>,
) -> Result<Json<Value>, ApiError> {
    let post = id("post", &post)?;
    let command = FeedCommand::EditPost {
        post,
        content: body.content,
        media_ids: body.media_ids,
    };
    let (me, ack) = run(&state, &auth, command).await?;
    post_after(&state, me, post, &ack).await
}

async fn delete_post(
    State(state): State<AppState>,
    auth: Auth,
    Path(post): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let command = FeedCommand::DeletePost {
        post: id("post", &post)?,
    };
    Ok(Json(
        AckDto::created(&run(&state, &auth, command).await?.1).to_json(),
    ))
}

async fn like(
    State(state): State<AppState>,
    auth: Auth,
    Path(post): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let post = id("post", &post)?;
    let (me, ack) = run(&state, &auth, FeedCommand::LikePost { post }).await?;
    post_after(&state, me, post, &ack).await
}

async fn unlike(
    State(state): State<AppState>,
    auth: Auth,
    Path(post): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let post = id("post", &post)?;
    let (me, ack) = run(&state, &auth, FeedCommand::UnlikePost { post }).await?;
    post_after(&state, me, post, &ack).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PageParams {
    first: Option<usize>,
    limit: Option<usize>,
    cursor: Option<String>,
    after: Option<Seq>,
}

impl PageParams {
    fn cursor(&self) -> Result<Option<Seq>, ApiError> {
        self.cursor
            .as_deref()
            .map(|c| {
                crate::cursor::open(c).ok_or_else(|| {
                    ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "INVALID_ARGUMENT",
                        "`cursor` is not a cursor a page of this server returned",
                    )
                })
            })
            .transpose()
    }

    /// `first` or its alias `limit` (seed 001's name for timelines).
    fn size(&self) -> Option<usize> {
        self.first.or(self.limit)
    }
}

async fn comments(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path(post): Path<String>,
    QueryParams(params): QueryParams<PageParams>,
) -> Result<Json<Value>, ApiError> {
    auth.require()?;
    let (comments, next) = state
        .engine
        .comments(
            id("post", &post)?,
            params.cursor()?,
            params.size(),
            params.after,
        )
        .await?;
    Ok(Json(json!({
        "comments": comments.iter().map(CommentDto::from).collect::<Vec<_>>(),
        "pageInfo": page_info(next),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommentBody {
    content: String,
}

async fn add_comment(
    State(state): State<AppState>,
    auth: Auth,
    Path(post): Path<String>,
    JsonBody(body): JsonBody<CommentBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let command = FeedCommand::AddComment {
        post: id("post", &post)?,
        content: body.content,
    };
    let (_, ack) = run(&state, &auth, command).await?;
    let comment = state.engine.comment_at(ack.seq).await?;
    Ok((
        StatusCode::CREATED,
        Json(CommentDto::from(&comment).to_json()),
    ))
}

async fn delete_comment(
    State(state): State<AppState>,
    auth: Auth,
    Path(comment): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let command = FeedCommand::DeleteComment {
        comment: id("comment", &comment)?,
    };
    Ok(Json(
        AckDto::created(&run(&state, &auth, command).await?.1).to_json(),
    ))
}

async fn timeline(
    State(state): State<AppState>,
    Auth(auth): Auth,
    QueryParams(params): QueryParams<PageParams>,
) -> Result<Response, ApiError> {
    let me = auth.require()?;
    let page = state
        .engine
        .timeline(me.user, params.cursor()?, params.size(), params.after)
        .await?;
    Ok(Json(post_page_json(&page)).into_response())
}

async fn user_timeline(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path(user): Path<String>,
    QueryParams(params): QueryParams<PageParams>,
) -> Result<Response, ApiError> {
    let me = auth.require()?;
    let page = state
        .engine
        .user_timeline(
            me.user,
            id("user", &user)?,
            params.cursor()?,
            params.size(),
            params.after,
        )
        .await?;
    Ok(Json(post_page_json(&page)).into_response())
}

async fn follow(
    State(state): State<AppState>,
    auth: Auth,
    Path(user): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let user = id("user", &user)?;
    let (_, ack) = run(&state, &auth, FeedCommand::Follow { user }).await?;
    Ok(Json(AckDto::following(&ack, true).to_json()))
}

async fn unfollow(
    State(state): State<AppState>,
    auth: Auth,
    Path(user): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let user = id("user", &user)?;
    let (_, ack) = run(&state, &auth, FeedCommand::Unfollow { user }).await?;
    Ok(Json(AckDto::following(&ack, false).to_json()))
}

async fn followers(
    state: State<AppState>,
    auth: Auth,
    user: Path<String>,
    params: QueryParams<PageParams>,
) -> Result<Json<Value>, ApiError> {
    follow_list(state, auth, user, params, true).await
}

async fn following(
    state: State<AppState>,
    auth: Auth,
    user: Path<String>,
    params: QueryParams<PageParams>,
) -> Result<Json<Value>, ApiError> {
    follow_list(state, auth, user, params, false).await
}

async fn follow_list(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path(user): Path<String>,
    QueryParams(params): QueryParams<PageParams>,
    followers: bool,
) -> Result<Json<Value>, ApiError> {
    auth.require()?;
    let (user, cursor, size) = (id("user", &user)?, params.cursor()?, params.size());
    let page = if followers {
        state
            .engine
            .followers(user, cursor, size, params.after)
            .await?
    } else {
        state
            .engine
            .following(user, cursor, size, params.after)
            .await?
    };
    Ok(Json(follow_page_json(&page)))
}

async fn notifications(
    State(state): State<AppState>,
    Auth(auth): Auth,
    QueryParams(params): QueryParams<PageParams>,
) -> Result<Json<Value>, ApiError> {
    let me = auth.require()?;
    let page = state
        .engine
        .notifications(me.user, params.cursor()?, params.size(), params.after)
        .await?;
    Ok(Json(json!({
        "notifications": page.notifications.iter().map(NotificationDto::from).collect::<Vec<_>>(),
        "unreadCount": page.unread_count,
        "readUpToSeq": page.read_up_to,
        "pageInfo": page_info(page.next_cursor),
    })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReadBody {
    up_to_seq: Option<Seq>,
}

async fn mark_read(
    State(state): State<AppState>,
    auth: Auth,
    JsonBody(body): JsonBody<ReadBody>,
) -> Result<Json<Value>, ApiError> {
    let command = FeedCommand::MarkNotificationsRead {
        up_to: body.up_to_seq,
    };
    let (_, ack) = run(&state, &auth, command).await?;
    Ok(Json(AckDto::read_up_to(&ack).to_json()))
}
