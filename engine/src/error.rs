//! The engine's one error type. Each variant has a stable `code` that every frontend passes to
//! clients unchanged, and a `kind` that frontends map to their status vocabulary.

use girok_schemas::{DecodeError, RoomId, Seq};

/// What kind of failure, for mapping to HTTP status / GraphQL / WS error frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidArgument,
    Unauthenticated,
    NotFound,
    Forbidden,
    Conflict,
    /// A body past a size limit (HTTP 413).
    TooLarge,
    /// A content type girok does not take (HTTP 415).
    UnsupportedMedia,
    Timeout,
    /// Refused at once because girok is at capacity; the client should retry after a wait.
    Overloaded,
    Unavailable,
    Internal,
}

/// Anything a command or a read can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid `{field}`: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    #[error("room {0} does not exist")]
    RoomNotFound(RoomId),
    #[error("you are not a member of room {0}")]
    NotAMember(RoomId),
    #[error("that user is already a member of room {0}")]
    AlreadyMember(RoomId),
    #[error("only the owner of room {0} can add or remove members")]
    NotRoomOwner(RoomId),
    #[error("room {0} has the most members a room may have ({1})")]
    RoomFull(RoomId, usize),
    #[error("the owner cannot leave room {0} while other members remain")]
    OwnerCannotLeave(RoomId),
    #[error("room {0} is a direct room: its two members cannot change")]
    DirectRoom(RoomId),
    #[error("client id {0:?} was already used for a different message")]
    IdempotencyKeyReused(String),
    #[error(
        "the views reflect the log up to seq {watermark}, not yet seq {after}; gave up after {waited_ms} ms"
    )]
    ViewTimeout {
        after: Seq,
        watermark: Seq,
        waited_ms: u64,
    },
    #[error(
        "girok is starting: the views reflect the log up to seq {watermark} of the {head_at_start} it held at start; gave up after {waited_ms} ms"
    )]
    NotReady {
        watermark: Seq,
        head_at_start: Seq,
        waited_ms: u64,
    },
    #[error("username {0:?} is taken")]
    UsernameTaken(String),
    #[error("email {0:?} is already registered")]
    EmailTaken(String),
    #[error("wrong username or password")]
    InvalidCredentials,
    #[error("the refresh token is unknown, expired or revoked")]
    InvalidRefreshToken,
    #[error("a refresh token was used twice; its whole session is revoked")]
    RefreshTokenReused,
    #[error("no such active session")]
    SessionNotFound,
    #[error("no such user")]
    UserNotFound,
    #[error("message {0} does not exist in this room")]
    MessageNotFound(girok_schemas::EventId),
    #[error("only its author can change message {0}")]
    NotMessageAuthor(girok_schemas::EventId),
    #[error("post {0} does not exist")]
    PostNotFound(girok_schemas::EventId),
    #[error("comment {0} does not exist")]
    CommentNotFound(girok_schemas::EventId),
    #[error("only its author can change post {0}")]
    NotPostAuthor(girok_schemas::EventId),
    #[error("only its author can delete comment {0}")]
    NotCommentAuthor(girok_schemas::EventId),
    #[error("you already like post {0}")]
    AlreadyLiked(girok_schemas::EventId),
    #[error("you do not like post {0}")]
    NotLiked(girok_schemas::EventId),
    #[error("you already follow that user")]
    AlreadyFollowing,
    #[error("you do not follow that user")]
    NotFollowing,
    #[error("you are already waiting in the matching queue")]
    AlreadyQueued,
    #[error("you are not waiting in the matching queue")]
    NotQueued,
    #[error("you are in a match (room {0}): skip it before joining again")]
    AlreadyMatched(RoomId),
    #[error("you are not in a match")]
    NotMatched,
    #[error("you already block that user")]
    AlreadyBlocked,
    #[error("you do not block that user")]
    NotBlocked,
    #[error("one of you blocks the other")]
    Blocked,
    #[error("room {0} is a match room: end the match with skipMatch instead")]
    MatchRoom(RoomId),
    #[error("media {0:?} does not exist")]
    MediaNotFound(String),
    #[error("media {0} is not ready (state: {1})")]
    MediaNotReady(girok_schemas::EventId, &'static str),
    #[error("media {0} is not yours")]
    NotMediaOwner(girok_schemas::EventId),
    #[error("media {0} was rejected: {1}")]
    MediaRejected(girok_schemas::EventId, String),
    #[error("only {allowed} are accepted, not {got:?}")]
    UnsupportedMediaType { got: String, allowed: &'static str },
    #[error("{what} is {got} bytes; the most is {max}")]
    MediaTooLarge {
        what: &'static str,
        got: u64,
        max: u64,
    },
    #[error("the upload has {got} bytes, but {declared} were declared")]
    SizeMismatch { declared: u64, got: u64 },
    #[error("the upload URL is invalid or has expired")]
    UploadUrlInvalid,
    #[error("nothing was uploaded for media {0} yet")]
    UploadMissing(girok_schemas::EventId),
    #[error("media {0} was already uploaded")]
    AlreadyUploaded(girok_schemas::EventId),
    #[error("too many {what} from you; retry in {} s", retry_seconds(*.retry_after))]
    RateLimited {
        what: &'static str,
        retry_after: std::time::Duration,
    },
    #[error("girok is at capacity {what}; retry in {} s", retry_seconds(*.retry_after))]
    Overloaded {
        what: &'static str,
        retry_after: std::time::Duration,
    },
    #[error("girok is shutting down and accepts no more writes")]
    Unavailable,
    #[error(
        "storage is unavailable; nothing of this request was acknowledged: retry it later (with the same clientId, a write that did land is not repeated)"
    )]
    StorageUnavailable(String),
    #[error("storage failure: {0}")]
    Storage(girok_storage::Error),
    #[error("log entry {seq} cannot be decoded: {source}")]
    Decode { seq: Seq, source: DecodeError },
    #[error("internal error: {0}")]
    Internal(String),
}

