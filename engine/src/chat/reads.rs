//! Chat reads: one room or a user's room list (last message, last activity, unread count),
//! a room's history in either direction, its members with their read receipts. Every read is
//! authorized against the write model first (through the hot-object caches the log writer
//! keeps current; a match room's members through the rows the matching stage publishes:
//! `membership.rs`), so a non-member learns nothing, not even by waiting; then it waits for the
//! views to reach the caller's `after` seq (read your writes). Message bodies come from the
//! log through the event cache.

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::hot::HotObjects;
use crate::limits::{MAX_PAGE_SIZE, MAX_ROOMS_PAGE_SIZE, MAX_UNREAD_COUNT};
use crate::log_reads::{event_in, page_size, read_event};
use crate::records::{member_key, member_of_key, record};
use crate::views::Views;
use crate::views::inputs::MessageRef;
use crate::views::room_history::Cursor;
use girok_schemas::proto::RoomRecord;
use girok_schemas::{Event, EventId, Payload, RoomId, Seq, UserId};
use girok_storage::{Store, Table};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// A room as one of its members sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomInfo {
    pub id: RoomId,
    /// Empty for a direct room.
    pub title: String,
    /// Who created it: a group room's owner.
    pub creator: Option<UserId>,
    pub created_seq: Seq,
    /// For a direct room: the other member (seen from the reader).
    pub direct_with: Option<UserId>,
    pub member_count: u32,
    pub message_count: usize,
    pub last_message: Option<Message>,
    /// The later of the last message and the reader joining: `(seq, time ms)`. Room lists
    /// are ordered by it, newest first.
    pub last_activity: MessageRef,
    /// How far the reader has read (0: nothing yet).
    pub read_up_to: Seq,
    /// Live messages after `read_up_to`, counted up to [`MAX_UNREAD_COUNT`].
    pub unread_count: usize,
}

impl RoomInfo {
    pub fn is_direct(&self) -> bool {
        self.direct_with.is_some()
    }
}

/// A message as readers see it (body read from the log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub seq: Seq,
    pub id: EventId,
    pub room: RoomId,
    pub sender: Option<UserId>,
    /// The current text (the latest edit's, if edited).
    pub body: String,
    pub client_id: Option<String>,
    pub commit_time_ms: i64,
    pub reply_to: Option<EventId>,
    /// Media ids (readable by the room's members).
    pub attachments: Vec<EventId>,
    /// When the text was last edited.
    pub edited_ms: Option<i64>,
}

/// Arguments of a history read.
#[derive(Clone, Copy, Debug, Default)]
pub struct HistoryQuery {
    /// Only messages older than this seq: the newest of them (the cursor of an older page).
    pub before: Option<Seq>,
    /// Only messages newer than this seq: the oldest of them (the cursor of a newer page).
    pub since: Option<Seq>,
    /// Page size, 1 to [`MAX_PAGE_SIZE`]; default [`crate::limits::DEFAULT_PAGE_SIZE`].
    pub limit: Option<usize>,
    /// Read-your-writes: answer only once the views reflect this seq.
    pub after: Option<Seq>,
}

/// A page of history, newest first.
#[derive(Clone, Debug)]
pub struct MessagePage {
    pub messages: Vec<Message>,
    pub has_older: bool,
    pub has_newer: bool,
}

/// Where a room list page starts: after the room with this activity seq and id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RoomCursor {
    pub activity_seq: Seq,
    pub room: RoomId,
}

impl fmt::Display for RoomCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.activity_seq, self.room)
    }
}

impl FromStr for RoomCursor {
    type Err = Error;

    fn from_str(raw: &str) -> Result<Self> {
        let bad = || Error::invalid("cursor", "not a cursor this server gave");
        let (seq, room) = raw.split_once('.').ok_or_else(bad)?;
        Ok(RoomCursor {
            activity_seq: seq.parse().map_err(|_| bad())?,
            room: room.parse().map_err(|_| bad())?,
        })
    }
}

/// Arguments of a room list read.
#[derive(Clone, Copy, Debug, Default)]
pub struct RoomsQuery {
    /// The `next_cursor` of the previous page.
    pub cursor: Option<RoomCursor>,
    /// Page size, 1 to [`MAX_ROOMS_PAGE_SIZE`]; default [`crate::limits::DEFAULT_PAGE_SIZE`].
    pub limit: Option<usize>,
    /// Read-your-writes, as for history.
    pub after: Option<Seq>,
}

