//! The decoded form of a log entry: the envelope fields and a typed payload. The table of
//! event types below is where, beside the `.proto`, a new event type is written (see
//! `payload_table.rs` for what is derived from it); its arms in `target()` (the compiler asks)
//! and, for a chat event, in `room()` (which routes it to its room's live topic) sit below the
//! table.

use crate::ids::{EventId, RoomId, Seq, SessionId, UserId};
use crate::json::rfc3339_millis;
use serde_json::{Value, json};

/// One committed event, as read back from the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub seq: Seq,
    /// Commit time in milliseconds since the Unix epoch (UTC).
    pub commit_time_ms: i64,
    pub id: EventId,
    /// Who caused it; `None` for the system.
    pub actor: Option<UserId>,
    pub payload: Payload,
}

define_payloads! {
    RoomCreated = "chat.room.created" {
        room: RoomId = room_id ["roomId"],
        /// Empty for a direct room.
        title: String = title ["title"],
        /// For a direct room: the other user (the actor is the first).
        direct_with: Option<UserId> = direct_with ["directWith"],
    },
    /// A read receipt: the actor has read `room` up to `up_to` (a seq).
    MessagesRead = "chat.room.read" {
        room: RoomId = room_id ["roomId"],
        up_to: Seq = up_to_seq ["upToSeq"],
    },
    MemberJoined = "chat.member.joined" {
        room: RoomId = room_id ["roomId"],
        user: UserId = user_id ["userId"],
    },
    MemberLeft = "chat.member.left" {
        room: RoomId = room_id ["roomId"],
        user: UserId = user_id ["userId"],
    },
    MessageSent = "chat.message.sent" {
        room: RoomId = room_id ["roomId"],
        body: String = body ["body"],
        client_id: Option<String> = client_id ["clientId"],
        /// The id of the message this one answers.
        reply_to: Option<EventId> = reply_to ["replyTo"],
        /// Media ids.
        attachments: Vec<EventId> = attachment_ids ["attachments"],
    },
    MessageEdited = "chat.message.edited" {
        room: RoomId = room_id ["roomId"],
        message: EventId = message_id ["messageId"],
        message_seq: Seq = message_seq ["messageSeq"],
        body: String = body ["body"],
    },
    MessageDeleted = "chat.message.deleted" {
        room: RoomId = room_id ["roomId"],
        message: EventId = message_id ["messageId"],
        message_seq: Seq = message_seq ["messageSeq"],
        message_time_ms: i64 = message_time_ms [],
    },
    // Hashes of secrets are needed in the log for replay, but never shown.
    UserRegistered = "auth.user.registered" {
        user: UserId = user_id ["userId"],
        username: String = username ["username"],
        email: String = email ["email"],
        display_name: String = display_name ["displayName"],
        /// argon2id PHC string.
        password_hash: String = password_hash [redacted "passwordHash"],
    },
    LoggedIn = "auth.user.logged_in" {
        user: UserId = user_id ["userId"],
        session: SessionId = session_id ["sessionId"],
        /// SHA-256 of the refresh token.
        refresh_hash: Vec<u8> = refresh_hash [],
        ip: String = ip ["ip"],
        user_agent: String = user_agent ["userAgent"],
        expires_ms: i64 = expires_ms [time "expires"],
    },
    LoginFailed = "auth.login.failed" {
        username: String = username ["username"],
        ip: String = ip ["ip"],
        reason: String = reason ["reason"],
    },
    TokenRefreshed = "auth.token.refreshed" {
        session: SessionId = session_id ["sessionId"],
        refresh_hash: Vec<u8> = refresh_hash [],
        ip: String = ip ["ip"],
        expires_ms: i64 = expires_ms [time "expires"],
    },
    SessionRevoked = "auth.session.revoked" {
        session: SessionId = session_id ["sessionId"],
        reason: String = reason ["reason"],
    },
    PasswordChanged = "auth.password.changed" {
        user: UserId = user_id ["userId"],
        password_hash: String = password_hash [redacted "passwordHash"],
    },
    ProfileUpdated = "user.profile.updated" {
        user: UserId = user_id ["userId"],
        display_name: Option<String> = display_name ["displayName"],
        bio: Option<String> = bio ["bio"],
        avatar_media_id: Option<String> = avatar_media_id ["avatarMediaId"],
    },
    /// A post by the actor; its id is the event id.
    PostCreated = "feed.post.created" {
        content: String = content ["content"],
        media_ids: Vec<String> = media_ids ["mediaIds"],
        /// Users named as `@username` in the content.
        mentions: Vec<UserId> = mentions ["mentions"],
    },
    PostEdited = "feed.post.edited" {
        post: EventId = post_id ["postId"],
        post_seq: Seq = post_seq ["postSeq"],
        content: String = content ["content"],
        media_ids: Vec<String> = media_ids ["mediaIds"],
        mentions: Vec<UserId> = mentions ["mentions"],
    },
    PostDeleted = "feed.post.deleted" {
        post: EventId = post_id ["postId"],
        post_seq: Seq = post_seq ["postSeq"],
    },
    PostLiked = "feed.post.liked" {
        post: EventId = post_id ["postId"],
        post_seq: Seq = post_seq ["postSeq"],
        post_author: UserId = post_author ["postAuthor"],
    },
    PostUnliked = "feed.post.unliked" {
        post: EventId = post_id ["postId"],
        post_seq: Seq = post_seq ["postSeq"],
        post_author: UserId = post_author ["postAuthor"],
        /// The seq of the like taken back.
        like_seq: Seq = like_seq ["likeSeq"],
    },
    /// A comment by the actor; its id is the event id.
    CommentAdded = "feed.comment.added" {
        post: EventId = post_id ["postId"],
        post_seq: Seq = post_seq ["postSeq"],
        post_author: UserId = post_author ["postAuthor"],
        content: String = content ["content"],
        mentions: Vec<UserId> = mentions ["mentions"],
    },
    CommentDeleted = "feed.comment.deleted" {
        comment: EventId = comment_id ["commentId"],
        comment_seq: Seq = comment_seq ["commentSeq"],
        post: EventId = post_id ["postId"],
        post_seq: Seq = post_seq ["postSeq"],
        post_author: UserId = post_author ["postAuthor"],
    },
    /// The actor follows `user`.
    UserFollowed = "social.user.followed" {
        user: UserId = user_id ["userId"],
    },
    UserUnfollowed = "social.user.unfollowed" {
        user: UserId = user_id ["userId"],
        /// The seq of the follow this ends.
        follow_seq: Seq = follow_seq ["followSeq"],
    },
    /// The actor has seen their notifications up to `up_to` (a seq).
    NotificationsRead = "notification.read" {
        up_to: Seq = up_to_seq ["upToSeq"],
    },
    /// The actor waits for a random partner; the ticket's id is the event id.
    TicketOpened = "matching.ticket.opened" {
        tags: Vec<String> = tags ["tags"],
        language: Option<String> = language ["language"],
    },
    /// A ticket left the queue: `reason` is `left`, `expired` or `disconnected` (a match
    /// closes both its tickets itself; logs written before also say `matched` here).
    TicketClosed = "matching.ticket.closed" {
        user: UserId = user_id ["userId"],
        ticket_seq: Seq = ticket_seq ["ticketSeq"],
        reason: String = reason ["reason"],
        waited_ms: i64 = waited_ms ["waitedMs"],
    },
    /// Two open tickets paired (and thereby closed), with the match room opened for them in the
    /// same batch. The actor is the user whose join made the match at once (logs written
    /// before have none there); a wave's match has none.
    Matched = "matching.matched" {
        room: RoomId = room_id ["roomId"],
        user_a: UserId = user_a ["userA"],
        user_b: UserId = user_b ["userB"],
        ticket_a_seq: Seq = ticket_a_seq ["ticketASeq"],
        ticket_b_seq: Seq = ticket_b_seq ["ticketBSeq"],
        shared_tags: Vec<String> = shared_tags ["sharedTags"],
        wait_a_ms: i64 = wait_a_ms ["waitAMs"],
        wait_b_ms: i64 = wait_b_ms ["waitBMs"],
        /// Set: this event itself opens the match room, titled so, with both users in it (one
        /// log entry instead of four). `None` in logs written before, which have the room's
        /// `chat.room.created` and both `chat.member.joined` just before it.
        room_title: Option<String> = room_title ["roomTitle"],
    },
    /// The actor ended their match with `partner`; the pair is apart until `until_ms`.
    MatchSkipped = "matching.skipped" {
        room: RoomId = room_id ["roomId"],
        partner: UserId = partner ["partner"],
        until_ms: i64 = until_ms [time "until"],
        /// Set: this event itself is both users leaving the room. Unset in logs written before,
        /// which have both `chat.member.left` just after it.
        members_left: bool = members_left ["membersLeft"],
    },
    /// The actor blocks `user`.
    UserBlocked = "user.blocked" {
        user: UserId = user_id ["userId"],
    },
    /// The actor takes their block of `user` back.
    UserUnblocked = "user.unblocked" {
        user: UserId = user_id ["userId"],
    },
    /// The actor will upload an image; the media's id is the event id.
    MediaUploadRequested = "media.upload.requested" {
        content_type: String = content_type ["contentType"],
        declared_bytes: u64 = declared_bytes ["declaredBytes"],
        expires_ms: i64 = expires_ms [time "expires"],
        /// Swept if nothing uses it by then.
        unused_until_ms: i64 = unused_until_ms [time "unusedUntil"],
    },
    MediaUploadCompleted = "media.upload.completed" {
        media: EventId = media_id ["mediaId"],
        received_bytes: u64 = received_bytes ["receivedBytes"],
    },
    /// Processed: variants stored under their content hashes.
    MediaReady = "media.ready" {
        media: EventId = media_id ["mediaId"],
        content_type: String = content_type ["contentType"],
        width: u64 = width ["width"],
        height: u64 = height ["height"],
        placeholder: String = placeholder ["placeholder"],
        variant_names: Vec<String> = variant_names ["variantNames"],
        variant_hashes: Vec<String> = variant_hashes ["variantHashes"],
        variant_bytes: Vec<u64> = variant_bytes ["variantBytes"],
    },
    MediaRejected = "media.rejected" {
        media: EventId = media_id ["mediaId"],
        reason: String = reason ["reason"],
        detail: String = detail ["detail"],
    },
    /// `reason`: `owner` or `unattached`.
    MediaDeleted = "media.deleted" {
        media: EventId = media_id ["mediaId"],
        reason: String = reason ["reason"],
        purge_after_ms: i64 = purge_after_ms [time "purgeAfter"],
    },
    MediaPurged = "media.purged" {
        media: EventId = media_id ["mediaId"],
    },
}

