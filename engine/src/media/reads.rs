//! Media reads, each an `Engine` method: a media's metadata (its owner sees it in any state,
//! others only once ready and only if they may read it) and a variant's bytes, whole or a
//! range. Who may read: the owner; any signed-in user, a media a post or an avatar uses;
//! anyone, an avatar; the members of a room whose messages carry it.

use super::process::{VARIANTS, fit};
use super::rows::{self, DELETED, READY};
use crate::chat::membership;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::records::{member_key, record};
use bytes::Bytes;
use girok_schemas::proto::{MediaRecord, RoomRecord};
use girok_schemas::{EventId, RoomId, Seq, UserId};
use girok_storage::{Store, Table};
use std::collections::HashMap;
use std::ops::Range;

/// One variant of a ready media.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaVariant {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    /// Hex SHA-256 of its bytes (its ETag).
    pub hash: String,
}

/// A media as a reader sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaInfo {
    pub id: EventId,
    pub owner: UserId,
    /// `requested`, `processing`, `ready` or `rejected`.
    pub state: &'static str,
    pub seq: Seq,
    pub created_ms: i64,
    /// Declared while not ready; of the variants once ready.
    pub content_type: String,
    pub declared_bytes: u64,
    pub width: u32,
    pub height: u32,
    pub placeholder: String,
    pub variants: Vec<MediaVariant>,
    /// The rejection's code.
    pub rejected_reason: Option<String>,
    /// Someone's avatar: readable by anyone.
    pub avatar: bool,
}

fn corrupt() -> Error {
    Error::Internal("corrupt media record".into())
}

impl MediaInfo {
    fn from_record(id: EventId, r: &MediaRecord) -> Result<MediaInfo> {
        let width = u32::try_from(r.width).map_err(|_| corrupt())?;
        let height = u32::try_from(r.height).map_err(|_| corrupt())?;
        let variants = r
            .variant_names
            .iter()
            .zip(&r.variant_hashes)
            .zip(&r.variant_bytes)
            .map(|((name, hash), bytes)| {
                let max = VARIANTS
                    .iter()
                    .find(|(known, _)| known == name)
                    .map_or(u32::MAX, |(_, max)| *max);
                let (w, h) = fit(width, height, max);
                MediaVariant {
                    name: name.clone(),
                    width: w,
                    height: h,
                    bytes: *bytes,
                    hash: hash.clone(),
                }
            })
            .collect();
        Ok(MediaInfo {
            id,
            owner: UserId::from_slice(&r.owner).ok_or_else(corrupt)?,
            state: rows::state_name(r.state),
            seq: r.seq,
            created_ms: r.requested_ms,
            content_type: r.content_type.clone(),
            declared_bytes: r.declared_bytes,
            width,
            height,
            placeholder: r.placeholder.clone(),
            variants,
            rejected_reason: Some(r.rejected_reason.clone()).filter(|r| !r.is_empty()),
            avatar: r.avatar,
        })
    }

    /// Processed and readable as images (its size and variants are set).
    pub fn is_ready(&self) -> bool {
        self.state == rows::state_name(READY)
    }

    /// The variant named `name`.
    pub fn variant(&self, name: &str) -> Option<&MediaVariant> {
        self.variants.iter().find(|v| v.name == name)
    }
}

/// Who reads: the signed-in user, if any, with the room of their current match (who is in a
/// match room: `chat/membership.rs`).
#[derive(Clone, Copy)]
struct Viewer {
    user: UserId,
    match_room: Option<RoomId>,
}

