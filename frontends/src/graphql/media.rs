//! Media over GraphQL: the `Media` object (on posts, authors and users, and by `media(id)`),
//! and the first step of an upload, `requestMediaUpload`, with `completeMediaUpload` and
//! `deleteMedia`. The bytes themselves go over HTTP to the URL the first step names (see
//! REST's `/v1/media`); the rules and errors are the engine's.

use super::args::{engine, parse_id};
use super::errors::{changing_principal, gql, request_auth};
use super::loaders::Loaders;
use super::scalars::Seq;
use async_graphql::{Context, ID, Object, Result, SimpleObject};
use girok_engine::MediaInfo;
use girok_schemas::{EventId, UserId, rfc3339_millis};

/// An image: its state, and once ready its size, a placeholder and its variants.
pub struct Media(pub MediaInfo);

/// One size of a ready image.
#[derive(SimpleObject)]
pub struct MediaVariant {
    name: String,
    width: i32,
    height: i32,
    bytes: u64,
    url: String,
}

fn variant_url(media: &MediaInfo, name: &str) -> String {
    format!("/v1/media/{}/{name}", media.id)
}

#[Object]
impl Media {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// `requested`, `processing`, `ready` or `rejected`.
    async fn state(&self) -> &str {
        self.0.state
    }
    async fn content_type(&self) -> &str {
        &self.0.content_type
    }
    /// Of the upright image, once ready.
    async fn width(&self) -> Option<i32> {
        self.0.is_ready().then_some(self.0.width as i32)
    }
    async fn height(&self) -> Option<i32> {
        self.0.is_ready().then_some(self.0.height as i32)
    }
    /// A blurhash to show while the image loads.
    async fn placeholder(&self) -> Option<&str> {
        Some(self.0.placeholder.as_str()).filter(|p| !p.is_empty())
    }
    /// The URL of a variant (`thumb`, `small`, `large` or `full`; default `large`), once
    /// ready.
    async fn url(
        &self,
        #[graphql(default_with = "\"large\".to_string()")] variant: String,
    ) -> Option<String> {
        self.0
            .variant(&variant)
            .map(|v| variant_url(&self.0, &v.name))
    }
    async fn variants(&self) -> Vec<MediaVariant> {
        self.0
            .variants
            .iter()
            .map(|v| MediaVariant {
                name: v.name.clone(),
                width: v.width as i32,
                height: v.height as i32,
                bytes: v.bytes,
                url: variant_url(&self.0, &v.name),
            })
            .collect()
    }
    /// Why processing refused it.
    async fn rejected_reason(&self) -> Option<&str> {
        self.0.rejected_reason.as_deref()
    }
    async fn created_at(&self) -> String {
        rfc3339_millis(self.0.created_ms)
    }
}

/// The signed-in caller, if any (media of avatars are readable without signing in).
fn viewer(ctx: &Context<'_>) -> Result<Option<UserId>> {
    Ok(request_auth(ctx)?.principal.map(|p| p.user))
}

/// The ready media among `ids` the caller may see, in the order of `ids`.
pub async fn media_of(ctx: &Context<'_>, ids: &[String]) -> Result<Vec<Media>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // Batched with the rest of the request's media when it has loaders (queries); directly
    // otherwise (subscriptions).
    let mut found = match ctx.data_opt::<Loaders>() {
        Some(loaders) => loaders
            .media(ids)
            .await
            .map_err(super::feed_types::load_failed)?,
        None => engine(ctx)?
            .media_many(viewer(ctx)?, ids.to_vec())
            .await
            .map_err(gql)?,
    };
    Ok(ids
        .iter()
        .filter_map(|id| found.remove(id).map(Media))
        .collect())
}

/// Where to send an upload's bytes.
#[derive(SimpleObject)]
pub struct MediaUpload {
    id: ID,
    seq: Seq,
    /// PUT the bytes here: an object store's presigned URL, or a path of girok's own.
    upload_url: String,
    method: String,
    expires_at: String,
}

/// The answer to `completeMediaUpload` and `deleteMedia`.
#[derive(SimpleObject)]
pub struct MediaChange {
    id: ID,
    seq: Seq,
}

fn media_id(id: &ID) -> Result<EventId> {
    parse_id("id", "a media id", id)
}

#[derive(Default)]
pub struct MediaQuery;

#[Object]
impl MediaQuery {
    /// A media you may see (yours in any state; others' once ready).
    async fn media(&self, ctx: &Context<'_>, id: ID) -> Result<Media> {
        let media = engine(ctx)?
            .media(viewer(ctx)?, id.as_str())
            .await
            .map_err(gql)?;
        Ok(Media(media))
    }
}

#[derive(Default)]
pub struct MediaMutation;

#[Object]
impl MediaMutation {
    /// Starts an upload of `bytes` bytes of `contentType` (image/jpeg, image/png,
    /// image/webp or image/gif); then PUT the bytes to `uploadUrl` and complete it.
    async fn request_media_upload(
        &self,
        ctx: &Context<'_>,
        content_type: String,
        bytes: u64,
    ) -> Result<MediaUpload> {
        let me = changing_principal(ctx)?;
        let grant = engine(ctx)?
            .request_upload(me.user, content_type, bytes)
            .await
            .map_err(gql)?;
        Ok(MediaUpload {
            id: ID(grant.media.to_string()),
            seq: Seq(grant.seq),
            upload_url: grant.upload_url,
            method: "PUT".into(),
            expires_at: rfc3339_millis(grant.expires_ms),
        })
    }

    /// Your upload's bytes are there: process them (`Media.state` becomes `ready` or
    /// `rejected`).
    async fn complete_media_upload(&self, ctx: &Context<'_>, id: ID) -> Result<MediaChange> {
        let me = changing_principal(ctx)?;
        let media = media_id(&id)?;
        let ack = engine(ctx)?
            .complete_upload(me.user, media)
            .await
            .map_err(gql)?;
        Ok(MediaChange {
            id,
            seq: Seq(ack.seq),
        })
    }

    /// Deletes one of your media: gone from every post, profile and message at once.
    async fn delete_media(&self, ctx: &Context<'_>, id: ID) -> Result<MediaChange> {
        let me = changing_principal(ctx)?;
        let media = media_id(&id)?;
        let ack = engine(ctx)?
            .delete_media(me.user, media)
            .await
            .map_err(gql)?;
        Ok(MediaChange {
            id,
            seq: Seq(ack.seq),
        })
    }
}
