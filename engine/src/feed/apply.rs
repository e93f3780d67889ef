//! The feed's effect on the write model: posts, comments, likes and follows (each with the
//! seq that made it), notification markers.

use crate::error::Result;
use crate::records::{pair_of, update};
use girok_schemas::proto::{CommentRecord, PostRecord};
use girok_schemas::{Event, EventId, Payload};
use girok_storage::{Table, Txn};
use prost::Message;

fn update_post(
    txn: &mut Txn<'_>,
    post: EventId,
    change: impl FnOnce(&mut PostRecord),
) -> Result<()> {
    update(txn, (Table::PostidPost, post.as_bytes(), "post"), change)
}

/// Applies the event's effect on the write model, if it is one of this domain's.
pub(crate) fn apply(txn: &mut Txn<'_>, event: &Event) -> Result<()> {
    let actor = event.actor;
    match &event.payload {
        Payload::PostCreated { media_ids, .. } => {
            let record = PostRecord {
                author: actor.map(|a| a.as_bytes().to_vec()).unwrap_or_default(),
                seq: event.seq,
                commit_time_ms: event.commit_time_ms,
                deleted: false,
                media_ids: media_ids.clone(),
            };
            txn.put(
                Table::PostidPost,
                event.id.as_bytes().to_vec(),
                record.encode_to_vec(),
            );
        }
        Payload::PostEdited {
            post, media_ids, ..
        } => update_post(txn, *post, |record| record.media_ids = media_ids.clone())?,
        Payload::PostDeleted { post, .. } => {
            update_post(txn, *post, |record| record.deleted = true)?
        }
        Payload::PostLiked { post, .. } => {
            if let Some(liker) = actor {
                txn.put(
                    Table::PostidUseridLike,
                    pair_of(post.0, liker.0),
                    event.seq.to_be_bytes().to_vec(),
                );
            }
        }
        Payload::PostUnliked { post, .. } => {
            if let Some(liker) = actor {
                txn.delete(Table::PostidUseridLike, pair_of(post.0, liker.0));
            }
        }
        Payload::CommentAdded { post, post_seq, .. } => {
            let record = CommentRecord {
                post_id: post.as_bytes().to_vec(),
                author: actor.map(|a| a.as_bytes().to_vec()).unwrap_or_default(),
                seq: event.seq,
                post_seq: *post_seq,
                deleted: false,
            };
            txn.put(
                Table::CommentidComment,
                event.id.as_bytes().to_vec(),
                record.encode_to_vec(),
            );
        }
        Payload::CommentDeleted { comment, .. } => {
            let key = (
                Table::CommentidComment,
                comment.as_bytes().as_slice(),
                "comment",
            );
            update(txn, key, |record: &mut CommentRecord| record.deleted = true)?;
        }
        Payload::UserFollowed { user } => {
            if let Some(follower) = actor {
                txn.put(
                    Table::FollowerFollowee,
                    pair_of(follower.0, user.0),
                    event.seq.to_be_bytes().to_vec(),
                );
            }
        }
        Payload::UserUnfollowed { user, .. } => {
            if let Some(follower) = actor {
                txn.delete(Table::FollowerFollowee, pair_of(follower.0, user.0));
            }
        }
        Payload::NotificationsRead { up_to } => {
            if let Some(reader) = actor {
                txn.put(
                    Table::UseridNotificationsread,
                    reader.as_bytes().to_vec(),
                    up_to.to_be_bytes().to_vec(),
                );
            }
        }
        _ => {}
    }
    Ok(())
}
