//! REST for the feed, for simple clients: the same operations as GraphQL's. `after` (query)
//! is the read-your-writes seq and `cursor` the previous page's `endCursor`. Post and comment
//! authors are ids here (GraphQL resolves them to users in one batch).

use super::accounts::Auth;
use super::execute_as_caller;
use super::json::{AfterQuery, JsonBody, JsonPage, QueryParams, path_id};
use crate::app::AppState;
use crate::dto::{AckDto, CommentDto, NotificationDto, PageInfoDto, PostDto, media_of};
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

/// Pages are serialized straight from the engine's objects (no intermediate JSON values).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PostPageJson<'a> {
    posts: Vec<PostDto<'a>>,
    page_info: PageInfoDto<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CommentPageJson<'a> {
    comments: Vec<CommentDto<'a>>,
    page_info: PageInfoDto<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NotificationPageJson {
    notifications: Vec<NotificationDto>,
    unread_count: usize,
    read_up_to_seq: Seq,
    page_info: PageInfoDto<String>,
}

/// A page of posts with their media as `viewer` may see them.
async fn post_page(
    state: &AppState,
    viewer: UserId,
    page: &PostPage,
) -> Result<Response, ApiError> {
    let media = media_of(&state.engine, viewer, &page.posts).await?;
    let json = PostPageJson {
        posts: page
            .posts
            .iter()
            .map(|post| PostDto::from(post).with_media(&media))
            .collect(),
        page_info: PageInfoDto::sealed(page.next_cursor),
    };
    Ok(JsonPage(json).into_response())
}

/// A post with its media as `viewer` may see them.
async fn one_post(
    state: &AppState,
    viewer: UserId,
    post: &girok_engine::feed::Post,
) -> Result<Response, ApiError> {
    let media = media_of(&state.engine, viewer, [post]).await?;
    Ok(Json(PostDto::from(post).with_media(&media)).into_response())
}

fn follow_page_json(page: &FollowPage) -> Value {
    json!({
        "totalCount": page.total,
        "users": page.edges.iter()
            .map(|e| json!({ "userId": e.user, "sinceSeq": e.since_seq }))
            .collect::<Vec<_>>(),
        "pageInfo": PageInfoDto::sealed(page.next_cursor),
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
) -> Result<Response, ApiError> {
    let post = state.engine.post(me, post, Some(ack.seq)).await?;
    one_post(state, me, &post).await
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
) -> Result<(StatusCode, Response), ApiError> {
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
) -> Result<Response, ApiError> {
    let me = auth.require()?;
    let post = state
        .engine
        .post(me.user, id("post", &post)?, params.after)
        .await?;
    one_post(&state, me.user, &post).await
}

async fn edit_post(
    State(state): State<AppState>,
    auth: Auth,
    Path(post): Path<String>,
    JsonBody(body): JsonBody<PostBody>,
) -> Result<Response, ApiError> {
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
) -> Result<Response, ApiError> {
    let command = FeedCommand::DeletePost {
        post: id("post", &post)?,
    };
    Ok(Json(AckDto::created(&run(&state, &auth, command).await?.1)).into_response())
}

async fn like(
    State(state): State<AppState>,
    auth: Auth,
    Path(post): Path<String>,
) -> Result<Response, ApiError> {
    let post = id("post", &post)?;
    let (me, ack) = run(&state, &auth, FeedCommand::LikePost { post }).await?;
    post_after(&state, me, post, &ack).await
}

async fn unlike(
    State(state): State<AppState>,
    auth: Auth,
    Path(post): Path<String>,
) -> Result<Response, ApiError> {
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
) -> Result<Response, ApiError> {
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
    let page = CommentPageJson {
        comments: comments.iter().map(CommentDto::from).collect(),
        page_info: PageInfoDto::sealed(next),
    };
    Ok(JsonPage(page).into_response())
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
) -> Result<(StatusCode, Response), ApiError> {
    let command = FeedCommand::AddComment {
        post: id("post", &post)?,
        content: body.content,
    };
    let (_, ack) = run(&state, &auth, command).await?;
    let comment = state.engine.comment_at(ack.seq).await?;
    Ok((
        StatusCode::CREATED,
        Json(CommentDto::from(&comment)).into_response(),
    ))
}

async fn delete_comment(
    State(state): State<AppState>,
    auth: Auth,
    Path(comment): Path<String>,
) -> Result<Response, ApiError> {
    let command = FeedCommand::DeleteComment {
        comment: id("comment", &comment)?,
    };
    Ok(Json(AckDto::created(&run(&state, &auth, command).await?.1)).into_response())
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
    post_page(&state, me.user, &page).await
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
    post_page(&state, me.user, &page).await
}

async fn follow(
    State(state): State<AppState>,
    auth: Auth,
    Path(user): Path<String>,
) -> Result<Response, ApiError> {
    let user = id("user", &user)?;
    let (_, ack) = run(&state, &auth, FeedCommand::Follow { user }).await?;
    Ok(Json(AckDto::following(&ack, true)).into_response())
}

async fn unfollow(
    State(state): State<AppState>,
    auth: Auth,
    Path(user): Path<String>,
) -> Result<Response, ApiError> {
    let user = id("user", &user)?;
    let (_, ack) = run(&state, &auth, FeedCommand::Unfollow { user }).await?;
    Ok(Json(AckDto::following(&ack, false)).into_response())
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
) -> Result<Response, ApiError> {
    let me = auth.require()?;
    let page = state
        .engine
        .notifications(me.user, params.cursor()?, params.size(), params.after)
        .await?;
    let json = NotificationPageJson {
        notifications: page
            .notifications
            .iter()
            .map(NotificationDto::from)
            .collect(),
        unread_count: page.unread_count,
        read_up_to_seq: page.read_up_to,
        page_info: PageInfoDto::sealed(page.next_cursor),
    };
    Ok(JsonPage(json).into_response())
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
) -> Result<Response, ApiError> {
    let command = FeedCommand::MarkNotificationsRead {
        up_to: body.up_to_seq,
    };
    let (_, ack) = run(&state, &auth, command).await?;
    Ok(Json(AckDto::read_up_to(&ack)).into_response())
}
