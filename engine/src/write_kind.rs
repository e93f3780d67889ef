//! Which per-user write budget (`[rate_limits]`) a command spends from. Each domain's command
//! says it for its own commands (`ChatCommand::write_kind`, `FeedCommand::write_kind`), so a
//! new command is classified where it is declared.

/// The kinds of write, in the order of `WriteRates`' fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WriteKind {
    Messages,
    Posts,
    Comments,
    Likes,
    Follows,
    Rooms,
    Matching,
    Media,
}

impl WriteKind {
    /// Its name in `[rate_limits]` and in the refusal's message.
    pub(crate) fn name(self) -> &'static str {
        match self {
            WriteKind::Messages => "messages",
            WriteKind::Posts => "posts",
            WriteKind::Comments => "comments",
            WriteKind::Likes => "likes",
            WriteKind::Follows => "follows",
            WriteKind::Rooms => "rooms",
            WriteKind::Matching => "matching",
            WriteKind::Media => "media uploads",
        }
    }
}