impl Payload {
    /// The room an event belongs to: a chat event's, and a match's (which opens it) and a
    /// skip's (which closes it).
    pub fn room(&self) -> Option<RoomId> {
        match self {
            Payload::RoomCreated { room, .. }
            | Payload::MessagesRead { room, .. }
            | Payload::MemberJoined { room, .. }
            | Payload::MemberLeft { room, .. }
            | Payload::MessageSent { room, .. }
            | Payload::MessageEdited { room, .. }
            | Payload::MessageDeleted { room, .. }
            // A match opens its room and a skip closes it: the room's followers see both.
            | Payload::Matched { room, .. }
            | Payload::MatchSkipped { room, .. } => Some(*room),
            // Listed, not `_`: a new event type must say whether it belongs to a room (and so
            // reaches the room's live topic).
            Payload::UserRegistered { .. }
            | Payload::LoggedIn { .. }
            | Payload::LoginFailed { .. }
            | Payload::TokenRefreshed { .. }
            | Payload::SessionRevoked { .. }
            | Payload::PasswordChanged { .. }
            | Payload::ProfileUpdated { .. }
            | Payload::PostCreated { .. }
            | Payload::PostEdited { .. }
            | Payload::PostDeleted { .. }
            | Payload::PostLiked { .. }
            | Payload::PostUnliked { .. }
            | Payload::CommentAdded { .. }
            | Payload::CommentDeleted { .. }
            | Payload::UserFollowed { .. }
            | Payload::UserUnfollowed { .. }
            | Payload::NotificationsRead { .. }
            | Payload::TicketOpened { .. }
            | Payload::TicketClosed { .. }
            | Payload::UserBlocked { .. }
            | Payload::UserUnblocked { .. }
            | Payload::MediaUploadRequested { .. }
            | Payload::MediaUploadCompleted { .. }
            | Payload::MediaReady { .. }
            | Payload::MediaRejected { .. }
            | Payload::MediaDeleted { .. }
            | Payload::MediaPurged { .. }
            | Payload::Unknown { .. } => None,
        }
    }

