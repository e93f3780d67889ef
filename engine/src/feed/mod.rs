//! The feed: posts, likes, comments, follows, timelines and notifications, in the shape of
//! every domain: its [`FeedCommand`]s (`command.rs`), the write-time rules the sequencer runs
//! (`stage.rs`), its effect on the write model (`apply.rs`), and its reads (`reads.rs`, the
//! `Engine` methods), which come from the feed views (`views::feed`) and bodies from the log,
//! with read-your-writes (`after`).

pub(crate) mod apply;
mod command;
mod reads;
mod stage;

pub use command::{FeedCommand, mentioned_usernames};
pub(crate) use reads::post_of;
pub use reads::{
    Comment, FollowEdge, FollowPage, Notification, NotificationPage, Post, PostCursor, PostPage,
};
pub(crate) use stage::stage;
