//! A timeline page's posts turned into their GraphQL answer in one synchronous pass.
//!
//! async-graphql resolves every field of every object through its own boxed future, context
//! and path node, and every list item through another: for seed 001's timeline query (20
//! posts, their authors, three comments each with their authors) that is about 400 futures
//! per request, most of the server's CPU per query. Once a page is prefetched
//! ([`super::feed_types::prefetch_page`]) nothing its plain fields need is asynchronous, so
//! [`Posts`] walks the query's selection set over the posts, their authors and comments
//! directly and builds the same `Value` the derived resolvers would. Anything outside that
//! plain shape — a field that reads the engine (`followersCount`), a custom directive, a
//! fragment on another type, an out-of-range argument, a value that was not prefetched —
//! makes the whole list go through the derived resolvers
//! instead, so answers and errors never differ (a test compares the two paths field by field).
//! The derived resolvers would also run each field through the schema's extensions; the
//! schema has none (`schema.rs`), and must keep it so while this path exists.

use super::feed_types::{Author, Comment, DEFAULT_INLINE_COMMENTS, Post, inline_comment_limit};
use super::loaders::{Loaders, ReadyObjects};
use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{Field, Selection, SelectionSet};
use async_graphql::registry::Registry;
use async_graphql::{ContextSelectionSet, Name, OutputType, Positioned, ServerResult, Value};
use girok_engine::feed;
use girok_schemas::{UserId, rfc3339_millis};
use std::borrow::Cow;

/// The posts of a timeline page: the GraphQL type `[Post!]!`.
pub struct Posts(pub Vec<Post>);

impl OutputType for Posts {
    fn type_name() -> Cow<'static, str> {
        <Vec<Post> as OutputType>::type_name()
    }

    fn qualified_type_name() -> String {
        <Vec<Post> as OutputType>::qualified_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        <Vec<Post> as OutputType>::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        let Some(loaders) = ctx.data_opt::<Loaders>() else {
            // No prefetch without loaders (subscriptions): field by field.
            return OutputType::resolve(&self.0, ctx, field).await;
        };
        let direct = loaders.with_ready(|ready| {
            let page = Page { ctx, ready };
            self.0
                .iter()
                .map(|post| page.post(&ctx.item.node, &post.0))
                .collect::<Option<Vec<_>>>()
        });
        loaders.count_page(direct.is_some());
        match direct {
            Some(posts) => Ok(Value::List(posts)),
            None => OutputType::resolve(&self.0, ctx, field).await,
        }
    }
}

/// What resolving a page needs: the query (variables, fragments) and the prefetched objects.
struct Page<'q, 'r> {
    ctx: &'q ContextSelectionSet<'q>,
    ready: &'r ReadyObjects<'r>,
}