    /// What the event is about, as the audit log names it (a room, a user, a message, a
    /// session, a post, a comment); `None` for events about their actor alone.
    pub fn target(&self) -> Option<String> {
        match self {
            Payload::RoomCreated { room, .. } | Payload::MessagesRead { room, .. } => {
                Some(room.to_string())
            }
            Payload::MemberJoined { user, .. } | Payload::MemberLeft { user, .. } => {
                Some(user.to_string())
            }
            Payload::MessageSent { room, .. } => Some(room.to_string()),
            Payload::MessageEdited { message, .. } | Payload::MessageDeleted { message, .. } => {
                Some(message.to_string())
            }
            Payload::UserRegistered { user, .. }
            | Payload::LoggedIn { user, .. }
            | Payload::PasswordChanged { user, .. }
            | Payload::ProfileUpdated { user, .. }
            | Payload::UserFollowed { user }
            | Payload::UserUnfollowed { user, .. }
            | Payload::TicketClosed { user, .. }
            | Payload::MatchSkipped { partner: user, .. }
            | Payload::UserBlocked { user }
            | Payload::UserUnblocked { user } => Some(user.to_string()),
            Payload::Matched { room, .. } => Some(room.to_string()),
            Payload::LoginFailed { username, .. } => Some(username.clone()),
            Payload::TokenRefreshed { session, .. } | Payload::SessionRevoked { session, .. } => {
                Some(session.to_string())
            }
            Payload::PostEdited { post, .. }
            | Payload::PostDeleted { post, .. }
            | Payload::PostLiked { post, .. }
            | Payload::PostUnliked { post, .. }
            | Payload::CommentAdded { post, .. } => Some(post.to_string()),
            Payload::CommentDeleted { comment, .. } => Some(comment.to_string()),
            Payload::MediaUploadCompleted { media, .. }
            | Payload::MediaReady { media, .. }
            | Payload::MediaRejected { media, .. }
            | Payload::MediaDeleted { media, .. }
            | Payload::MediaPurged { media } => Some(media.to_string()),
            Payload::MediaUploadRequested { .. }
            | Payload::PostCreated { .. }
            | Payload::NotificationsRead { .. }
            | Payload::TicketOpened { .. }
            | Payload::Unknown { .. } => None,
        }
    }
}

