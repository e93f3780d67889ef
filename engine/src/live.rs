//! One live-delivery API for every transport (the WebSocket protocol and GraphQL
//! subscriptions today, QUIC next): the events of a room, for one of its members, or of a
//! user, from a seq of the log and then live from the hub, each once and in seq order. A
//! [`Follow`] reads what it owes from the log first (a resume), then takes the hub's events,
//! several at a time when they are already there; the hub's events are shared, so a frame
//! rendered from one ([`LiveEvent::rendered`]) is rendered once for every subscriber. A
//! follower that falls behind the hub either reads the gap from the log (`OnLag::CatchUp`, so
//! a client that reads its frames is never cut because the server lagged) or ends
//! (`OnLag::End`); one further behind than `max_scan` events ends as too far behind. A room
//! member's follow ends after the event of their leaving.

use crate::engine::Engine;
use crate::error::Error;
use crate::hub::{LiveEvent, Topic};
use girok_schemas::{Event, RoomId, Seq, UserId};
use std::sync::Arc;
use tokio::sync::broadcast;

/// Log events read per step while catching up.
const CATCH_UP_CHUNK: usize = 1000;

/// Whose events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiveScope {
    /// A room's events, for a member (the follow ends when that member leaves).
    Room { room: RoomId, member: UserId },
    /// A user's own events: their joining and leaving rooms.
    User(UserId),
    /// A user's place in random matching: their tickets, matches and skips.
    Matching(UserId),
}

impl LiveScope {
    /// The hub topic the scope's events are published on.
    pub fn topic(self) -> Topic {
        match self {
            LiveScope::Room { room, .. } => Topic::Room(room),
            LiveScope::User(user) => Topic::User(user),
            LiveScope::Matching(user) => Topic::Matching(user),
        }
    }

    /// Whether `event` is one of the scope's.
    pub fn matches(self, event: &Event) -> bool {
        match (self, &event.payload) {
            (LiveScope::Room { room, .. }, payload) => payload.room() == Some(room),
            (LiveScope::User(user), _) => event.changes_membership_of(user),
            (LiveScope::Matching(user), _) => {
                crate::matching::MatchingUpdate::of(event, user).is_some()
            }
        }
    }

    /// `event` as the scope's subscriber sees it (as the hub publishes it on the scope's
    /// topic): members see a match and a skip without what is each user's own.
    fn shown(self, event: Event) -> Event {
        match self {
            LiveScope::Room { .. } | LiveScope::User(_) => event.for_members().unwrap_or(event),
            LiveScope::Matching(_) => event,
        }
    }

    /// Whether the follow ends after `event`: the member left the room.
    fn ends_with(self, event: &Event) -> bool {
        match self {
            LiveScope::Room { room, member } => event
                .memberships()
                .any(|m| !m.joined && m.room == room && m.user == member),
            LiveScope::User(_) | LiveScope::Matching(_) => false,
        }
    }
}

/// What a follower that falls behind the hub does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnLag {
    /// Reads what it missed from the log (up to `max_scan` events of the log).
    CatchUp,
    /// Ends with [`FollowEnd::Lagged`].
    End,
}

/// Where a follow starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Every event the hub publishes after the follow subscribed.
    Live,
    /// The events after the durable head at the start ([`Follow::head`], which the client is
    /// told and may resume from later).
    Head,
    /// The scope's events after this seq, from the log, then live (a resume). A seq past the
    /// head counts as the head.
    After(Seq),
}

/// Where a follow starts and what it may cost.
#[derive(Clone, Copy, Debug)]
pub struct FollowOptions {
    pub start: Start,
    /// Most events of the scope one resume or catch-up replays.
    pub max_resume: u64,
    /// Most log events (of every scope) one resume or catch-up reads through.
    pub max_scan: u64,
    pub on_lag: OnLag,
}

impl FollowOptions {
    /// Live events only, ending on lag.
    pub fn live_only() -> Self {
        Self {
            start: Start::Live,
            max_resume: 0,
            max_scan: 0,
            on_lag: OnLag::End,
        }
    }
}

/// Why a follow ended.
#[derive(Debug)]
pub enum FollowEnd {
    /// The member left the room; their leaving was the last event delivered.
    Left,
    /// The hub closed (the last handle of the engine is gone).
    Closed,
    /// Behind the hub by more than `max_scan` events of the log.
    TooFarBehind,
    /// Behind the hub by `missed` events, with [`OnLag::End`].
    Lagged(u64),
    /// A resume or catch-up would replay more than `max_resume` events of the scope, or read
    /// through more than `max_scan` of the log.
    ResumeTooOld(String),
    /// Reading the log failed.
    Failed(Error),
}

