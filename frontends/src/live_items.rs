//! The read-model items the live topics push (`feed`: a new post; `notifications`: a new
//! notification; `matching`: your place in matching, naming your partner), gathered the same
//! way for every socket protocol (`/ws`, QUIC): what the hub's reference names, read and
//! resolved for its reader, or `None` when there is nothing to send (the post is gone, or
//! cannot be read: logged).

use crate::dto::{NotificationDto, PostDto, PublicUserDto};
use girok_engine::Engine;
use girok_engine::matching::MatchingUpdate;
use girok_engine::views::NotificationRef;
use girok_schemas::{Event, Seq, UserId};
use serde_json::{Value, json};

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

/// A match partner's public profile; `None` (logged) when it cannot be read: a profile that
/// cannot be read leaves the partner out, not the match.
pub async fn partner_profile(engine: &Engine, partner: UserId) -> Option<PublicUserDto> {
    match engine.user(partner).await {
        Ok(user) => Some(PublicUserDto::from(&user)),
        Err(error) => {
            tracing::warn!(%error, %partner, "match partner's profile not read");
            None
        }
    }
}

/// A matching event as `me` sees it (what the WebSocket's matching frames say, naming their
/// own partner and nothing of the partner's ticket): `None` for one that says nothing to them.
pub async fn matching_item(engine: &Engine, event: &Event, me: UserId) -> Option<Value> {
    Some(match MatchingUpdate::of(event, me)? {
        MatchingUpdate::Queued {
            ticket,
            tags,
            language,
        } => {
            json!({ "type": "queued", "ticketId": ticket.to_string(), "tags": tags, "language": language })
        }
        MatchingUpdate::Matched {
            room,
            partner,
            shared_tags,
            waited_ms,
        } => json!({
            "type": "matched",
            "roomId": room.to_string(),
            "partner": partner_profile(engine, partner).await,
            "sharedTags": shared_tags,
            "waitedMs": waited_ms,
        }),
        MatchingUpdate::Expired { ticket_seq } => {
            json!({ "type": "expired", "ticketSeq": ticket_seq })
        }
        MatchingUpdate::Dequeued { ticket_seq, reason } => {
            json!({ "type": "dequeued", "ticketSeq": ticket_seq, "reason": reason })
        }
        MatchingUpdate::Skipped { room, by_me } => {
            json!({ "type": "skipped", "roomId": room.to_string(), "byMe": by_me })
        }
    })
}