/// One user joining or leaving one room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Membership {
    pub room: RoomId,
    pub user: UserId,
    /// Joined (else left).
    pub joined: bool,
}

impl Event {
    /// The room memberships this event changes: a member joining or leaving, and a match
    /// opening its room with both users in it or a skip taking both out (one event each since
    /// `matching.matched` has `roomTitle` and `matching.skipped` has `membersLeft`; older logs
    /// have the `chat.member.*` events beside them instead).
    pub fn memberships(&self) -> impl Iterator<Item = Membership> + use<> {
        let change = |room: RoomId, users: [Option<UserId>; 2], joined: bool| {
            users.map(|user| user.map(|user| Membership { room, user, joined }))
        };
        let changes = match &self.payload {
            Payload::MemberJoined { room, user } => change(*room, [Some(*user), None], true),
            Payload::MemberLeft { room, user } => change(*room, [Some(*user), None], false),
            Payload::Matched {
                room,
                user_a,
                user_b,
                room_title: Some(_),
                ..
            } => change(*room, [Some(*user_a), Some(*user_b)], true),
            Payload::MatchSkipped {
                room,
                partner,
                members_left: true,
                ..
            } => change(*room, [self.actor, Some(*partner)], false),
            _ => [None, None],
        };
        changes.into_iter().flatten()
    }

