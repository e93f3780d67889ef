//! Every keyspace girok keeps, declared once. Names follow `key_value`; integer keys are
//! big-endian so that byte order is numeric order.

/// A fjall keyspace of girok's database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// The log: `seq (u64 BE) -> encoded event`. The only source of truth.
    SeqEvent,
    /// Write model: `room id (16) -> RoomRecord`.
    RoomidRoom,
    /// Write model: `room id (16) ++ user id (16) -> ()` for each current member.
    RoomidUseridMember,
    /// Write model: `actor (16) ++ client id -> IdempotentAck` for idempotent sends.
    ActorClientidAck,
    /// Write model: `lowercased username -> user id (16)`.
    UsernameUserid,
    /// Write model: `lowercased email -> user id (16)`.
    EmailUserid,
    /// Write model: `user id (16) -> UserRecord`.
    UseridUser,
    /// Write model: `session id (16) -> SessionRecord`.
    SessionidSession,
    /// Write model: `SHA-256 of a refresh token (32) -> session id (16)`, for every token a
    /// session ever had, so that reuse of a rotated token is recognised.
    RefreshhashSessionid,
    /// Write model: `user id (16) ++ session id (16) -> ()`, a user's sessions.
    UseridSessionid,
    /// Write model: `message id (16) -> MessageRecord` (room, sender, seq, deleted), for
    /// messages whose id is not derived from their seq (written before ids were; see
    /// `EventId::for_seq`). A message with a seq-derived id has no row of its own: the log
    /// holds its room, sender and time.
    MessageidMessage,
    /// Write model: `smaller user id (16) ++ larger user id (16) -> room id (16)`, the one
    /// direct room of each pair of users.
    UserpairRoomid,
    /// Write model: `room id (16) ++ user id (16) -> seq (u64 BE)`, how far each user has
    /// read each room (kept after leaving, so a rejoin continues from there).
    RoomidUseridRead,
    /// Write model: `post id (16) -> PostRecord` (author, seq, deleted).
    PostidPost,
    /// Write model: `post id (16) ++ user id (16) -> like seq (u64 BE)`, one per current like.
    PostidUseridLike,
    /// Write model: `comment id (16) -> CommentRecord`.
    CommentidComment,
    /// Write model: `follower id (16) ++ followee id (16) -> follow seq (u64 BE)`, one per
    /// current follow.
    FollowerFollowee,
    /// Write model: `user id (16) -> seq (u64 BE)`, how far the user has read their
    /// notifications.
    UseridNotificationsread,
    /// Write model: `message seq (u64 BE) -> ()`, the deleted messages among those with
    /// seq-derived ids.
    MessageseqDeleted,
    /// Write model: `user id (16) -> TicketRecord`, the open matching ticket of each queued
    /// user.
    UseridTicket,
    /// Write model: `user id (16) -> MatchRecord`, the current match of each matched user.
    UseridMatch,
    /// Write model, no longer written: `smaller user id (16) ++ larger user id (16) -> until ms
    /// (i64 BE)`, the skip exclusions as builds before `untilms_skips` kept them. The matching
    /// stage's first load moves its rows into `untilms_skips` and empties it.
    UserpairSkip,
    /// Write model, no longer written: `userpair_skip`'s rows by their end (`until ms (i64 BE)
    /// ++ pair -> ()`, and `0xff -> until ms`). Emptied with `userpair_skip`.
    UntilmsUserpair,
    /// Write model: `first ms of a 100 ms span (i64 BE) -> (smaller user id (16) ++ larger
    /// user id (16) ++ until ms (i64 BE))*`: the skip exclusions ending in that span, in log
    /// order, a pair not matched again before its until; and `0xff -> ms (i64 BE)`, where the
    /// spans still there start. One row per span, not per skip, and written behind by the
    /// matching stage (`engine/src/matching/skips.rs`).
    UntilmsSkips,
    /// Write model: `blocker (16) ++ blocked (16) -> block seq (u64 BE)`, one per current block.
    BlockerBlocked,
    /// Write model: `b"seq" -> seq (u64 BE)` while `userid_ticket`, `userid_match` and
    /// `untilms_skips` are behind the log: the seq they are current through (the matching
    /// stage writes those rows behind, at checkpoints; a load applies the log's matching
    /// events after this seq). No row: they are current.
    MatchingCheckpoint,
    /// Write model: `media id (16) -> MediaRecord`, from the upload request to the purge.
    MediaidMedia,
    /// Write model: `media id (16) -> ()` for each upload waiting to be processed (what a
    /// restart re-queues).
    MediaidProcessing,
    /// Write model: `due ms (i64 BE) ++ kind (1) ++ media id (16) -> ()`: when the media
    /// sweeper looks at a media again (kind 1: an upload never used, swept unless used by
    /// then; kind 2: a deleted media whose objects may go).
    DueMediaid,
    /// Write model: `variant content hash (hex) ++ media id (16) -> ()` for every variant of
    /// every media not yet purged: an object is removed only when no media holds it.
    ContenthashMediaid,
}

