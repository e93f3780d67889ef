//! The decoded form of a log entry: the envelope fields and a typed payload.

use crate::ids::{EventId, RoomId, Seq, SessionId, UserId};

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

/// What happened. `Unknown` keeps the type name of an event written by a newer girok.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    RoomCreated {
        room: RoomId,
        /// Empty for a direct room.
        title: String,
        /// For a direct room: the other user (the actor is the first).
        direct_with: Option<UserId>,
    },
    /// A read receipt: the actor has read `room` up to `up_to` (a seq).
    MessagesRead {
        room: RoomId,
        up_to: Seq,
    },
    MemberJoined {
        room: RoomId,
        user: UserId,
    },
    MemberLeft {
        room: RoomId,
        user: UserId,
    },
    MessageSent {
        room: RoomId,
        body: String,
        client_id: Option<String>,
        /// The id of the message this one answers.
        reply_to: Option<EventId>,
    },
    MessageEdited {
        room: RoomId,
        message: EventId,
        message_seq: Seq,
        body: String,
    },
    MessageDeleted {
        room: RoomId,
        message: EventId,
        message_seq: Seq,
        message_time_ms: i64,
    },
    UserRegistered {
        user: UserId,
        username: String,
        email: String,
        display_name: String,
        /// argon2id PHC string.
        password_hash: String,
    },
    LoggedIn {
        user: UserId,
        session: SessionId,
        /// SHA-256 of the refresh token.
        refresh_hash: Vec<u8>,
        ip: String,
        user_agent: String,
        expires_ms: i64,
    },
    LoginFailed {
        username: String,
        ip: String,
        reason: String,
    },
    TokenRefreshed {
        session: SessionId,
        refresh_hash: Vec<u8>,
        ip: String,
        expires_ms: i64,
    },
    SessionRevoked {
        session: SessionId,
        reason: String,
    },
    PasswordChanged {
        user: UserId,
        password_hash: String,
    },
    ProfileUpdated {
        user: UserId,
        display_name: Option<String>,
        bio: Option<String>,
        avatar_media_id: Option<String>,
    },
    /// A post by the actor; its id is the event id.
    PostCreated {
        content: String,
        media_ids: Vec<String>,
        /// Users named as `@username` in the content.
        mentions: Vec<UserId>,
    },
    PostEdited {
        post: EventId,
        post_seq: Seq,
        content: String,
        media_ids: Vec<String>,
        mentions: Vec<UserId>,
    },
    PostDeleted {
        post: EventId,
        post_seq: Seq,
    },
    PostLiked {
        post: EventId,
        post_seq: Seq,
        post_author: UserId,
    },
    PostUnliked {
        post: EventId,
        post_seq: Seq,
        post_author: UserId,
        /// The seq of the like taken back.
        like_seq: Seq,
    },
    /// A comment by the actor; its id is the event id.
    CommentAdded {
        post: EventId,
        post_seq: Seq,
        post_author: UserId,
        content: String,
        mentions: Vec<UserId>,
    },
    CommentDeleted {
        comment: EventId,
        comment_seq: Seq,
        post: EventId,
        post_seq: Seq,
        post_author: UserId,
    },
    /// The actor follows `user`.
    UserFollowed {
        user: UserId,
    },
    UserUnfollowed {
        user: UserId,
        /// The seq of the follow this ends.
        follow_seq: Seq,
    },
    /// The actor has seen their notifications up to `up_to` (a seq).
    NotificationsRead {
        up_to: Seq,
    },
    Unknown {
        type_name: String,
    },
}

impl Payload {
    /// The dotted type name stored in the envelope.
    pub fn type_name(&self) -> &str {
        match self {
            Payload::RoomCreated { .. } => "chat.room.created",
            Payload::MessagesRead { .. } => "chat.room.read",
            Payload::MemberJoined { .. } => "chat.member.joined",
            Payload::MemberLeft { .. } => "chat.member.left",
            Payload::MessageSent { .. } => "chat.message.sent",
            Payload::MessageEdited { .. } => "chat.message.edited",
            Payload::MessageDeleted { .. } => "chat.message.deleted",
            Payload::UserRegistered { .. } => "auth.user.registered",
            Payload::LoggedIn { .. } => "auth.user.logged_in",
            Payload::LoginFailed { .. } => "auth.login.failed",
            Payload::TokenRefreshed { .. } => "auth.token.refreshed",
            Payload::SessionRevoked { .. } => "auth.session.revoked",
            Payload::PasswordChanged { .. } => "auth.password.changed",
            Payload::ProfileUpdated { .. } => "user.profile.updated",
            Payload::PostCreated { .. } => "feed.post.created",
            Payload::PostEdited { .. } => "feed.post.edited",
            Payload::PostDeleted { .. } => "feed.post.deleted",
            Payload::PostLiked { .. } => "feed.post.liked",
            Payload::PostUnliked { .. } => "feed.post.unliked",
            Payload::CommentAdded { .. } => "feed.comment.added",
            Payload::CommentDeleted { .. } => "feed.comment.deleted",
            Payload::UserFollowed { .. } => "social.user.followed",
            Payload::UserUnfollowed { .. } => "social.user.unfollowed",
            Payload::NotificationsRead { .. } => "notification.read",
            Payload::Unknown { type_name } => type_name,
        }
    }

    /// The room an event belongs to, if it is a chat event.
    pub fn room(&self) -> Option<RoomId> {
        match self {
            Payload::RoomCreated { room, .. }
            | Payload::MessagesRead { room, .. }
            | Payload::MemberJoined { room, .. }
            | Payload::MemberLeft { room, .. }
            | Payload::MessageSent { room, .. }
            | Payload::MessageEdited { room, .. }
            | Payload::MessageDeleted { room, .. } => Some(*room),
            _ => None,
        }
    }
}

impl Payload {
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
            | Payload::UserUnfollowed { user, .. } => Some(user.to_string()),
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
            Payload::PostCreated { .. }
            | Payload::NotificationsRead { .. }
            | Payload::Unknown { .. } => None,
        }
    }
}

impl Event {
    /// The dotted type name, e.g. `chat.message.sent`.
    pub fn type_name(&self) -> &str {
        self.payload.type_name()
    }
}