/// A scope's events from a seq, then live.
pub struct Follow {
    engine: Arc<Engine>,
    scope: LiveScope,
    options: FollowOptions,
    live: broadcast::Receiver<Arc<LiveEvent>>,
    /// The durable head when the follow started.
    head: Seq,
    /// The next seq owed: every event before it was delivered or is not the scope's.
    next: Seq,
    /// While catching up: the seq up to which the log is read before live events.
    replay_to: Option<Seq>,
    /// Events of the scope replayed by the current resume or catch-up.
    replayed: u64,
    /// The hub dropped events for this follower (handled at the next call).
    lagged: Option<u64>,
    /// Set once the follow ends; returned by the next call.
    end: Option<FollowEnd>,
    catch_ups: u64,
}

impl Follow {
    /// A follow owing every event of `scope` from where `options.start` says; the log is read
    /// up to `head` first when that is at or below it.
    fn new(
        engine: Arc<Engine>,
        scope: LiveScope,
        options: FollowOptions,
        live: broadcast::Receiver<Arc<LiveEvent>>,
        head: Seq,
    ) -> Self {
        let next = match options.start {
            // Whatever the hub publishes from now on, however far behind the head it is.
            Start::Live => 0,
            Start::Head => head + 1,
            Start::After(from) => from.min(head) + 1,
        };
        Self {
            engine,
            scope,
            options,
            live,
            head,
            next,
            replay_to: (next > 0 && next <= head).then_some(head),
            replayed: 0,
            lagged: None,
            end: None,
            catch_ups: 0,
        }
    }
}

impl Engine {
    /// Starts following `scope` as `options` say. A room's follow is for a member: anyone
    /// else is refused (`NOT_A_MEMBER`, `ROOM_NOT_FOUND`). A resume from further back than
    /// the options allow is refused with [`FollowEnd::ResumeTooOld`].
    pub async fn follow(
        self: &Arc<Self>,
        scope: LiveScope,
        options: FollowOptions,
    ) -> std::result::Result<Follow, FollowEnd> {
        // Subscribe first, then look at the head: every event after the head reaches the
        // receiver, and the log covers the rest up to the head.
        let live = self.hub().subscribe(scope.topic());
        if let LiveScope::Room { room, member } = scope {
            self.require_member(member, room)
                .await
                .map_err(FollowEnd::Failed)?;
        }
        let head = self.head();
        if let Start::After(from) = options.start
            && let Some(message) = self.too_old(scope, options, from, head).await
        {
            return Err(FollowEnd::ResumeTooOld(message));
        }
        Ok(Follow::new(self.clone(), scope, options, live, head))
    }

    /// Starts following `scope` live only ([`Start::Live`], ending on lag), for a caller that
    /// knows the member is one (from the memberships view, or from their own joining event):
    /// nothing is checked or read from the log.
    pub fn follow_live(self: &Arc<Self>, scope: LiveScope) -> Follow {
        let live = self.hub().subscribe(scope.topic());
        let head = self.head();
        Follow::new(self.clone(), scope, FollowOptions::live_only(), live, head)
    }

    /// Why a resume of `scope` from `from` is refused, if it is: more of the log to read
    /// through than `max_scan`, or (known from the room's history) more of the room's
    /// messages than `max_resume`. The scope's events are counted exactly while replaying.
    async fn too_old(
        &self,
        scope: LiveScope,
        options: FollowOptions,
        from: Seq,
        head: Seq,
    ) -> Option<String> {
        if head.saturating_sub(from) > options.max_scan {
            return Some(format!(
                "more than {} events in the log since seq {from}: reload the history instead",
                options.max_scan
            ));
        }
        let LiveScope::Room { room, .. } = scope else {
            return None;
        };
        if from >= head {
            return None;
        }
        // The room's count comes from its history view: let it reach the head first, so a
        // refusal comes before anything is delivered. (On a timeout the replay still counts
        // exactly and refuses then.)
        let _ = self.wait_for_views(Some(head)).await;
        let cap = usize::try_from(options.max_resume.saturating_add(1)).unwrap_or(usize::MAX);
        let messages = match self.room_messages_after(room, from, cap) {
            Ok(messages) => messages,
            Err(error) => return Some(format!("cannot count the room's messages: {error}")),
        };
        (messages as u64 > options.max_resume).then(|| {
            format!(
                "more than {} events of this topic since seq {from}: reload the history instead",
                options.max_resume
            )
        })
    }
}