/// What a write refused by a full log queue is told to wait: the queue drains in well under a
/// second at any rate girok sustains, so the next second finds room unless the flood goes on.
const WRITE_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// What a request refused for a storage error is told to wait: the writer retries within a
/// second once the cause (a full disk, exhausted descriptors) is gone.
const STORAGE_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

/// What a read refused during start-up is told to wait (views rebuild at a million or more
/// events a second).
const NOT_READY_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

impl Error {
    /// Whether this is the refusal to open a data directory another process holds (a
    /// running server).
    pub fn is_data_dir_in_use(&self) -> bool {
        matches!(self, Error::Storage(girok_storage::Error::Locked(_)))
    }
}

impl From<girok_storage::Error> for Error {
    fn from(e: girok_storage::Error) -> Self {
        match e {
            girok_storage::Error::Closed => Error::Unavailable,
            girok_storage::Error::Unavailable(reason) => Error::StorageUnavailable(reason),
            // The object store is another server (or a directory) that may be away for a
            // while: a retry later, not an internal error.
            girok_storage::Error::Blob(reason) => {
                Error::StorageUnavailable(format!("object store: {reason}"))
            }
            girok_storage::Error::QueueFull(_) => Error::Overloaded {
                what: "writing to the log",
                retry_after: WRITE_RETRY_AFTER,
            },
            other => Error::Storage(other),
        }
    }
}

