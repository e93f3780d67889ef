//! Every input limit the engine enforces, in one place (documented in README.md).

/// Longest message body, in bytes of UTF-8.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024;
/// Longest room title, in characters.
pub const MAX_ROOM_TITLE_CHARS: usize = 100;
/// Longest client idempotency id, in bytes (printable ASCII only).
pub const MAX_CLIENT_ID_BYTES: usize = 64;
/// Largest page of a history read.
pub const MAX_PAGE_SIZE: usize = 100;
/// Page size when the client gives none.
pub const DEFAULT_PAGE_SIZE: usize = 20;
/// Most members of a group room (the owner included).
pub const MAX_ROOM_MEMBERS: usize = 1000;
/// Largest page of a room list.
pub const MAX_ROOMS_PAGE_SIZE: usize = 100;
/// Unread counts stop counting here (a client shows "10000+").
pub const MAX_UNREAD_COUNT: usize = 10_000;
