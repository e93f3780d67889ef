//! GraphQL subscriptions over graphql-transport-ws (and the older graphql-ws) at
//! `/graphql/ws`: `messageAdded(roomId)`, `messageUpdated(roomId)` (edits and deletes) and
//! `roomUpdated` (anything that changes one of your rooms). Authenticated by the session cookie
//! on the upgrade or by `{"authorization": "Bearer <token>"}` in `connection_init`. Events come
//! from the live hub, which only publishes durable events; a subscription to a room checks
//! membership first and ends when you leave the room. A subscriber more than
//! `engine.topic_capacity` events behind gets a `SLOW_CONSUMER` error and the stream ends:
//! re-read the history and subscribe again. A socket holds at most `ws.max_subscriptions`
//! subscriptions at once (`TOO_MANY_SUBSCRIPTIONS` beyond).

use super::GraphqlState;
use super::args::{engine, room_id_arg};
use super::chat_types::{MessageNode, Room};
use super::errors::{api, gql, principal};
use super::feed_types::{Notification, Post};
use super::scalars::Seq;
use crate::auth::live_sessions::Ending;
use crate::auth::{RequestAuth, authenticate, bearer_principal};
use crate::listener::PeerAddr;
use async_graphql::{Context, Data, ErrorExtensions, ID, Result, SimpleObject, Subscription};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures::stream::{self, BoxStream, SelectAll, Stream, StreamExt};
use girok_engine::{Engine, Follow, FollowEnd, FollowOptions, LiveEvent, LiveScope, Message};
use girok_schemas::{Payload, RoomId, UserId, rfc3339_millis};
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::broadcast;

pub(super) type Events = BoxStream<'static, Result<Arc<LiveEvent>>>;

/// Most live events a subscription takes from the hub at once.
const LIVE_BATCH: usize = 64;

/// The subscriptions one socket may hold at once (`ws.max_subscriptions`).
struct SubscriptionBudget {
    active: Arc<AtomicUsize>,
    max: usize,
}

/// One held subscription; dropping it (the stream ends or is stopped) gives it back.
pub(super) struct Permit(Arc<AtomicUsize>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Takes a subscription from the socket's budget, or refuses with `TOO_MANY_SUBSCRIPTIONS`.
pub(super) fn permit(ctx: &Context<'_>) -> Result<Permit> {
    let budget = ctx
        .data::<SubscriptionBudget>()
        .map_err(|e| gql(girok_engine::Error::Internal(e.message)))?;
    let taken = budget.active.fetch_add(1, Ordering::AcqRel);
    let permit = Permit(budget.active.clone());
    if taken >= budget.max {
        let max = budget.max;
        return Err(
            async_graphql::Error::new(format!("at most {max} subscriptions per socket"))
                .extend_with(|_, ext| ext.set("code", "TOO_MANY_SUBSCRIPTIONS")),
        );
    }
    Ok(permit)
}

/// Keeps `permit` for as long as `stream` lives.
pub(super) fn holding<S: Stream + Send + 'static>(
    permit: Permit,
    stream: S,
) -> impl Stream<Item = S::Item> {
    stream.map(move |item| {
        let _held = &permit;
        item
    })
}

fn slow_consumer(missed: u64) -> async_graphql::Error {
    async_graphql::Error::new(format!(
        "this subscription fell {missed} events behind and ended; re-read and subscribe again"
    ))
    .extend_with(|_, ext| ext.set("code", "SLOW_CONSUMER"))
}

/// A follow's events as a stream, ending quietly after the member's leaving (or when the
/// hub closes), and with `SLOW_CONSUMER` when the subscriber fell behind the hub.
pub(super) fn followed(follow: Follow) -> Events {
    let state = (follow, VecDeque::new(), Vec::new());
    stream::unfold(Some(state), |state| async move {
        let (mut follow, mut ready, mut batch) = state?;
        loop {
            if let Some(event) = ready.pop_front() {
                return Some((Ok(event), Some((follow, ready, batch))));
            }
            match follow.next(LIVE_BATCH, &mut batch).await {
                Ok(()) => ready.extend(batch.drain(..)),
                Err(FollowEnd::Left | FollowEnd::Closed) => return None,
                Err(FollowEnd::Lagged(missed)) => return Some((Err(slow_consumer(missed)), None)),
                Err(FollowEnd::Failed(error)) => return Some((Err(gql(error)), None)),
                // A live-only follow that ends on lag neither catches up nor resumes.
                Err(FollowEnd::TooFarBehind | FollowEnd::ResumeTooOld(_)) => {
                    return Some((Err(slow_consumer(0)), None));
                }
            }
        }
    })
    .boxed()
}