/// Whether `viewer` (`None`: not signed in) may see `record` (not deleted).
fn may_read(store: &Store, viewer: Option<Viewer>, record: &MediaRecord) -> Result<bool> {
    if record.avatar && record.state == READY {
        return Ok(true);
    }
    let Some(Viewer { user, match_room }) = viewer else {
        return Ok(false);
    };
    if record.owner == user.as_bytes() {
        return Ok(true);
    }
    if record.state != READY {
        return Ok(false);
    }
    if record.post_uses > 0 {
        return Ok(true);
    }
    for room in &record.rooms {
        let Some(room) = RoomId::from_slice(room) else {
            continue;
        };
        let found: Option<RoomRecord> =
            crate::records::record(store.get(Table::RoomidRoom, room.as_bytes())?, "room")?;
        let in_room = match found {
            None => false,
            Some(found) if membership::by_match(&found) => match_room == Some(room),
            Some(_) => store
                .get(Table::RoomidUseridMember, &member_key(room, user))?
                .is_some(),
        };
        if in_room {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `media` as `viewer` may see it; `None` when it does not exist for them.
fn readable(store: &Store, viewer: Option<Viewer>, media: EventId) -> Result<Option<MediaInfo>> {
    let found: Option<MediaRecord> =
        record(store.get(Table::MediaidMedia, media.as_bytes())?, "media")?;
    match found {
        Some(r) if r.state != DELETED && may_read(store, viewer, &r)? => {
            MediaInfo::from_record(media, &r).map(Some)
        }
        _ => Ok(None),
    }
}

impl Engine {
    /// `user` as a media read sees them.
    async fn viewer(&self, user: Option<UserId>) -> Result<Option<Viewer>> {
        let Some(user) = user else {
            return Ok(None);
        };
        let match_room = self.match_room_of(user).await?;
        Ok(Some(Viewer { user, match_room }))
    }

    /// A media's metadata as `viewer` may see it, or `MEDIA_NOT_FOUND`.
    pub async fn media(&self, viewer: Option<UserId>, id: &str) -> Result<MediaInfo> {
        let not_found = || Error::MediaNotFound(id.chars().take(64).collect());
        let media: EventId = id.parse().map_err(|_| not_found())?;
        let viewer = self.viewer(viewer).await?;
        self.blocking(move |store| readable(store, viewer, media))
            .await?
            .ok_or_else(not_found)
    }

    /// The ready media among `ids` that `viewer` may see, by id (for posts and profiles:
    /// what is deleted, not ready or not theirs to see is left out).
    pub async fn media_many(
        &self,
        viewer: Option<UserId>,
        ids: Vec<String>,
    ) -> Result<HashMap<String, MediaInfo>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let viewer = self.viewer(viewer).await?;
        self.blocking(move |store| {
            let mut found = HashMap::new();
            for id in ids {
                let Ok(media) = id.parse::<EventId>() else {
                    continue;
                };
                if let Some(info) = readable(store, viewer, media)?
                    && info.is_ready()
                {
                    found.insert(id, info);
                }
            }
            Ok(found)
        })
        .await
    }

    /// The variant `variant` of a ready media `viewer` may see: its metadata and the variant.
    pub async fn media_variant(
        &self,
        viewer: Option<UserId>,
        id: &str,
        variant: &str,
    ) -> Result<(MediaInfo, MediaVariant)> {
        let info = self.media(viewer, id).await?;
        if !info.is_ready() {
            return match &info.rejected_reason {
                Some(reason) => Err(Error::MediaRejected(info.id, reason.clone())),
                None => Err(Error::MediaNotReady(info.id, info.state)),
            };
        }
        let found = info.variant(variant).cloned().ok_or_else(|| {
            Error::MediaNotFound(format!(
                "{}/{}",
                info.id,
                variant.chars().take(16).collect::<String>()
            ))
        })?;
        Ok((info, found))
    }

    /// A variant's bytes (`range`: a part the caller checked against its size).
    pub async fn media_bytes(
        &self,
        variant: &MediaVariant,
        range: Option<Range<u64>>,
    ) -> Result<Bytes> {
        let key = rows::object_key(&variant.hash);
        match range {
            Some(range) => Ok(self.media.blobs.get_range(&key, range).await?),
            None => self
                .media
                .blobs
                .get(&key)
                .await?
                .ok_or_else(|| Error::Internal(format!("object {key} is missing"))),
        }
    }
}