    /// The event as the members of its room see it on the room's topic and on their own: a
    /// match's ticket seqs and waits, and a skip's exclusion end, are each user's own business
    /// (their `matching` frames tell each their own) and are 0 here. `None`: nothing is left
    /// out, the event is shown as it is.
    pub fn for_members(&self) -> Option<Event> {
        if !matches!(
            self.payload,
            Payload::Matched { .. } | Payload::MatchSkipped { .. }
        ) {
            return None;
        }
        let mut shown = self.clone();
        match &mut shown.payload {
            Payload::Matched {
                ticket_a_seq,
                ticket_b_seq,
                wait_a_ms,
                wait_b_ms,
                ..
            } => (*ticket_a_seq, *ticket_b_seq, *wait_a_ms, *wait_b_ms) = (0, 0, 0, 0),
            Payload::MatchSkipped { until_ms, .. } => *until_ms = 0,
            _ => {}
        }
        Some(shown)
    }

    /// Whether `user` joins or leaves a room with this event.
    pub fn changes_membership_of(&self, user: UserId) -> bool {
        self.memberships().any(|m| m.user == user)
    }

    /// The dotted type name, e.g. `chat.message.sent`.
    pub fn type_name(&self) -> &str {
        self.payload.type_name()
    }

    /// The event as a JSON object: the envelope's fields and the payload's, as the table
    /// names them.
    pub fn to_json(&self) -> Value {
        json!({
            "seq": self.seq,
            "time": rfc3339_millis(self.commit_time_ms),
            "id": self.id,
            "actor": self.actor,
            "type": self.type_name(),
            "payload": self.payload.fields_json(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_json_has_envelope_and_payload() {
        let event = Event {
            seq: 3,
            commit_time_ms: 1_000,
            id: EventId::new_v7(),
            actor: Some(UserId::new_v7()),
            payload: Payload::MessageSent {
                room: RoomId::new_v7(),
                body: "hi".into(),
                client_id: None,
                reply_to: None,
                attachments: Vec::new(),
            },
        };
        let v = event.to_json();
        assert_eq!(v["seq"], 3);
        assert_eq!(v["time"], "1970-01-01T00:00:01.000Z");
        assert_eq!(v["type"], "chat.message.sent");
        assert_eq!(v["payload"]["body"], "hi");
        assert_eq!(v["payload"]["clientId"], Value::Null);
    }

    #[test]
    fn a_match_and_a_skip_change_the_memberships_their_older_chat_events_changed() {
        let (ann, bob, room) = (UserId::new_v7(), UserId::new_v7(), RoomId::new_v7());
        let older = crate::fixture::MatchCycle::new(ann, bob, room, false);
        let newer = crate::fixture::MatchCycle::new(ann, bob, room, true);
        let all = |cycle: &crate::fixture::MatchCycle| -> Vec<Membership> {
            cycle.events().flat_map(Event::memberships).collect()
        };
        let joined = |user| Membership {
            room,
            user,
            joined: true,
        };
        let left = |user| Membership {
            room,
            user,
            joined: false,
        };
        // The older form: the chat events beside a match that changes nothing itself.
        let expected = vec![joined(ann), joined(bob), left(ann), left(bob)];
        assert_eq!(all(&older), expected);
        assert_eq!(all(&newer), expected);
        assert!(
            newer.matched().changes_membership_of(bob)
                && !older.matched().changes_membership_of(bob)
        );

        // Members are shown both without what is each user's own; the rest as it was.
        let shown = newer.matched().for_members().unwrap();
        assert_eq!(shown.memberships().collect::<Vec<_>>(), expected[..2]);
        let Payload::Matched {
            ticket_a_seq,
            wait_a_ms,
            shared_tags,
            ..
        } = &shown.payload
        else {
            panic!("{shown:?}");
        };
        assert_eq!((*ticket_a_seq, *wait_a_ms), (0, 0));
        assert_eq!(shared_tags, &["hiking"]);
        let shown = newer.skip[0].for_members().unwrap();
        assert!(matches!(
            shown.payload,
            Payload::MatchSkipped { until_ms: 0, .. }
        ));
        assert_eq!(shown.memberships().collect::<Vec<_>>(), expected[2..]);
        assert!(older.until_matched[0].for_members().is_none());
    }
}
