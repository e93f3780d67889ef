//! The feed's write-time rules, run by the sequencer on the writer thread: only live posts are
//! liked, commented and edited; only authors edit and delete; one like per user and post; one
//! follow per pair, never of yourself; notification receipts only move forward; a post's
//! media must be the author's own and ready. Mentions are resolved to user ids here, so the
//! log records who was notified, whatever usernames do later.

use super::command::{FeedCommand, mentioned_usernames};
use crate::ack::Ack;
use crate::error::{Error, Result};
use crate::records::{pair_of, record, seq_value};
use crate::staging::{append, receipt};
use girok_schemas::proto::{CommentRecord, PostRecord};
use girok_schemas::{EventId, Payload, UserId};
use girok_storage::{Table, Txn};

pub(crate) fn stage(
    txn: &mut Txn<'_>,
    actor: UserId,
    new_id: EventId,
    command: FeedCommand,
) -> Result<Ack> {
    match command {
        FeedCommand::CreatePost { content, media_ids } => {
            crate::media::check_usable(txn, actor, &media_ids, &[])?;
            let mentions = resolve_mentions(txn, actor, &content)?;
            append(
                txn,
                actor,
                new_id,
                Payload::PostCreated {
                    content,
                    media_ids,
                    mentions,
                },
            )
        }
        FeedCommand::EditPost {
            post,
            content,
            media_ids,
        } => {
            let record = own_post(txn, actor, post)?;
            if let Some(media_ids) = &media_ids {
                crate::media::check_usable(txn, actor, media_ids, &record.media_ids)?;
            }
            let mentions = resolve_mentions(txn, actor, &content)?;
            append(
                txn,
                actor,
                new_id,
                Payload::PostEdited {
                    post,
                    post_seq: record.seq,
                    content,
                    media_ids: media_ids.unwrap_or(record.media_ids),
                    mentions,
                },
            )
        }
        FeedCommand::DeletePost { post } => {
            let record = own_post(txn, actor, post)?;
            append(
                txn,
                actor,
                new_id,
                Payload::PostDeleted {
                    post,
                    post_seq: record.seq,
                },
            )
        }
        FeedCommand::LikePost { post } => {
            let (record, author) = live_post(txn, post)?;
            if txn.contains(Table::PostidUseridLike, &pair_of(post.0, actor.0))? {
                return Err(Error::AlreadyLiked(post));
            }
            append(
                txn,
                actor,
                new_id,
                Payload::PostLiked {
                    post,
                    post_seq: record.seq,
                    post_author: author,
                },
            )
        }
        FeedCommand::UnlikePost { post } => {
            let (record, author) = live_post(txn, post)?;
            let Some(like) = txn.get(Table::PostidUseridLike, &pair_of(post.0, actor.0))? else {
                return Err(Error::NotLiked(post));
            };
            append(
                txn,
                actor,
                new_id,
                Payload::PostUnliked {
                    post,
                    post_seq: record.seq,
                    post_author: author,
                    like_seq: seq_value(Some(like)),
                },
            )
        }
        FeedCommand::AddComment { post, content } => {
            let (record, author) = live_post(txn, post)?;
            let mentions = resolve_mentions(txn, actor, &content)?;
            append(
                txn,
                actor,
                new_id,
                Payload::CommentAdded {
                    post,
                    post_seq: record.seq,
                    post_author: author,
                    content,
                    mentions,
                },
            )
        }
        FeedCommand::DeleteComment { comment } => {
            let record: Option<CommentRecord> = record(
                txn.get(Table::CommentidComment, comment.as_bytes())?,
                "comment",
            )?;
            let Some(record) = record.filter(|c| !c.deleted) else {
                return Err(Error::CommentNotFound(comment));
            };
            let post = EventId::from_slice(&record.post_id)
                .ok_or_else(|| Error::Internal("corrupt comment record post".into()))?;
            // A comment on a deleted post went with it.
            let Ok((_, post_author)) = live_post(txn, post) else {
                return Err(Error::CommentNotFound(comment));
            };
            if record.author != actor.as_bytes() {
                return Err(Error::NotCommentAuthor(comment));
            }
            append(
                txn,
                actor,
                new_id,
                Payload::CommentDeleted {
                    comment,
                    comment_seq: record.seq,
                    post,
                    post_seq: record.post_seq,
                    post_author,
                },
            )
        }
        FeedCommand::Follow { user } => {
            if user == actor {
                return Err(Error::invalid("userId", "you cannot follow yourself"));
            }
            if !txn.contains(Table::UseridUser, user.as_bytes())? {
                return Err(Error::UserNotFound);
            }
            if txn.contains(Table::FollowerFollowee, &pair_of(actor.0, user.0))? {
                return Err(Error::AlreadyFollowing);
            }
            append(txn, actor, new_id, Payload::UserFollowed { user })
        }
        FeedCommand::Unfollow { user } => {
            let Some(follow) = txn.get(Table::FollowerFollowee, &pair_of(actor.0, user.0))? else {
                return Err(Error::NotFollowing);
            };
            let follow_seq = seq_value(Some(follow));
            append(
                txn,
                actor,
                new_id,
                Payload::UserUnfollowed { user, follow_seq },
            )
        }
        FeedCommand::MarkNotificationsRead { up_to } => {
            let current = seq_value(txn.get(Table::UseridNotificationsread, actor.as_bytes())?);
            receipt(txn, actor, new_id, current, up_to, |up_to| {
                Payload::NotificationsRead { up_to }
            })
        }
    }
}

/// A post that exists and is not deleted, with its author.
fn live_post(txn: &Txn<'_>, post: EventId) -> Result<(PostRecord, UserId)> {
    let record: Option<PostRecord> = record(txn.get(Table::PostidPost, post.as_bytes())?, "post")?;
    let record = record
        .filter(|p| !p.deleted)
        .ok_or(Error::PostNotFound(post))?;
    let author = UserId::from_slice(&record.author)
        .ok_or_else(|| Error::Internal("corrupt post record author".into()))?;
    Ok((record, author))
}

/// A live post written by `actor`.
fn own_post(txn: &Txn<'_>, actor: UserId, post: EventId) -> Result<PostRecord> {
    let (record, author) = live_post(txn, post)?;
    if author != actor {
        return Err(Error::NotPostAuthor(post));
    }
    Ok(record)
}

/// The users `@named` in `text` that exist, other than the writer.
fn resolve_mentions(txn: &Txn<'_>, actor: UserId, text: &str) -> Result<Vec<UserId>> {
    let mut users = Vec::new();
    for name in mentioned_usernames(text) {
        if let Some(user) = txn
            .get(Table::UsernameUserid, name.as_bytes())?
            .and_then(|bytes| UserId::from_slice(&bytes))
            && user != actor
        {
            users.push(user);
        }
    }
    Ok(users)
}