/// Live events of `room` for member `me`, who is known to be one, ending after they leave.
fn room_events(engine: &Arc<Engine>, me: UserId, room: RoomId) -> Events {
    followed(engine.follow_live(LiveScope::Room { room, member: me }))
}

/// Authorizes `me` on `room`, then streams its events.
async fn member_room_events(ctx: &Context<'_>, room_id: &ID) -> Result<(Arc<Engine>, Events)> {
    let room = room_id_arg("roomId", room_id)?;
    let me = principal(ctx)?.user;
    let engine = engine(ctx)?.clone();
    // The follow subscribes first, then checks: a member added meanwhile misses nothing.
    let scope = LiveScope::Room { room, member: me };
    let follow = match engine.follow(scope, FollowOptions::live_only()).await {
        Ok(follow) => follow,
        Err(FollowEnd::Failed(error)) => return Err(gql(error)),
        Err(_) => return Err(gql(girok_engine::Error::Unavailable)),
    };
    Ok((engine, followed(follow)))
}

/// An edit or a deletion.
#[derive(SimpleObject)]
pub struct MessageUpdate {
    pub room_id: ID,
    pub message_id: ID,
    pub message_seq: Seq,
    /// The seq of the edit or deletion.
    pub seq: Seq,
    pub deleted: bool,
    /// The new text of an edit (null for a deletion: the text is gone).
    pub body: Option<String>,
    pub at: String,
}

/// Something changed in one of your rooms.
pub struct RoomUpdate {
    event: Arc<LiveEvent>,
    me: UserId,
    engine: Arc<Engine>,
}

#[async_graphql::Object]
impl RoomUpdate {
    async fn room_id(&self) -> Option<ID> {
        self.event.payload.room().map(|r| ID(r.to_string()))
    }
    /// The event's seq.
    async fn seq(&self) -> Seq {
        Seq(self.event.seq)
    }
    /// What happened: the event type, e.g. `chat.message.sent`, `chat.member.joined`,
    /// `chat.room.read`, `matching.matched` (a match opened its room with you in it),
    /// `matching.skipped` (the match ended: both left its room).
    async fn r#type(&self) -> &str {
        self.event.type_name()
    }
    async fn actor_id(&self) -> Option<ID> {
        self.event.actor.map(|a| ID(a.to_string()))
    }
    /// The room as of this event (last message, unread count, ...); null once you are no
    /// longer a member.
    async fn room(&self) -> Result<Option<Room>> {
        let Some(room) = self.event.payload.room() else {
            return Ok(None);
        };
        match self.engine.room(self.me, room, Some(self.event.seq)).await {
            Ok(info) => Ok(Some(Room(info))),
            Err(girok_engine::Error::NotAMember(_)) => Ok(None),
            Err(error) => Err(gql(error)),
        }
    }
}

/// Chat subscriptions.
#[derive(Default)]
pub struct ChatSubscription;

#[Subscription]
impl ChatSubscription {
    /// New messages of a room you are a member of.
    async fn message_added(
        &self,
        ctx: &Context<'_>,
        room_id: ID,
    ) -> Result<impl Stream<Item = Result<MessageNode>> + use<>> {
        let permit = permit(ctx)?;
        let (_, events) = member_room_events(ctx, &room_id).await?;
        let messages = events.filter_map(|item| async move {
            match item {
                Err(error) => Some(Err(error)),
                Ok(event) => match &event.payload {
                    Payload::MessageSent {
                        room,
                        body,
                        client_id,
                        reply_to,
                        attachments,
                    } => Some(Ok(MessageNode(Message {
                        seq: event.seq,
                        id: event.id,
                        room: *room,
                        sender: event.actor,
                        body: body.clone(),
                        client_id: client_id.clone(),
                        commit_time_ms: event.commit_time_ms,
                        reply_to: *reply_to,
                        attachments: attachments.clone(),
                        edited_ms: None,
                    }))),
                    _ => None,
                },
            }
        });
        Ok(holding(permit, messages))
    }

    /// Edits and deletions of a room's messages.
    async fn message_updated(
        &self,
        ctx: &Context<'_>,
        room_id: ID,
    ) -> Result<impl Stream<Item = Result<MessageUpdate>> + use<>> {
        let permit = permit(ctx)?;
        let (_, events) = member_room_events(ctx, &room_id).await?;
        let updates = events.filter_map(|item| async move {
            let event = match item {
                Err(error) => return Some(Err(error)),
                Ok(event) => event,
            };
            let (room, message, message_seq, body) = match &event.payload {
                Payload::MessageEdited {
                    room,
                    message,
                    message_seq,
                    body,
                } => (room, message, message_seq, Some(body.clone())),
                Payload::MessageDeleted {
                    room,
                    message,
                    message_seq,
                    ..
                } => (room, message, message_seq, None),
                _ => return None,
            };
            Some(Ok(MessageUpdate {
                room_id: ID(room.to_string()),
                message_id: ID(message.to_string()),
                message_seq: Seq(*message_seq),
                seq: Seq(event.seq),
                deleted: body.is_none(),
                body,
                at: rfc3339_millis(event.commit_time_ms),
            }))
        });
        Ok(holding(permit, updates))
    }

