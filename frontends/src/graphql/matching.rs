//! Random matching over GraphQL: `matchingStatus` and `blockedUsers`; `joinMatching`,
//! `leaveMatching`, `skipMatch`, `blockUser`, `unblockUser`; and the subscription
//! `matchingUpdated`, which tells the subscriber of their ticket opening, their match (with
//! the partner), an expiry, a closing and a skip. The same operations as REST's
//! `/v1/matching`; the rules and errors are the engine's.

use super::accounts::User;
use super::args::{engine, user_id_arg};
use super::errors::{changing_principal, gql, principal};
use super::scalars::Seq;
use super::subscriptions::{followed, holding, permit};
use async_graphql::{Context, Enum, ID, Object, Result, SimpleObject, Subscription};
use futures::stream::{Stream, StreamExt};
use girok_engine::matching::{CurrentMatch, MatchingStatus as Status, MatchingUpdate as Update};
use girok_engine::{Ack, Command, Engine, LiveScope, MatchingCommand};
use girok_schemas::{UserId, rfc3339_millis};
use std::sync::Arc;

/// Your place in random matching.
#[derive(SimpleObject)]
pub struct MatchingStatus {
    /// Your open ticket, if you wait.
    queued: Option<QueuedTicket>,
    /// Open tickets, yours included.
    waiting: u64,
    /// Your current match.
    #[graphql(name = "match")]
    current: Option<Match>,
}

/// An open ticket.
#[derive(SimpleObject)]
pub struct QueuedTicket {
    ticket_id: ID,
    seq: Seq,
    since: String,
    tags: Vec<String>,
    language: Option<String>,
}

/// A current match: its room and your partner.
#[derive(SimpleObject)]
pub struct Match {
    room_id: ID,
    partner: User,
    seq: Seq,
    since: String,
}

/// What `joinMatching` and `skipMatch` answer: the write's seq, the match it made at once
/// (a partner was waiting; exact, from the write's own events) and your status now.
#[derive(SimpleObject)]
pub struct MatchingResult {
    seq: Seq,
    matched: Option<Match>,
    status: MatchingStatus,
}

#[derive(SimpleObject)]
pub struct BlockResult {
    seq: Seq,
    blocked: bool,
}

/// What changed in `matchingUpdated`.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum MatchingUpdateKind {
    /// Your ticket opened.
    Queued,
    /// You were matched: `roomId` and `partner` say with whom and where.
    Matched,
    /// Your ticket waited too long and closed.
    Expired,
    /// Your ticket closed: you left (`reason: "left"`) or lost your last connection.
    Dequeued,
    /// Your match ended (`byMe`: you skipped it).
    Skipped,
}

/// One change of your place in matching.
#[derive(SimpleObject)]
pub struct MatchingUpdate {
    kind: MatchingUpdateKind,
    seq: Seq,
    ticket_id: Option<ID>,
    /// A queued ticket's tags and language.
    tags: Vec<String>,
    language: Option<String>,
    room_id: Option<ID>,
    partner: Option<User>,
    shared_tags: Vec<String>,
    waited_ms: Option<i64>,
    reason: Option<String>,
    by_me: Option<bool>,
}

async fn match_of(engine: &Engine, current: Option<CurrentMatch>) -> Result<Option<Match>> {
    Ok(match current {
        Some(current) => Some(Match {
            room_id: ID(current.room.to_string()),
            partner: User::public(engine.user(current.partner).await.map_err(gql)?),
            seq: Seq(current.seq),
            since: rfc3339_millis(current.since_ms),
        }),
        None => None,
    })
}

async fn status_of(engine: &Engine, user: UserId) -> Result<MatchingStatus> {
    let status: Status = engine.matching_status(user).await.map_err(gql)?;
    let current = match_of(engine, status.current).await?;
    Ok(MatchingStatus {
        queued: status.queued.map(|q| QueuedTicket {
            ticket_id: ID(q.ticket.to_string()),
            seq: Seq(q.seq),
            since: rfc3339_millis(q.since_ms),
            tags: q.tags,
            language: q.language,
        }),
        waiting: status.waiting,
        current,
    })
}

async fn run(ctx: &Context<'_>, command: MatchingCommand) -> Result<(UserId, Ack)> {
    let me = changing_principal(ctx)?.user;
    let ack = engine(ctx)?
        .execute(me, Command::Matching(command))
        .await
        .map_err(gql)?;
    Ok((me, ack))
}

async fn with_status(ctx: &Context<'_>, command: MatchingCommand) -> Result<MatchingResult> {
    let (me, ack) = run(ctx, command).await?;
    let engine = engine(ctx)?;
    let made = CurrentMatch::made_by(&ack);
    Ok(MatchingResult {
        seq: Seq(ack.seq),
        matched: match_of(engine, made).await?,
        status: status_of(engine, me).await?,
    })
}

#[derive(Default)]
pub struct MatchingQuery;

#[Object]
impl MatchingQuery {
    /// Your open ticket, how many wait, and your current match.
    async fn matching_status(&self, ctx: &Context<'_>) -> Result<MatchingStatus> {
        let me = principal(ctx)?.user;
        status_of(engine(ctx)?, me).await
    }

