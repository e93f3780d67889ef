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
/// Longest post, in characters.
pub const MAX_POST_CHARS: usize = 5000;
/// Most media ids on one post.
pub const MAX_POST_MEDIA: usize = 4;
/// Most media on one chat message.
pub const MAX_MESSAGE_ATTACHMENTS: usize = 4;
/// Longest media id, in bytes (printable ASCII).
pub const MAX_MEDIA_ID_BYTES: usize = 64;
/// Longest comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 1000;
/// Most distinct `@username` mentions that notify, per post or comment (later ones are text).
pub const MAX_MENTIONS: usize = 20;
/// Largest page of a timeline, a follower list, notifications or search results.
pub const MAX_FEED_PAGE_SIZE: usize = 100;
/// Most comments shown inline with a post (`comments(limit:)`).
pub const MAX_INLINE_COMMENTS: usize = 20;
/// Longest search query, in characters.
pub const MAX_SEARCH_QUERY_CHARS: usize = 256;
/// How deep search results may be paged (offset plus page size).
pub const MAX_SEARCH_DEPTH: usize = 1000;
/// Most interest tags on one matching ticket.
pub const MAX_MATCH_TAGS: usize = 10;
/// Longest interest tag, in characters (letters, digits and `-`).
pub const MAX_MATCH_TAG_CHARS: usize = 32;
/// Longest language code on a matching ticket (`en`, `pt-BR`: letters, digits and `-`).
pub const MAX_MATCH_LANGUAGE_CHARS: usize = 16;