/// A page of a user's rooms, most recent activity first.
#[derive(Clone, Debug)]
pub struct RoomsPage {
    pub rooms: Vec<RoomInfo>,
    /// Pass as `cursor` for the next page; `None` on the last page.
    pub next_cursor: Option<RoomCursor>,
}

/// A member and their read receipt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    pub user: UserId,
    /// 0 if they never read the room.
    pub read_up_to: Seq,
}

impl Engine {
    /// A room the actor is a member of.
    pub async fn room(&self, actor: UserId, room: RoomId, after: Option<Seq>) -> Result<RoomInfo> {
        let record = self.member_room(actor, room).await?.record;
        self.wait_for_views(after).await?;
        let joined = self.views.memberships.joined(actor, room);
        let mut infos = self.room_infos(actor, vec![(room, record, joined)]).await?;
        infos
            .pop()
            .ok_or_else(|| Error::Internal("a room's info went missing".into()))
    }

    /// The actor's rooms, most recent activity first.
    pub async fn rooms(&self, actor: UserId, query: RoomsQuery) -> Result<RoomsPage> {
        let limit = page_size(query.limit, MAX_ROOMS_PAGE_SIZE)?;
        self.wait_for_views(query.after).await?;
        let views = &self.views;
        let mut listed: Vec<(RoomCursor, MessageRef)> = views
            .memberships
            .rooms_of(actor)
            .into_iter()
            .map(|(room, joined)| {
                let activity = activity(views.room_history.last(room), Some(joined));
                let cursor = RoomCursor {
                    activity_seq: activity.0,
                    room,
                };
                (cursor, joined)
            })
            .filter(|(cursor, _)| query.cursor.is_none_or(|after| *cursor < after))
            .collect();
        listed.sort_unstable_by_key(|(cursor, _)| std::cmp::Reverse(*cursor));
        let next_cursor = (listed.len() > limit).then(|| listed[limit - 1].0);
        listed.truncate(limit);
        let mut records = self
            .room_records(listed.iter().map(|(cursor, _)| cursor.room).collect())
            .await?;
        let rooms = listed
            .into_iter()
            .map(|(cursor, joined)| {
                let record = records
                    .remove(&cursor.room)
                    .ok_or(Error::RoomNotFound(cursor.room))?;
                Ok((cursor.room, record, Some(joined)))
            })
            .collect::<Result<Vec<_>>>()?;
        let rooms = self.room_infos(actor, rooms).await?;
        Ok(RoomsPage { rooms, next_cursor })
    }

    /// Rooms as `reader` sees them, their last messages from the hot-object cache.
    async fn room_infos(
        &self,
        reader: UserId,
        rooms: Vec<(RoomId, Arc<RoomRecord>, Option<MessageRef>)>,
    ) -> Result<Vec<RoomInfo>> {
        let history = &self.views.room_history;
        // Each room's last message, read once: its info agrees with the message shown even
        // if another one lands meanwhile.
        let lasts: Vec<Option<(MessageRef, Option<Seq>)>> = rooms
            .iter()
            .map(|(room, ..)| {
                history
                    .last(*room)
                    .map(|last| (last, history.latest_edit(last.0)))
            })
            .collect();
        let wanted = lasts
            .iter()
            .flatten()
            .flat_map(|((seq, _), edit)| std::iter::once(*seq).chain(*edit));
        let events = self.events_by_seq(wanted.collect()).await?;
        rooms
            .into_iter()
            .zip(lasts)
            .map(|((room, record, joined), last)| {
                let last_message = last
                    .map(|((seq, _), edit)| message_in(&events, seq, edit))
                    .transpose()?;
                let last = last.map(|(last, _)| last);
                room_info(
                    &self.views,
                    reader,
                    RoomSnapshot {
                        room,
                        record: &record,
                        joined,
                        last,
                        last_message,
                    },
                )
            })
            .collect()
    }