    /// The users you block, oldest block first.
    async fn blocked_users(&self, ctx: &Context<'_>) -> Result<Vec<User>> {
        let me = principal(ctx)?.user;
        let engine = engine(ctx)?;
        let blocked = engine.blocked_users(me).await.map_err(gql)?;
        let users = engine.users(blocked.clone()).await.map_err(gql)?;
        Ok(blocked
            .iter()
            .filter_map(|id| {
                users
                    .get(id)
                    .map(|user| User::public(user.as_ref().clone()))
            })
            .collect())
    }
}

#[derive(Default)]
pub struct MatchingMutation;

#[Object]
impl MatchingMutation {
    /// Waits for a random partner: up to 10 interest tags (1–32 letters, digits or `-`) and a
    /// language. Matched at once when a compatible partner waits (`ALREADY_QUEUED` if you
    /// wait already, `ALREADY_MATCHED` while in a match).
    async fn join_matching(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] tags: Vec<String>,
        language: Option<String>,
    ) -> Result<MatchingResult> {
        with_status(ctx, MatchingCommand::Join { tags, language }).await
    }

    /// Stops waiting (`NOT_QUEUED` if you do not wait).
    async fn leave_matching(&self, ctx: &Context<'_>) -> Result<Seq> {
        let (_, ack) = run(ctx, MatchingCommand::Leave).await?;
        Ok(Seq(ack.seq))
    }

    /// Ends your match (both leave its room, which closes) and, unless `requeue: false`,
    /// waits again with the same preferences; the pair is not matched again for a day
    /// (`NOT_MATCHED` if you are in no match).
    async fn skip_match(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = true)] requeue: bool,
    ) -> Result<MatchingResult> {
        with_status(ctx, MatchingCommand::Skip { requeue }).await
    }

    /// Blocks a user: never matched with you again, no direct messages either way; a match
    /// with them ends (`ALREADY_BLOCKED`).
    async fn block_user(&self, ctx: &Context<'_>, user_id: ID) -> Result<BlockResult> {
        let user = user_id_arg("userId", &user_id)?;
        let (_, ack) = run(ctx, MatchingCommand::Block { user }).await?;
        Ok(BlockResult {
            seq: Seq(ack.seq),
            blocked: true,
        })
    }

    /// Takes your block of a user back (`NOT_BLOCKED`).
    async fn unblock_user(&self, ctx: &Context<'_>, user_id: ID) -> Result<BlockResult> {
        let user = user_id_arg("userId", &user_id)?;
        let (_, ack) = run(ctx, MatchingCommand::Unblock { user }).await?;
        Ok(BlockResult {
            seq: Seq(ack.seq),
            blocked: false,
        })
    }
}

#[derive(Default)]
pub struct MatchingSubscription;

#[Subscription]
impl MatchingSubscription {
    /// Changes of your place in matching, live: your ticket opening, your match (with the
    /// partner), an expiry, a closing, a skip.
    async fn matching_updated(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl Stream<Item = Result<MatchingUpdate>> + use<>> {
        let permit = permit(ctx)?;
        let me = principal(ctx)?.user;
        let engine: Arc<Engine> = engine(ctx)?.clone();
        let events = followed(engine.follow_live(LiveScope::Matching(me)));
        let updates = events.filter_map(move |item| {
            let engine = engine.clone();
            async move {
                let event = match item {
                    Ok(event) => event,
                    Err(error) => return Some(Err(error)),
                };
                let update = Update::of(&event, me)?;
                Some(matching_update(&engine, event.seq, update).await)
            }
        });
        Ok(holding(permit, updates))
    }
}

async fn matching_update(engine: &Engine, seq: u64, update: Update) -> Result<MatchingUpdate> {
    let mut out = MatchingUpdate {
        kind: MatchingUpdateKind::Queued,
        seq: Seq(seq),
        ticket_id: None,
        tags: Vec::new(),
        language: None,
        room_id: None,
        partner: None,
        shared_tags: Vec::new(),
        waited_ms: None,
        reason: None,
        by_me: None,
    };
    match update {
        Update::Queued {
            ticket,
            tags,
            language,
        } => {
            out.ticket_id = Some(ID(ticket.to_string()));
            out.tags = tags;
            out.language = language;
        }
        Update::Matched {
            room,
            partner,
            shared_tags,
            waited_ms,
        } => {
            out.kind = MatchingUpdateKind::Matched;
            out.room_id = Some(ID(room.to_string()));
            out.partner = Some(User::public(engine.user(partner).await.map_err(gql)?));
            out.shared_tags = shared_tags;
            out.waited_ms = Some(waited_ms);
        }
        Update::Expired { .. } => out.kind = MatchingUpdateKind::Expired,
        Update::Dequeued { reason, .. } => {
            out.kind = MatchingUpdateKind::Dequeued;
            out.reason = Some(reason);
        }
        Update::Skipped { room, by_me } => {
            out.kind = MatchingUpdateKind::Skipped;
            out.room_id = Some(ID(room.to_string()));
            out.by_me = Some(by_me);
        }
    }
    Ok(out)
}
