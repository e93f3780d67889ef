//! The feed: posts, likes, comments, follows, timelines and notifications. Commands are
//! checked by [`stage`] on the writer thread; reads (this module's `Engine` methods) come from
//! the feed views (`views::feed`) and bodies from the log, with read-your-writes (`after`).

mod command;
mod reads;
mod search;
mod stage;

pub use command::{FeedCommand, mentioned_usernames};
pub use reads::{
    Comment, FollowEdge, FollowPage, Notification, NotificationPage, Post, PostCursor, PostPage,
};
pub use search::{SearchPage, SearchQuery, SearchResult};
pub(crate) use stage::stage;
