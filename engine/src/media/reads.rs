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

/// Who reads, signed in, and what is known of their current match (who is in a match room:
/// `chat/membership.rs`). A read asks matching only when it meets a match room, so other media
/// reads never wait on the matching stage.
#[derive(Clone, Copy)]
struct Viewer {
    user: UserId,
    /// `None` until a match room asked; then the room of their current match, if any.
    match_room: Option<Option<RoomId>>,
}

/// What a read finds of a media for its viewer.
enum Seen {
    Readable(MediaInfo),
    /// Deleted, or not theirs to see: it does not exist for them.
    Hidden,
    /// It is in a match room they have no row in: their current match decides.
    AsksMatch,
}

/// Whether `viewer` (`None`: not signed in) may see `media` (not deleted); `None`: a match
/// room asks for the viewer's current match.
fn may_read(store: &Store, viewer: Option<Viewer>, media: &MediaRecord) -> Result<Option<bool>> {
    if media.avatar && media.state == READY {
        return Ok(Some(true));
    }
    let Some(Viewer { user, match_room }) = viewer else {
        return Ok(Some(false));
    };
    if media.owner == user.as_bytes() {
        return Ok(Some(true));
    }
    if media.state != READY {
        return Ok(Some(false));
    }
    if media.post_uses > 0 {
        return Ok(Some(true));
    }
    let mut asks_match = false;
    for room in &media.rooms {
        let Some(room) = RoomId::from_slice(room) else {
            continue;
        };
        // A row grants it (a match room has one only while an older build's match lasts).
        if store
            .get(Table::RoomidUseridMember, &member_key(room, user))?
            .is_some()
        {
            return Ok(Some(true));
        }
        let found: Option<RoomRecord> =
            record(store.get(Table::RoomidRoom, room.as_bytes())?, "room")?;
        if found.is_some_and(|found| membership::by_match(&found)) {
            match match_room {
                Some(current) if current == Some(room) => return Ok(Some(true)),
                Some(_) => {}
                None => asks_match = true,
            }
        }
    }
    Ok((!asks_match).then_some(false))
}

/// `media` as `viewer` may see it.
fn readable(store: &Store, viewer: Option<Viewer>, media: EventId) -> Result<Seen> {
    let found: Option<MediaRecord> =
        record(store.get(Table::MediaidMedia, media.as_bytes())?, "media")?;
    let Some(found) = found.filter(|found| found.state != DELETED) else {
        return Ok(Seen::Hidden);
    };
    Ok(match may_read(store, viewer, &found)? {
        Some(true) => Seen::Readable(MediaInfo::from_record(media, &found)?),
        Some(false) => Seen::Hidden,
        None => Seen::AsksMatch,
    })
}

impl Engine {
    /// `user` as a media read sees them, with their current match once a match room asks.
    async fn viewer(&self, user: Option<UserId>, asks_match: bool) -> Result<Option<Viewer>> {
        let Some(user) = user else {
            return Ok(None);
        };
        let match_room = match asks_match {
            true => Some(
                self.current_match_of(user)
                    .await?
                    .map(|current| current.room),
            ),
            false => None,
        };
        Ok(Some(Viewer { user, match_room }))
    }

    /// A media's metadata as `viewer` may see it, or `MEDIA_NOT_FOUND`.
    pub async fn media(&self, viewer: Option<UserId>, id: &str) -> Result<MediaInfo> {
        let not_found = || Error::MediaNotFound(id.chars().take(64).collect());
        let media: EventId = id.parse().map_err(|_| not_found())?;
        for asks_match in [false, true] {
            let reader = self.viewer(viewer, asks_match).await?;
            match self
                .blocking(move |store| readable(store, reader, media))
                .await?
            {
                Seen::Readable(info) => return Ok(info),
                Seen::Hidden => break,
                Seen::AsksMatch => {}
            }
        }
        Err(not_found())
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
        let mut found = HashMap::new();
        let mut asking = ids;
        for asks_match in [false, true] {
            if asking.is_empty() {
                break;
            }
            let reader = self.viewer(viewer, asks_match).await?;
            let ids = std::mem::take(&mut asking);
            let (readable_now, asks) = self
                .blocking(move |store| {
                    let (mut readable_now, mut asks) = (Vec::new(), Vec::new());
                    for id in ids {
                        let Ok(media) = id.parse::<EventId>() else {
                            continue;
                        };
                        match readable(store, reader, media)? {
                            Seen::Readable(info) if info.is_ready() => {
                                readable_now.push((id, info))
                            }
                            Seen::AsksMatch => asks.push(id),
                            Seen::Readable(_) | Seen::Hidden => {}
                        }
                    }
                    Ok((readable_now, asks))
                })
                .await?;
            found.extend(readable_now);
            asking = asks;
        }
        Ok(found)
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