impl Table {
    /// All tables, in declaration order.
    pub const ALL: [Table; 30] = [
        Table::SeqEvent,
        Table::RoomidRoom,
        Table::RoomidUseridMember,
        Table::ActorClientidAck,
        Table::UsernameUserid,
        Table::EmailUserid,
        Table::UseridUser,
        Table::SessionidSession,
        Table::RefreshhashSessionid,
        Table::UseridSessionid,
        Table::MessageidMessage,
        Table::UserpairRoomid,
        Table::RoomidUseridRead,
        Table::PostidPost,
        Table::PostidUseridLike,
        Table::CommentidComment,
        Table::FollowerFollowee,
        Table::UseridNotificationsread,
        Table::MessageseqDeleted,
        Table::UseridTicket,
        Table::UseridMatch,
        Table::UserpairSkip,
        Table::UntilmsUserpair,
        Table::UntilmsSkips,
        Table::BlockerBlocked,
        Table::MatchingCheckpoint,
        Table::MediaidMedia,
        Table::MediaidProcessing,
        Table::DueMediaid,
        Table::ContenthashMediaid,
    ];

    /// The keyspace name on disk.
    pub fn name(self) -> &'static str {
        match self {
            Table::SeqEvent => "seq_event",
            Table::RoomidRoom => "roomid_room",
            Table::RoomidUseridMember => "roomid_userid_member",
            Table::ActorClientidAck => "actor_clientid_ack",
            Table::UsernameUserid => "username_userid",
            Table::EmailUserid => "email_userid",
            Table::UseridUser => "userid_user",
            Table::SessionidSession => "sessionid_session",
            Table::RefreshhashSessionid => "refreshhash_sessionid",
            Table::UseridSessionid => "userid_sessionid",
            Table::MessageidMessage => "messageid_message",
            Table::UserpairRoomid => "userpair_roomid",
            Table::RoomidUseridRead => "roomid_userid_read",
            Table::PostidPost => "postid_post",
            Table::PostidUseridLike => "postid_userid_like",
            Table::CommentidComment => "commentid_comment",
            Table::FollowerFollowee => "follower_followee",
            Table::UseridNotificationsread => "userid_notificationsread",
            Table::MessageseqDeleted => "messageseq_deleted",
            Table::UseridTicket => "userid_ticket",
            Table::UseridMatch => "userid_match",
            Table::UserpairSkip => "userpair_skip",
            Table::UntilmsUserpair => "untilms_userpair",
            Table::UntilmsSkips => "untilms_skips",
            Table::BlockerBlocked => "blocker_blocked",
            Table::MatchingCheckpoint => "matching_checkpoint",
            Table::MediaidMedia => "mediaid_media",
            Table::MediaidProcessing => "mediaid_processing",
            Table::DueMediaid => "due_mediaid",
            Table::ContenthashMediaid => "contenthash_mediaid",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// A keyspace of the view store (`<data>/views`, a database of its own: see `view_store.rs`).
/// Names follow `view_<what>`; integer parts of keys are big-endian.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ViewTable {
    /// `group name -> checkpoint` (JSON: the seq the group's tables reflect, their format and
    /// digests), written in the same batch as the rows it covers.
    Checkpoint,
    /// Room history: `room id (16) ++ message seq (u64 BE) -> commit time ms (i64 BE)` per live
    /// message.
    RoomHistory,
    /// `room id (16) -> live message count (u64 BE)`.
    RoomCount,
    /// `message seq (u64 BE) -> latest edit seq (u64 BE)` per edited live message.
    MessageEdit,
    /// Memberships: `user id (16) ++ room id (16) -> joined seq (u64 BE) ++ time ms (i64 BE)`.
    Membership,
    /// Read receipts: `room id (16) ++ user id (16) -> read up to (u64 BE)`.
    Receipt,
    /// The feed views' current inputs, a row per fact: `kind (1) ++ its ids and seqs` (a post,
    /// post edit, like, comment, follow, or mention; the mentioned users as the value).
    FeedInput,
    /// Notifications: `recipient (16) ++ seq (u64 BE) ++ kind (1) -> ()` per current one.
    Notification,
    /// Followers: `followee (16) ++ follow seq (u64 BE) ++ follower (16) -> ()` per current
    /// follow.
    Follower,
    /// `user id (16) -> followers (u64 BE)`.
    FollowerCount,
    /// Whom each user follows: `follower (16) ++ followee (16) ++ follow seq (u64 BE) -> ()`.
    Following,
    /// `user id (16) -> accounts followed (u64 BE)`.
    FollowingCount,
    /// A sink's own state (`<data>/sinks/<name>`, a view store of its own): rows whose layout
    /// the sink defines, covered by its checkpoint row.
    SinkState,
}

impl ViewTable {
    /// All view tables, in declaration order.
    pub const ALL: [ViewTable; 13] = [
        ViewTable::Checkpoint,
        ViewTable::RoomHistory,
        ViewTable::RoomCount,
        ViewTable::MessageEdit,
        ViewTable::Membership,
        ViewTable::Receipt,
        ViewTable::FeedInput,
        ViewTable::Notification,
        ViewTable::Follower,
        ViewTable::FollowerCount,
        ViewTable::Following,
        ViewTable::FollowingCount,
        ViewTable::SinkState,
    ];

    /// The keyspace name on disk.
    pub fn name(self) -> &'static str {
        match self {
            ViewTable::Checkpoint => "view_checkpoint",
            ViewTable::RoomHistory => "view_room_history",
            ViewTable::RoomCount => "view_room_count",
            ViewTable::MessageEdit => "view_message_edit",
            ViewTable::Membership => "view_membership",
            ViewTable::Receipt => "view_receipt",
            ViewTable::FeedInput => "view_feed_input",
            ViewTable::Notification => "view_notification",
            ViewTable::Follower => "view_follower",
            ViewTable::FollowerCount => "view_follower_count",
            ViewTable::Following => "view_following",
            ViewTable::FollowingCount => "view_following_count",
            ViewTable::SinkState => "view_sink_state",
        }
    }
}