impl Follow {
    /// The durable head when the follow started (a resume replays up to it).
    pub fn head(&self) -> Seq {
        self.head
    }

    /// Catch-ups from the log so far (the hub dropped events for this follower).
    pub fn catch_ups(&self) -> u64 {
        self.catch_ups
    }

    /// Whether the next call reads the log (a resume or a catch-up): callers that race
    /// [`Follow::next`] against other work may prefer to let such a call finish.
    pub fn replaying(&self) -> bool {
        self.replay_to.is_some() || self.lagged.is_some()
    }

    /// Appends the next events of the scope to `events`, in seq order: from the log while it
    /// owes them (a chunk of the log's worth at a time), then live (every live event that
    /// already arrived, up to `max`). Waits for at least one, except after falling behind
    /// the hub: then it returns with none, and the next call reads the gap (see
    /// [`Follow::replaying`]). An `Err` ends the follow. Cancel-safe: a call dropped while
    /// waiting loses nothing.
    pub async fn next(
        &mut self,
        max: usize,
        events: &mut Vec<Arc<LiveEvent>>,
    ) -> std::result::Result<(), FollowEnd> {
        let max = max.max(1);
        loop {
            if let Some(end) = self.end.take() {
                return Err(end);
            }
            if let Some(missed) = self.lagged.take() {
                return self.behind(missed);
            }
            if let Some(to) = self.replay_to {
                self.replay(to, events).await?;
                if !events.is_empty() {
                    return Ok(());
                }
                continue;
            }
            let first = match self.live.recv().await {
                Ok(event) => event,
                Err(broadcast::error::RecvError::Lagged(missed)) => return self.behind(missed),
                Err(broadcast::error::RecvError::Closed) => return Err(FollowEnd::Closed),
            };
            let before = events.len();
            self.take_live(first, events);
            while self.end.is_none() && events.len() - before < max {
                match self.live.try_recv() {
                    Ok(event) => self.take_live(event, events),
                    Err(broadcast::error::TryRecvError::Lagged(missed)) => {
                        self.lagged = Some(missed);
                        break;
                    }
                    Err(_) => break,
                }
            }
            if events.len() > before {
                return Ok(());
            }
        }
    }

    /// The hub dropped `missed` events for this follower: catch up from the log, or end.
    fn behind(&mut self, missed: u64) -> std::result::Result<(), FollowEnd> {
        if self.options.on_lag == OnLag::End {
            return Err(FollowEnd::Lagged(missed));
        }
        let head = self.engine.head();
        if head.saturating_sub(self.next) > self.options.max_scan {
            return Err(FollowEnd::TooFarBehind);
        }
        self.catch_ups += 1;
        self.replayed = 0;
        self.replay_to = Some(head);
        Ok(())
    }

    /// Appends the scope's events of the next chunk of the log up to `to` (possibly none);
    /// the replay is over once the chunk reaches `to` or the log has nothing more.
    async fn replay(
        &mut self,
        to: Seq,
        events: &mut Vec<Arc<LiveEvent>>,
    ) -> std::result::Result<(), FollowEnd> {
        if self.next > to {
            self.replay_to = None;
            return Ok(());
        }
        let chunk = self
            .engine
            .events(self.next, CATCH_UP_CHUNK)
            .await
            .map_err(FollowEnd::Failed)?;
        if chunk.last().is_none_or(|event| event.seq >= to) {
            self.replay_to = None;
        }
        for event in chunk.into_iter().take_while(|event| event.seq <= to) {
            self.next = event.seq + 1;
            if !self.scope.matches(&event) {
                continue;
            }
            self.replayed += 1;
            if self.replayed > self.options.max_resume {
                return Err(FollowEnd::ResumeTooOld(format!(
                    "more than {} events of this topic to replay: reload the history and \
                     subscribe again",
                    self.options.max_resume
                )));
            }
            let ends = self.scope.ends_with(&event);
            let event = self.scope.shown(event);
            events.push(Arc::new(LiveEvent::new(Arc::new(event))));
            if ends {
                self.end = Some(FollowEnd::Left);
                self.replay_to = None;
                break;
            }
        }
        Ok(())
    }

    /// Takes a live event into `events` once (an event before `next` was delivered from the
    /// log already), if it is the scope's.
    fn take_live(&mut self, event: Arc<LiveEvent>, events: &mut Vec<Arc<LiveEvent>>) {
        if event.seq < self.next {
            return;
        }
        self.next = event.seq + 1;
        if !self.scope.matches(&event) {
            return;
        }
        if self.scope.ends_with(&event) {
            self.end = Some(FollowEnd::Left);
        }
        events.push(event);
    }
}