    /// A page of a room's history, newest first. Only members may read it.
    pub async fn messages(
        &self,
        actor: UserId,
        room: RoomId,
        query: HistoryQuery,
    ) -> Result<MessagePage> {
        let limit = page_size(query.limit, MAX_PAGE_SIZE)?;
        let cursor = match (query.before, query.since) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "since",
                    "give `before` or `since`, not both",
                ));
            }
            (before, None) => Cursor::Before(before),
            (None, Some(since)) => Cursor::Since(since),
        };
        self.require_member(actor, room).await?;
        self.wait_for_views(query.after).await?;
        let page = self.views.room_history.page(room, cursor, limit)?;
        let versions: Vec<(Seq, Option<Seq>)> = page
            .seqs
            .into_iter()
            .map(|seq| (seq, self.views.room_history.latest_edit(seq)))
            .collect();
        let wanted = versions
            .iter()
            .flat_map(|(seq, edit)| std::iter::once(*seq).chain(*edit));
        let events = self.events_by_seq(wanted.collect()).await?;
        let messages = versions
            .into_iter()
            .map(|(seq, edit)| message_in(&events, seq, edit))
            .collect::<Result<Vec<_>>>()?;
        Ok(MessagePage {
            messages,
            has_older: page.has_older,
            has_newer: page.has_newer,
        })
    }

    /// A room's members (at most 1,000) with their read receipts, in user id order.
    pub async fn members(
        &self,
        actor: UserId,
        room: RoomId,
        after: Option<Seq>,
    ) -> Result<Vec<Member>> {
        let partner = self.member_room(actor, room).await?.partner;
        self.wait_for_views(after).await?;
        let users = if let Some(partner) = partner {
            let mut both = vec![actor, partner];
            both.sort();
            both
        } else {
            self.blocking(move |store| {
                store
                    .scan_prefix(Table::RoomidUseridMember, room.as_bytes())?
                    .into_iter()
                    .map(|(key, _)| {
                        member_of_key(&key)
                            .map(|(_, user)| user)
                            .ok_or_else(|| Error::Internal("corrupt membership key".into()))
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .await?
        };
        Ok(users
            .into_iter()
            .map(|user| Member {
                user,
                read_up_to: self.views.receipts.read_up_to(room, user),
            })
            .collect())
    }

    /// Succeeds when `actor` is a member of `room` now (per the write model, and matching's
    /// rows for a match room: `membership.rs`): the one authorization of room reads,
    /// subscriptions and typing. `ROOM_NOT_FOUND` or `NOT_A_MEMBER` otherwise. A group or
    /// direct room's member costs one lookup (their row implies the room).
    pub async fn require_member(&self, actor: UserId, room: RoomId) -> Result<()> {
        if self.has_member_row(actor, room).await? {
            return Ok(());
        }
        self.member_by_match(actor, room).await.map(drop)
    }

    /// The room, if `actor` is a member, through the hot-object caches (which the log writer
    /// keeps current; a match room's members through the matching stage's published rows).
    async fn member_room(&self, actor: UserId, room: RoomId) -> Result<MemberOf> {
        if self.has_member_row(actor, room).await? {
            let record = self.room_record(room).await?;
            return Ok(MemberOf {
                record,
                partner: None,
            });
        }
        self.member_by_match(actor, room).await
    }

    /// Whether `actor` has a member row in `room` (a match room has one only while a match an
    /// older build made lasts: `membership.rs`).
    async fn has_member_row(&self, actor: UserId, room: RoomId) -> Result<bool> {
        let member = self
            .through_cache(
                "memberships",
                HotObjects::members,
                [(room, actor)],
                |store, (room, user)| {
                    let key = member_key(*room, *user);
                    Ok(Some(store.get(Table::RoomidUseridMember, &key)?.is_some()))
                },
            )
            .await?;
        Ok(member.get(&(room, actor)).copied().unwrap_or(false))
    }

    /// `room`, for `actor` who has no member row in it: theirs if it is their current match's
    /// room, else `NOT_A_MEMBER` (or `ROOM_NOT_FOUND`).
    async fn member_by_match(&self, actor: UserId, room: RoomId) -> Result<MemberOf> {
        let record = self.room_record(room).await?;
        if super::membership::by_match(&record)
            && let Some(current) = self.current_match_of(actor).await?
            && current.room == room
        {
            return Ok(MemberOf {
                record,
                partner: Some(current.partner),
            });
        }
        Err(Error::NotAMember(room))
    }

    /// One room's record, or `ROOM_NOT_FOUND`.
    async fn room_record(&self, room: RoomId) -> Result<Arc<RoomRecord>> {
        self.room_records(vec![room])
            .await?
            .remove(&room)
            .ok_or(Error::RoomNotFound(room))
    }

    /// Room records by id (rooms are never deleted), through the hot-object cache; a room
    /// that does not exist is `ROOM_NOT_FOUND`.
    async fn room_records(&self, rooms: Vec<RoomId>) -> Result<HashMap<RoomId, Arc<RoomRecord>>> {
        self.through_cache("rooms", HotObjects::rooms, rooms, |store, room| {
            room_record(store, *room).map(|record| Some(Arc::new(record)))
        })
        .await
    }
}

/// The message at `seq` as of `edit`, from events already read.
fn message_in(events: &HashMap<Seq, Arc<Event>>, seq: Seq, edit: Option<Seq>) -> Result<Message> {
    let edit = edit.map(|edit| event_in(events, edit)).transpose()?;
    message_from(event_in(events, seq)?, edit)
}

/// The later of the room's last message and the reader joining.
fn activity(last: Option<MessageRef>, joined: Option<MessageRef>) -> MessageRef {
    last.max(joined).unwrap_or_default()
}

/// A room its reader is a member of.
struct MemberOf {
    record: Arc<RoomRecord>,
    /// In a match room, the reader's partner: its other member (`membership.rs`).
    partner: Option<UserId>,
}

/// What a room's info is made of, read once.
struct RoomSnapshot<'a> {
    room: RoomId,
    record: &'a RoomRecord,
    joined: Option<MessageRef>,
    last: Option<MessageRef>,
    last_message: Option<Message>,
}

fn room_info(views: &Views, reader: UserId, snapshot: RoomSnapshot<'_>) -> Result<RoomInfo> {
    let RoomSnapshot {
        room,
        record,
        joined,
        last,
        last_message,
    } = snapshot;
    let creator = UserId::from_slice(&record.creator);
    let direct_with = match UserId::from_slice(&record.direct_with) {
        // The record names the opener's peer; the peer sees the opener.
        Some(peer) if peer == reader => creator,
        other => other,
    };
    let read_up_to = views.receipts.read_up_to(room, reader);
    Ok(RoomInfo {
        id: room,
        title: record.title.clone(),
        creator,
        created_seq: record.created_seq,
        direct_with,
        member_count: record.member_count,
        message_count: views.room_history.message_count(room),
        last_message,
        last_activity: activity(last, joined),
        read_up_to,
        unread_count: views
            .room_history
            .count_after(room, read_up_to, MAX_UNREAD_COUNT)?,
    })
}

fn room_record(store: &Store, room: RoomId) -> Result<RoomRecord> {
    record(store.get(Table::RoomidRoom, room.as_bytes())?, "room")?.ok_or(Error::RoomNotFound(room))
}

/// The message `event` sent (already read from the log), as of its latest edit (`edit`: the
/// seq of that edit, from the view).
pub(crate) fn message_of(store: &Store, event: Event, edit: Option<Seq>) -> Result<Message> {
    let edit = edit.map(|seq| read_event(store, seq)).transpose()?;
    message_from(&event, edit.as_ref())
}

/// The message `event` sent as of `edit` (its latest edit's event, if any).
fn message_from(event: &Event, edit: Option<&Event>) -> Result<Message> {
    let seq = event.seq;
    let edited = match edit {
        Some(Event {
            commit_time_ms,
            payload: Payload::MessageEdited { body, .. },
            ..
        }) => Some((body, *commit_time_ms)),
        Some(other) => {
            return Err(Error::Internal(format!(
                "seq {} is a {} event, not an edit",
                other.seq,
                other.type_name()
            )));
        }
        None => None,
    };
    match &event.payload {
        Payload::MessageSent {
            room,
            body,
            client_id,
            reply_to,
            attachments,
        } => Ok(Message {
            seq,
            id: event.id,
            room: *room,
            sender: event.actor,
            edited_ms: edited.map(|(_, at)| at),
            body: edited.map_or(body, |(body, _)| body).clone(),
            client_id: client_id.clone(),
            commit_time_ms: event.commit_time_ms,
            reply_to: *reply_to,
            attachments: attachments.clone(),
        }),
        other => Err(Error::Internal(format!(
            "history names seq {seq}, a {} event",
            other.type_name()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let cursor = RoomCursor {
            activity_seq: 42,
            room: RoomId::new_v7(),
        };
        assert_eq!(cursor.to_string().parse::<RoomCursor>().unwrap(), cursor);
        for bad in ["", "42", "x.y", "42.not-a-uuid", ".0190"] {
            assert_eq!(
                bad.parse::<RoomCursor>().unwrap_err().code(),
                "INVALID_ARGUMENT"
            );
        }
    }
}