    /// Every change to any of your rooms: messages, edits, members, read receipts, and being
    /// added to or removed from a room.
    async fn room_updated(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl Stream<Item = Result<RoomUpdate>> + use<>> {
        let permit = permit(ctx)?;
        let me = principal(ctx)?.user;
        let engine = engine(ctx)?.clone();
        let mine = followed(engine.follow_live(LiveScope::User(me)));
        // Your rooms from the memberships view: never from a half-built one at start-up.
        engine.wait_for_views(None).await.map_err(gql)?;
        let mut rooms = SelectAll::new();
        let mut member_of = HashSet::new();
        for room in engine.rooms_of(me) {
            rooms.push(room_events(&engine, me, room));
            member_of.insert(room);
        }
        let state = RoomWatch {
            me,
            engine,
            mine,
            rooms,
            member_of,
        };
        let updates = stream::unfold(Some(state), |state| async move {
            let mut state = state?;
            let next = state.next().await;
            match next {
                Ok(event) => {
                    let update = RoomUpdate {
                        event,
                        me: state.me,
                        engine: state.engine.clone(),
                    };
                    Some((Ok(update), Some(state)))
                }
                Err(error) => Some((Err(error), None)),
            }
        });
        Ok(holding(permit, updates))
    }
}

/// The state of a `roomUpdated` subscription: your own membership events, and one live
/// stream per room you are in (added as you join).
struct RoomWatch {
    me: UserId,
    engine: Arc<Engine>,
    mine: Events,
    rooms: SelectAll<Events>,
    member_of: HashSet<RoomId>,
}

impl RoomWatch {
    async fn next(&mut self) -> Result<Arc<LiveEvent>> {
        loop {
            tokio::select! {
                own = self.mine.next() => match own {
                    Some(Ok(event)) => {
                        for membership in event.memberships().filter(|m| m.user == self.me) {
                            if !membership.joined {
                                self.member_of.remove(&membership.room);
                            } else if self.member_of.insert(membership.room) {
                                let room = membership.room;
                                self.rooms.push(room_events(&self.engine, self.me, room));
                            }
                        }
                        return Ok(event);
                    }
                    Some(Err(error)) => return Err(error),
                    None => return Err(gql(girok_engine::Error::Unavailable)),
                },
                Some(item) = self.rooms.next() => {
                    let event = item?;
                    // Your own joins and leaves arrive on your own topic.
                    let about_me = event.changes_membership_of(self.me);
                    let current = event.payload.room().is_some_and(|r| self.member_of.contains(&r));
                    if !about_me && current {
                        return Ok(event);
                    }
                }
            }
        }
    }
}

/// The close of a socket whose session ended or whose token expired: graphql-transport-ws's
/// 4403 Forbidden, which clients (graphql-ws) retry with fresh connection parameters, unlike
/// 4401, which they take as final.
const CLOSE_FORBIDDEN: u16 = 4403;

/// `GET /graphql/ws`: the subscription socket.
pub async fn upgrade(
    State(state): State<GraphqlState>,
    ConnectInfo(PeerAddr(peer)): ConnectInfo<PeerAddr>,
    headers: HeaderMap,
    protocol: GraphQLProtocol,
    ws: WebSocketUpgrade,
) -> Response {
    let auth = match authenticate(&state.auth, &headers, peer).await {
        Ok(auth) => auth,
        Err(error) => return error.into_response(),
    };
    if let Err(error) = crate::auth::origin::check_socket_origin(&state.auth, &headers, &auth) {
        return error.into_response();
    }
    let max_frame = state.config.ws.max_frame_bytes.max(1024);
    let max_subscriptions = state.config.ws.max_subscriptions.max(1);
    let schema = super::document_guard::Guarded {
        schema: state.schema.clone(),
        guard: state.document_guard,
    };
    ws.protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .read_buffer_size(crate::ws::READ_BUFFER_BYTES)
        .max_message_size(max_frame)
        .max_frame_size(max_frame)
        .on_upgrade(move |socket| {
            let mut data = Data::default();
            data.insert(SubscriptionBudget {
                active: Arc::new(AtomicUsize::new(0)),
                max: max_subscriptions,
            });
            let (end, ended) = tokio::sync::mpsc::channel(1);
            let limits = super::socket::SocketLimits {
                limits: crate::ws::WsLimits::from(&state.config.ws),
                metrics: state.ws_metrics.clone(),
                stopping: state.stopping.clone(),
                ended,
            };
            let sockets = state.sockets.clone();
            let socket_loop = super::socket::serve(socket, limits, move |sink, stream| {
                GraphQLWebSocket::new_with_pair(sink, stream, schema, protocol)
                    .with_data(data)
                    .on_connection_init(move |payload| connection_init(state, auth, payload, end))
                    .serve()
            });
            crate::ws::on_sockets_runtime(&sockets, socket_loop)
        })
}

/// Authenticates the socket: the cookie of the upgrade, or the `authorization` of the
/// `connection_init` payload. A refusal closes the socket (code 1002, the reason in the
/// close frame). From then on the socket lives as long as the session: `end` asks the
/// socket's writer to close it with 4403 when the session ends or the access token expires
/// (the client reconnects with a fresh one).
async fn connection_init(
    state: GraphqlState,
    mut auth: RequestAuth,
    payload: serde_json::Value,
    end: tokio::sync::mpsc::Sender<(u16, &'static str)>,
) -> Result<Data> {
    if auth.principal.is_none() {
        let header = payload
            .get("authorization")
            .or_else(|| payload.get("Authorization"))
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let Some(token) = header.strip_prefix("Bearer ") else {
            return Err(api(crate::auth::unauthenticated(
                "send {\"authorization\": \"Bearer <token>\"} in connection_init",
            )));
        };
        auth.principal = Some(bearer_principal(&state.auth, token).await.map_err(api)?);
    }
    if let Some(principal) = auth.principal {
        let ending = state
            .auth
            .live_sessions
            .sign_in(state.engine.clone(), principal, false)
            .map_err(|refused| {
                api(crate::error::ApiError::new(
                    axum::http::StatusCode::TOO_MANY_REQUESTS,
                    "TOO_MANY_SOCKETS",
                    refused.to_string(),
                ))
            })?;
        tokio::spawn(async move {
            tokio::select! {
                ending = ending => {
                    let close = match ending {
                        Ending::Revoked => (CLOSE_FORBIDDEN, "Forbidden: the session has ended"),
                        Ending::Expired => (CLOSE_FORBIDDEN, "Forbidden: the access token expired"),
                    };
                    let _ = end.send(close).await;
                }
                () = end.closed() => {}
            }
        });
    }
    // A socket is not a form post: cookie callers get no CSRF pass for mutations here.
    auth.csrf_ok = false;
    let mut data = Data::default();
    data.insert(auth);
    // What the resolvers read over HTTP too (`graphql_post`): the shared parts.
    data.insert(state.shared.clone());
    Ok(data)
}

/// Feed subscriptions.
#[derive(Default)]
pub struct FeedSubscription;

#[Subscription]
impl FeedSubscription {
    /// New posts by you and by everyone you follow, as they are posted.
    async fn feed_post_added(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl Stream<Item = Result<Post>> + use<>> {
        let permit = permit(ctx)?;
        let me = principal(ctx)?.user;
        let engine = engine(ctx)?.clone();
        let rx = engine.subscribe_feed(me);
        let posts = live(rx).then(move |item| {
            let engine = engine.clone();
            async move {
                let post = item?;
                // Deleted at once: nothing to show.
                engine.pushed_post(me, post.seq).await.map_err(gql)
            }
        });
        let posts = posts.filter_map(
            |item: Result<Option<girok_engine::feed::Post>>| async move {
                item.map(|found| found.map(Post)).transpose()
            },
        );
        Ok(holding(permit, posts))
    }

    /// Your new notifications (likes and comments on your posts, new followers, mentions).
    async fn notification_added(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl Stream<Item = Result<Notification>> + use<>> {
        let permit = permit(ctx)?;
        let me = principal(ctx)?.user;
        let engine = engine(ctx)?.clone();
        let rx = engine.subscribe_notifications(me);
        let notes = live(rx).then(move |item| {
            let engine = engine.clone();
            async move {
                let note = item?;
                let resolved = engine.resolve_notification(note).await.map_err(gql)?;
                Ok(Notification(resolved))
            }
        });
        Ok(holding(permit, notes))
    }
}

/// A live receiver as a stream that ends with `SLOW_CONSUMER` when it lags.
fn live<T: Clone + Send + 'static>(rx: broadcast::Receiver<T>) -> BoxStream<'static, Result<T>> {
    stream::unfold(Some(rx), |state| async move {
        let mut rx = state?;
        match rx.recv().await {
            Ok(value) => Some((Ok(value), Some(rx))),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                Some((Err(slow_consumer(missed)), None))
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    })
    .boxed()
}
