//! Feed commands (posts, likes, comments, follows, notification receipts) and their input
//! checks, done before the command reaches the writer thread.

use crate::error::{Error, Result};
use crate::limits::{
    MAX_COMMENT_CHARS, MAX_MEDIA_ID_BYTES, MAX_MENTIONS, MAX_POST_CHARS, MAX_POST_MEDIA,
};
use crate::write_kind::WriteKind;
use girok_schemas::{EventId, Seq, UserId};

/// A request to change the feed or the social graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeedCommand {
    CreatePost {
        content: String,
        media_ids: Vec<String>,
    },
    /// Replaces the content of one of your posts, and its media if given (kept if `None`).
    EditPost {
        post: EventId,
        content: String,
        media_ids: Option<Vec<String>>,
    },
    DeletePost {
        post: EventId,
    },
    LikePost {
        post: EventId,
    },
    UnlikePost {
        post: EventId,
    },
    AddComment {
        post: EventId,
        content: String,
    },
    /// Deletes one of your comments.
    DeleteComment {
        comment: EventId,
    },
    Follow {
        user: UserId,
    },
    Unfollow {
        user: UserId,
    },
    /// Marks notifications read up to `up_to` (default: all so far); only forward.
    MarkNotificationsRead {
        up_to: Option<Seq>,
    },
}

impl FeedCommand {
    /// The per-user write budget it spends from; notification receipts spend none.
    pub(crate) fn write_kind(&self) -> Option<WriteKind> {
        match self {
            FeedCommand::CreatePost { .. }
            | FeedCommand::EditPost { .. }
            | FeedCommand::DeletePost { .. } => Some(WriteKind::Posts),
            FeedCommand::AddComment { .. } | FeedCommand::DeleteComment { .. } => {
                Some(WriteKind::Comments)
            }
            FeedCommand::LikePost { .. } | FeedCommand::UnlikePost { .. } => Some(WriteKind::Likes),
            FeedCommand::Follow { .. } | FeedCommand::Unfollow { .. } => Some(WriteKind::Follows),
            FeedCommand::MarkNotificationsRead { .. } => None,
        }
    }

    /// Checks and normalizes client input (content is trimmed at the ends).
    pub fn validated(self) -> Result<FeedCommand> {
        Ok(match self {
            FeedCommand::CreatePost { content, media_ids } => FeedCommand::CreatePost {
                content: text("content", content, MAX_POST_CHARS)?,
                media_ids: media(media_ids)?,
            },
            FeedCommand::EditPost {
                post,
                content,
                media_ids,
            } => FeedCommand::EditPost {
                post,
                content: text("content", content, MAX_POST_CHARS)?,
                media_ids: media_ids.map(media).transpose()?,
            },
            FeedCommand::AddComment { post, content } => FeedCommand::AddComment {
                post,
                content: text("content", content, MAX_COMMENT_CHARS)?,
            },
            other => other,
        })
    }
}

/// Trimmed, 1 to `max` characters, no control characters other than newlines and tabs.
fn text(field: &'static str, value: String, max: usize) -> Result<String> {
    let value = value.trim().to_owned();
    if value.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    let chars = value.chars().count();
    if chars > max {
        return Err(Error::invalid(
            field,
            format!("at most {max} characters (got {chars})"),
        ));
    }
    crate::text::body(field, &value)?;
    Ok(value)
}

/// At most [`MAX_POST_MEDIA`] distinct ids of 1 to [`MAX_MEDIA_ID_BYTES`] printable ASCII.
fn media(ids: Vec<String>) -> Result<Vec<String>> {
    crate::media::check_media_list("mediaIds", &ids, MAX_POST_MEDIA, "post")?;
    for id in &ids {
        if id.is_empty()
            || id.len() > MAX_MEDIA_ID_BYTES
            || !id.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(Error::invalid(
                "mediaIds",
                format!("each id is 1 to {MAX_MEDIA_ID_BYTES} printable ASCII characters"),
            ));
        }
    }
    Ok(ids)
}

/// The distinct usernames (lowercased) written as `@name` in `text`, in order of first
/// appearance, at most [`MAX_MENTIONS`]. A name is 3 to 30 of `[A-Za-z0-9_]` (as usernames
/// are) and must not follow a word character (so `a@b.c` mentions nobody).
pub fn mentioned_usernames(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut names: Vec<String> = Vec::new();
    let mut i = 0;
    while i < bytes.len() && names.len() < MAX_MENTIONS {
        if bytes[i] == b'@' && (i == 0 || !word(bytes[i - 1])) {
            let start = i + 1;
            let mut end = start;
            while end < bytes.len() && word(bytes[end]) {
                end += 1;
            }
            let name = text[start..end].to_lowercase();
            if (3..=30).contains(&name.len()) && !names.contains(&name) {
                names.push(name);
            }
            i = end;
        } else {
            i += 1;
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_limits() {
        let create = |content: &str, media: &[&str]| {
            FeedCommand::CreatePost {
                content: content.into(),
                media_ids: media.iter().map(|m| m.to_string()).collect(),
            }
            .validated()
        };
        assert!(create(&"가".repeat(MAX_POST_CHARS), &[]).is_ok());
        assert_eq!(
            create(&"가".repeat(MAX_POST_CHARS + 1), &[])
                .unwrap_err()
                .code(),
            "INVALID_ARGUMENT"
        );
        assert!(create("  ", &[]).is_err());
        assert!(create("line\nbreak", &[]).is_ok());
        assert!(create("bell\u{7}", &[]).is_err());
        assert!(create("x", &["a", "b", "c", "d"]).is_ok());
        assert!(create("x", &["a", "b", "c", "d", "e"]).is_err());
        assert!(create("x", &["a", "a"]).is_err());
        assert!(create("x", &["has space"]).is_err());
        assert!(create("x", &[""]).is_err());
        let comment = |content: &str| {
            FeedCommand::AddComment {
                post: EventId::new_v7(),
                content: content.into(),
            }
            .validated()
        };
        assert!(comment(&"a".repeat(MAX_COMMENT_CHARS)).is_ok());
        assert!(comment(&"a".repeat(MAX_COMMENT_CHARS + 1)).is_err());
    }

    #[test]
    fn mentions_are_parsed_like_usernames() {
        assert_eq!(
            mentioned_usernames("hi @Bob and @carol_9, @bob again; mail a@b.com; @x; @"),
            vec!["bob", "carol_9"]
        );
        assert_eq!(mentioned_usernames("(@dave)"), vec!["dave"]);
        let many: String = (0..30).map(|i| format!("@user{i:02} ")).collect();
        assert_eq!(mentioned_usernames(&many).len(), MAX_MENTIONS);
    }
}
