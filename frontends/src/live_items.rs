//! The read-model items the live topics push (`feed`: a new post; `notifications`: a new
//! notification), gathered the same way for every socket protocol (`/ws`, QUIC): what the
//! hub's reference names, read and resolved for its reader, or `None` when there is nothing
//! to send (the post is gone, or cannot be read: logged).

use crate::dto::{NotificationDto, PostDto};
use girok_engine::Engine;
use girok_engine::views::NotificationRef;
use girok_schemas::{Seq, UserId};

/// The post at `seq` as `user` sees it, with its media.
pub async fn pushed_post(engine: &Engine, user: UserId, seq: Seq) -> Option<PostDto<'static>> {
    let found = match engine.pushed_post(user, seq).await {
        Ok(found) => found,
        Err(error) => {
            tracing::error!(%error, seq, "feed push cannot read the post");
            None
        }
    };
    let post = found?;
    // The media of a post are readable by every signed-in user.
    let media = match crate::dto::media_of(engine, user, [&post]).await {
        Ok(media) => media,
        Err(error) => {
            tracing::warn!(%error, seq, "feed push cannot read a post's media");
            Default::default()
        }
    };
    Some(PostDto::owned(post).with_media(&media))
}

/// A notification the hub announced, resolved (its seq and its object).
pub async fn pushed_notification(
    engine: &Engine,
    note: NotificationRef,
) -> Option<(Seq, NotificationDto)> {
    match engine.resolve_notification(note).await {
        Ok(resolved) => Some((resolved.seq, NotificationDto::from(&resolved))),
        Err(error) => {
            tracing::error!(%error, seq = note.seq, "notification push cannot resolve");
            None
        }
    }
}