impl<'q> Page<'q, '_> {
    fn post(&self, selection: &'q SelectionSet, post: &feed::Post) -> Option<Value> {
        self.object(selection, &Post::type_name(), &mut |field| {
            Some(match field.node.name.node.as_str() {
                "id" => Value::String(post.id.to_string()),
                "seq" => Value::Number(post.seq.into()),
                "content" => Value::String(post.content.clone()),
                "mediaIds" => Value::List(
                    post.media_ids
                        .iter()
                        .map(|m| Value::String(m.clone()))
                        .collect(),
                ),
                "author" => self.author(field, post.author)?,
                "createdAt" => Value::String(rfc3339_millis(post.created_ms)),
                "editedAt" => post
                    .edited_ms
                    .map_or(Value::Null, |ms| Value::String(rfc3339_millis(ms))),
                "likes" => Value::Number((post.like_count as i32).into()),
                "likedByMe" => Value::Boolean(post.liked_by_me),
                "commentCount" => Value::Number((post.comment_count as i32).into()),
                "comments" => self.comments(field, post)?,
                _ => return None,
            })
        })
    }

    /// `comments(limit)`, as `Post::comments` answers it from the prefetched first comments.
    fn comments(&self, field: &'q Positioned<Field>, post: &feed::Post) -> Option<Value> {
        let limit = self
            .ctx
            .with_field(field)
            .param_value::<i32>("limit", Some(|| DEFAULT_INLINE_COMMENTS as i32))
            .ok()?
            .1;
        // Out of range: the derived resolver gives the typed error.
        let limit = inline_comment_limit(limit).ok()?;
        if limit == 0 || post.comment_count == 0 {
            return Some(Value::List(Vec::new()));
        }
        let comments = self.ready.first_comments(post.seq, limit)?;
        comments
            .iter()
            .map(|comment| self.comment(&field.node.selection_set.node, comment))
            .collect::<Option<Vec<_>>>()
            .map(Value::List)
    }

    fn comment(&self, selection: &'q SelectionSet, comment: &feed::Comment) -> Option<Value> {
        self.object(selection, &Comment::type_name(), &mut |field| {
            Some(match field.node.name.node.as_str() {
                "id" => Value::String(comment.id.to_string()),
                "seq" => Value::Number(comment.seq.into()),
                "postId" => Value::String(comment.post.to_string()),
                "content" => Value::String(comment.content.clone()),
                "author" => self.author(field, comment.author)?,
                "createdAt" => Value::String(rfc3339_millis(comment.created_ms)),
                _ => return None,
            })
        })
    }

    /// An author's plain fields (their follow counts read the engine: not here).
    fn author(&self, field: &'q Positioned<Field>, id: UserId) -> Option<Value> {
        let user = self.ready.user(id)?;
        self.object(
            &field.node.selection_set.node,
            &Author::type_name(),
            &mut |field| {
                Some(match field.node.name.node.as_str() {
                    "id" => Value::String(user.id.to_string()),
                    "username" => Value::String(user.username.clone()),
                    "name" => Value::String(user.display_name.clone()),
                    "avatar" => user
                        .avatar_media_id
                        .as_ref()
                        .map_or(Value::Null, |a| Value::String(a.clone())),
                    _ => return None,
                })
            },
        )
    }

    /// An object of type `type_name`: each selected field's value by its response key, in
    /// selection order, fragments on this type flattened in place.
    fn object(
        &self,
        selection: &'q SelectionSet,
        type_name: &str,
        value_of: &mut dyn FnMut(&'q Positioned<Field>) -> Option<Value>,
    ) -> Option<Value> {
        let mut fields = IndexMap::with_capacity(selection.items.len());
        self.collect(selection, type_name, value_of, &mut fields)?;
        // As async-graphql answers an empty selection.
        Some(if fields.is_empty() {
            Value::Null
        } else {
            Value::Object(fields)
        })
    }

    fn collect(
        &self,
        selection: &'q SelectionSet,
        type_name: &str,
        value_of: &mut dyn FnMut(&'q Positioned<Field>) -> Option<Value>,
        fields: &mut IndexMap<Name, Value>,
    ) -> Option<()> {
        for item in &selection.items {
            // `@skip` and `@include` are gone by now; any other directive is custom.
            if !item.node.directives().is_empty() {
                return None;
            }
            let inner = match &item.node {
                Selection::Field(field) => {
                    let value = if field.node.name.node == "__typename" {
                        Value::String(type_name.to_owned())
                    } else {
                        value_of(field)?
                    };
                    merge(fields, field.node.response_key().node.clone(), value);
                    continue;
                }
                Selection::FragmentSpread(spread) => {
                    let fragment = self
                        .ctx
                        .query_env
                        .fragments
                        .get(&spread.node.fragment_name.node)?;
                    (
                        Some(&fragment.node.type_condition.node.on.node),
                        &fragment.node.selection_set.node,
                    )
                }
                Selection::InlineFragment(fragment) => (
                    fragment
                        .node
                        .type_condition
                        .as_ref()
                        .map(|condition| &condition.node.on.node),
                    &fragment.node.selection_set.node,
                ),
            };
            let (condition, selection) = inner;
            if condition.is_some_and(|on| on.as_str() != type_name) {
                return None;
            }
            self.collect(selection, type_name, value_of, fields)?;
        }
        Some(())
    }
}

/// Adds a field's value under its response key as async-graphql does when a key is selected
/// more than once (`id ... on Post { id }`, `author { id } author { name }`): the first
/// position stays, objects merge key by key, lists of objects item by item.
fn merge(fields: &mut IndexMap<Name, Value>, key: Name, value: Value) {
    let Some(existing) = fields.get_mut(&key) else {
        fields.insert(key, value);
        return;
    };
    match (existing, value) {
        (Value::Object(into), Value::Object(from)) => {
            for (key, value) in from {
                merge(into, key, value);
            }
        }
        (Value::List(into), Value::List(from)) => {
            for (into, from) in into.iter_mut().zip(from) {
                if let (Value::Object(into), Value::Object(from)) = (into, from) {
                    for (key, value) in from {
                        merge(into, key, value);
                    }
                }
            }
        }
        _ => {}
    }
}
