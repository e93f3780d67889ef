//! What resolvers take from the request's context (the engine, presence) and how they read
//! their arguments (ids, page sizes), with the errors a bad argument gets.

use super::errors::{gql, invalid};
use crate::presence::Presence;
use async_graphql::{Context, ID, Result};
use girok_engine::Engine;
use girok_schemas::{EventId, RoomId, UserId};
use std::sync::Arc;

pub(super) fn engine<'a>(ctx: &Context<'a>) -> Result<&'a Arc<Engine>> {
    ctx.data::<Arc<Engine>>()
        .map_err(|e| gql(girok_engine::Error::Internal(e.message)))
}

pub(super) fn presence<'a>(ctx: &Context<'a>) -> Result<&'a Arc<Presence>> {
    ctx.data::<Arc<Presence>>()
        .map_err(|e| gql(girok_engine::Error::Internal(e.message)))
}

pub(super) fn parse_id<T: std::str::FromStr>(
    field: &'static str,
    what: &str,
    id: &ID,
) -> Result<T> {
    id.parse()
        .map_err(|_| invalid(field, format!("{:?} is not {what} (a UUID)", id.as_str())))
}

pub(super) fn room_id_arg(field: &'static str, id: &ID) -> Result<RoomId> {
    parse_id(field, "a room id", id)
}

pub(super) fn user_id_arg(field: &'static str, id: &ID) -> Result<UserId> {
    parse_id(field, "a user id", id)
}

pub(super) fn message_id_arg(field: &'static str, id: &ID) -> Result<EventId> {
    parse_id(field, "a message id", id)
}

pub(super) fn page_size(first: Option<i32>, max: usize) -> Result<Option<usize>> {
    match first {
        Some(n) if n < 1 => Err(invalid("first", format!("must be between 1 and {max}"))),
        Some(n) => Ok(Some(n as usize)),
        None => Ok(None),
    }
}