impl Error {
    /// A shorthand for input validation failures.
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field,
            reason: reason.into(),
        }
    }

    /// The stable, documented code clients can match on.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidArgument { .. } => "INVALID_ARGUMENT",
            Error::RoomNotFound(_) => "ROOM_NOT_FOUND",
            Error::NotAMember(_) => "NOT_A_MEMBER",
            Error::AlreadyMember(_) => "ALREADY_MEMBER",
            Error::NotRoomOwner(_) => "NOT_ROOM_OWNER",
            Error::RoomFull(..) => "ROOM_FULL",
            Error::OwnerCannotLeave(_) => "OWNER_CANNOT_LEAVE",
            Error::DirectRoom(_) => "DIRECT_ROOM",
            Error::IdempotencyKeyReused(_) => "IDEMPOTENCY_KEY_REUSED",
            Error::ViewTimeout { .. } => "VIEW_TIMEOUT",
            Error::NotReady { .. } => "NOT_READY",
            Error::UsernameTaken(_) => "USERNAME_TAKEN",
            Error::EmailTaken(_) => "EMAIL_TAKEN",
            Error::InvalidCredentials => "INVALID_CREDENTIALS",
            Error::InvalidRefreshToken => "INVALID_REFRESH_TOKEN",
            Error::RefreshTokenReused => "REFRESH_TOKEN_REUSED",
            Error::SessionNotFound => "SESSION_NOT_FOUND",
            Error::UserNotFound => "USER_NOT_FOUND",
            Error::MessageNotFound(_) => "MESSAGE_NOT_FOUND",
            Error::NotMessageAuthor(_) => "NOT_MESSAGE_AUTHOR",
            Error::PostNotFound(_) => "POST_NOT_FOUND",
            Error::CommentNotFound(_) => "COMMENT_NOT_FOUND",
            Error::NotPostAuthor(_) => "NOT_POST_AUTHOR",
            Error::NotCommentAuthor(_) => "NOT_COMMENT_AUTHOR",
            Error::AlreadyLiked(_) => "ALREADY_LIKED",
            Error::NotLiked(_) => "NOT_LIKED",
            Error::AlreadyFollowing => "ALREADY_FOLLOWING",
            Error::NotFollowing => "NOT_FOLLOWING",
            Error::AlreadyQueued => "ALREADY_QUEUED",
            Error::NotQueued => "NOT_QUEUED",
            Error::AlreadyMatched(_) => "ALREADY_MATCHED",
            Error::NotMatched => "NOT_MATCHED",
            Error::AlreadyBlocked => "ALREADY_BLOCKED",
            Error::NotBlocked => "NOT_BLOCKED",
            Error::Blocked => "BLOCKED",
            Error::MatchRoom(_) => "MATCH_ROOM",
            Error::MediaNotFound(_) => "MEDIA_NOT_FOUND",
            Error::MediaNotReady(..) => "MEDIA_NOT_READY",
            Error::NotMediaOwner(_) => "NOT_MEDIA_OWNER",
            Error::MediaRejected(..) => "MEDIA_REJECTED",
            Error::UnsupportedMediaType { .. } => "UNSUPPORTED_TYPE",
            Error::MediaTooLarge { .. } => "TOO_LARGE",
            Error::SizeMismatch { .. } => "SIZE_MISMATCH",
            Error::UploadUrlInvalid => "UPLOAD_URL_INVALID",
            Error::UploadMissing(_) => "UPLOAD_MISSING",
            Error::AlreadyUploaded(_) => "ALREADY_UPLOADED",
            Error::Overloaded { .. } => "OVERLOADED",
            Error::RateLimited { .. } => "RATE_LIMITED",
            Error::Unavailable => "UNAVAILABLE",
            Error::StorageUnavailable(_) => "STORAGE_UNAVAILABLE",
            Error::Storage(_) | Error::Decode { .. } | Error::Internal(_) => "INTERNAL",
        }
    }

    /// The class of failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidArgument { .. } => ErrorKind::InvalidArgument,
            Error::RoomNotFound(_) => ErrorKind::NotFound,
            Error::NotAMember(_) | Error::NotRoomOwner(_) => ErrorKind::Forbidden,
            Error::RoomFull(..) | Error::OwnerCannotLeave(_) | Error::DirectRoom(_) => {
                ErrorKind::Conflict
            }
            Error::AlreadyMember(_) | Error::IdempotencyKeyReused(_) => ErrorKind::Conflict,
            Error::ViewTimeout { .. } => ErrorKind::Timeout,
            Error::NotReady { .. } => ErrorKind::Unavailable,
            Error::UsernameTaken(_) | Error::EmailTaken(_) => ErrorKind::Conflict,
            Error::InvalidCredentials | Error::InvalidRefreshToken | Error::RefreshTokenReused => {
                ErrorKind::Unauthenticated
            }
            Error::SessionNotFound | Error::UserNotFound | Error::MessageNotFound(_) => {
                ErrorKind::NotFound
            }
            Error::NotMessageAuthor(_) | Error::NotPostAuthor(_) | Error::NotCommentAuthor(_) => {
                ErrorKind::Forbidden
            }
            Error::PostNotFound(_) | Error::CommentNotFound(_) => ErrorKind::NotFound,
            Error::AlreadyLiked(_)
            | Error::NotLiked(_)
            | Error::AlreadyFollowing
            | Error::NotFollowing => ErrorKind::Conflict,
            Error::AlreadyQueued
            | Error::NotQueued
            | Error::AlreadyMatched(_)
            | Error::NotMatched
            | Error::AlreadyBlocked
            | Error::NotBlocked
            | Error::MatchRoom(_) => ErrorKind::Conflict,
            Error::Blocked => ErrorKind::Forbidden,
            Error::MediaNotFound(_) => ErrorKind::NotFound,
            Error::NotMediaOwner(_) | Error::UploadUrlInvalid => ErrorKind::Forbidden,
            Error::MediaNotReady(..)
            | Error::MediaRejected(..)
            | Error::UploadMissing(_)
            | Error::AlreadyUploaded(_) => ErrorKind::Conflict,
            Error::UnsupportedMediaType { .. } => ErrorKind::UnsupportedMedia,
            Error::MediaTooLarge { .. } => ErrorKind::TooLarge,
            Error::SizeMismatch { .. } => ErrorKind::InvalidArgument,
            Error::Overloaded { .. } | Error::RateLimited { .. } => ErrorKind::Overloaded,
            Error::Unavailable | Error::StorageUnavailable(_) => ErrorKind::Unavailable,
            Error::Storage(_) | Error::Decode { .. } | Error::Internal(_) => ErrorKind::Internal,
        }
    }
}

impl Error {
    /// How long the client should wait before retrying, for refusals that say so.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Error::Overloaded { retry_after, .. } | Error::RateLimited { retry_after, .. } => {
                Some(*retry_after)
            }
            Error::NotReady { .. } => Some(NOT_READY_RETRY_AFTER),
            Error::StorageUnavailable(_) => Some(STORAGE_RETRY_AFTER),
            _ => None,
        }
    }
}

/// Milliseconds to wait, at least one (what WebSocket error frames carry).
pub fn retry_millis(wait: std::time::Duration) -> u64 {
    u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Whole seconds to wait, at least one (what `Retry-After` carries).
pub fn retry_seconds(wait: std::time::Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// Result with the engine error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
