//! A timeline page turned into its GraphQL answer in one synchronous pass.
//!
//! async-graphql resolves every field of every object through its own boxed future, context
//! and path node, and every list item through another: for seed 001's timeline query (20
//! posts, their authors, three comments each with their authors) that is about 400 futures
//! per request, most of the server's CPU per query. Once a page is prefetched
//! ([`super::feed_types::prefetch_page`]) nothing its plain fields need is asynchronous, so a
//! [`Page`] walks the query's selection set over the posts, their authors and comments
//! directly. It answers in two forms from one mapping of fields to values ([`Page::answer`]):
//! the `Value` the derived resolvers would build ([`Posts`], inside async-graphql's execution),
//! or, for a whole request that `super::direct` answers without the executor, the JSON text
//! itself ([`ObjectJson`]), with no `Value` tree built, serialized and dropped.
//!
//! Anything outside that plain shape — a field that reads the engine (`followersCount`), a
//! directive, a fragment on another type, an out-of-range argument, a value that was not
//! prefetched — makes the whole list go through the derived resolvers instead (the JSON form
//! also gives up on a response key selected twice, which async-graphql merges), so answers
//! and errors never differ (tests compare the paths field by field and byte for byte). The
//! derived resolvers would also run each field through the schema's extensions; the schema
//! has none (`schema.rs`), and must keep it so while this path exists.

use super::feed_types::{
    Author, Comment, DEFAULT_INLINE_COMMENTS, FeedPageInfo, Post, Timeline, inline_comment_limit,
};
use super::loaders::{Loaders, PageSelection, ReadyObjects};
use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{
    ExecutableDocument, Field, FragmentDefinition, Selection, SelectionSet,
};
use async_graphql::registry::Registry;
use async_graphql::{
    ContextSelectionSet, InputType, Name, OutputType, Positioned, ServerResult, Value,
};
use girok_engine::accounts::UserView;
use girok_engine::feed;
use girok_schemas::rfc3339_millis;
use serde::Serialize;
use serde::ser::{Error as _, SerializeMap, SerializeSeq, Serializer};
use serde_json::Number;
use std::borrow::Cow;
use std::cell::Cell;

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
            let page = Page::new(Query::Executing(ctx), ready);
            self.0
                .iter()
                .map(|post| page.object_value(&ctx.item.node, Object::Post(&post.0)))
                .collect::<Option<Vec<_>>>()
        });
        loaders.count_page(if direct.is_some() {
            PagePath::Direct
        } else {
            PagePath::Fields
        });
        match direct {
            Some(posts) => Ok(Value::List(posts)),
            None => OutputType::resolve(&self.0, ctx, field).await,
        }
    }
}

/// How a page of posts was answered (`girok_graphql_post_pages_total{path}`).
#[derive(Clone, Copy, Debug)]
pub enum PagePath {
    /// In one pass, as a `Value` inside async-graphql's execution.
    Direct,
    /// Field by field by the derived resolvers.
    Fields,
    /// In one pass, as JSON text, for a whole request answered without the executor.
    Answer,
}

impl PagePath {
    pub fn label(self) -> &'static str {
        match self {
            PagePath::Direct => "direct",
            PagePath::Fields => "fields",
            PagePath::Answer => "answer",
        }
    }
}

/// Where the query being answered keeps its fragments and argument values.
#[derive(Clone, Copy)]
pub enum Query<'q> {
    /// Inside async-graphql's execution: variables (and their defaults) through the context.
    Executing(&'q ContextSelectionSet<'q>),
    /// A document whose operation declares no variables (`super::direct`).
    Constant(&'q ExecutableDocument),
}

impl<'q> Query<'q> {
    fn fragment(self, name: &Name) -> Option<&'q Positioned<FragmentDefinition>> {
        match self {
            Query::Executing(ctx) => ctx.query_env.fragments.get(name),
            Query::Constant(document) => document.fragments.get(name),
        }
    }

    /// `comments`' `limit` as asked (its default when absent); `None` when it is not an `Int`
    /// (which validation refuses before anything here runs).
    fn comment_limit(self, field: &'q Positioned<Field>) -> Option<i32> {
        let default = || DEFAULT_INLINE_COMMENTS as i32;
        match self {
            Query::Executing(ctx) => ctx
                .with_field(field)
                .param_value::<i32>("limit", Some(default))
                .ok()
                .map(|(_, limit)| limit),
            Query::Constant(_) => match field.node.get_argument("limit") {
                None => Some(default()),
                Some(_) => literal(&field.node, "limit"),
            },
        }
    }

    /// Calls `visit` with each field selected on an object of type `type_name`, in selection
    /// order, fragments on this type flattened in place; `None` (and no more calls) when a
    /// directive, a fragment on another type or `visit` says to give up.
    fn walk(
        self,
        selection: &'q SelectionSet,
        type_name: &str,
        visit: &mut dyn FnMut(&'q Positioned<Field>) -> Option<()>,
    ) -> Option<()> {
        for item in &selection.items {
            // Directives (`@skip`, `@include` or custom) are left to async-graphql.
            if !item.node.directives().is_empty() {
                return None;
            }
            let (condition, inner) = match &item.node {
                Selection::Field(field) => {
                    visit(field)?;
                    continue;
                }
                Selection::FragmentSpread(spread) => {
                    let fragment = self.fragment(&spread.node.fragment_name.node)?;
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
            if condition.is_some_and(|on| on.as_str() != type_name) {
                return None;
            }
            self.walk(inner, type_name, visit)?;
        }
        Some(())
    }

    /// What a timeline's selection asks of its posts, for the prefetch: their authors, the
    /// `limit`s of their `comments` and those comments' authors. `None` where the walk gives
    /// up (the fields then load what they need themselves). An out-of-range `limit` is left
    /// out: its field answers the typed error.
    pub fn wanted(self, timeline: &'q SelectionSet) -> Option<PageSelection> {
        let mut wanted = PageSelection::default();
        self.walk(timeline, &Timeline::type_name(), &mut |field| {
            if field.node.name.node != "posts" {
                return Some(());
            }
            self.walk(
                &field.node.selection_set.node,
                &Post::type_name(),
                &mut |field| {
                    match field.node.name.node.as_str() {
                        "author" => wanted.post_authors = true,
                        "comments" => {
                            let limit = self
                                .comment_limit(field)
                                .and_then(|limit| inline_comment_limit(limit).ok());
                            if let Some(limit) = limit
                                && !wanted.comment_limits.contains(&limit)
                            {
                                wanted.comment_limits.push(limit);
                            }
                            self.walk(
                                &field.node.selection_set.node,
                                &Comment::type_name(),
                                &mut |field| {
                                    if field.node.name.node == "author" {
                                        wanted.comment_authors = true;
                                    }
                                    Some(())
                                },
                            )?;
                        }
                        _ => {}
                    }
                    Some(())
                },
            )
        })?;
        Some(wanted)
    }
}

/// A field's literal argument coerced as a resolver's parameter of type `T` is (absent: `T`'s
/// absence); `None` for a variable or a value `T` refuses.
pub fn literal<T: InputType>(field: &Field, name: &str) -> Option<T> {
    let value: Option<Value> = match field.get_argument(name) {
        Some(value) => Some(value.node.clone().into_const()?),
        None => None,
    };
    T::parse(value).ok()
}

/// An object a page's answer holds.
#[derive(Clone, Copy)]
pub enum Object<'d> {
    Timeline(&'d feed::PostPage),
    /// A page's `pageInfo`: the next page's start, if any.
    PageInfo(Option<u64>),
    Post(&'d feed::Post),
    Comment(&'d feed::Comment),
    Author(&'d UserView),
}

impl Object<'_> {
    fn type_name(&self) -> Cow<'static, str> {
        match self {
            Object::Timeline(_) => Timeline::type_name(),
            Object::PageInfo(_) => FeedPageInfo::type_name(),
            Object::Post(_) => Post::type_name(),
            Object::Comment(_) => Comment::type_name(),
            Object::Author(_) => Author::type_name(),
        }
    }
}

/// Several objects of one type.
#[derive(Clone, Copy)]
enum Objects<'d> {
    Posts(&'d [feed::Post]),
    Comments(&'d [feed::Comment]),
}

impl<'d> Objects<'d> {
    fn iter(self) -> impl Iterator<Item = Object<'d>> {
        let (posts, comments): (&[feed::Post], &[feed::Comment]) = match self {
            Objects::Posts(posts) => (posts, &[]),
            Objects::Comments(comments) => (&[], comments),
        };
        posts
            .iter()
            .map(Object::Post)
            .chain(comments.iter().map(Object::Comment))
    }

    fn len(self) -> usize {
        match self {
            Objects::Posts(posts) => posts.len(),
            Objects::Comments(comments) => comments.len(),
        }
    }
}

/// What one selected field answers: a value, or objects whose selection is walked in turn.
enum Answer<'d, 'q> {
    Text(&'d str),
    OwnedText(String),
    Number(Number),
    Bool(bool),
    Null,
    Texts(&'d [String]),
    Object(&'q SelectionSet, Object<'d>),
    Objects(&'q SelectionSet, Objects<'d>),
}

/// What answering a page needs: the query (variables, fragments) and the prefetched objects.
pub struct Page<'q, 'd> {
    query: Query<'q>,
    ready: &'d ReadyObjects<'d>,
    /// A value was not among the prefetched objects (the page's data, not its query's shape,
    /// made the walk give up).
    missed_data: Cell<bool>,
}

impl<'q, 'd> Page<'q, 'd> {
    pub fn new(query: Query<'q>, ready: &'d ReadyObjects<'d>) -> Self {
        Self {
            query,
            ready,
            missed_data: Cell::new(false),
        }
    }

    /// Whether a walk that gave up did so for want of a prefetched value; if not, the query's
    /// shape is outside what the walk answers, whatever the data.
    pub fn missed_data(&self) -> bool {
        self.missed_data.get()
    }

    fn prefetched<T>(&self, value: Option<T>) -> Option<T> {
        if value.is_none() {
            self.missed_data.set(true);
        }
        value
    }

    /// The one mapping of a selected field to its answer, as the derived resolvers answer
    /// it; `None` for anything they must answer themselves.
    fn answer(&self, object: Object<'d>, field: &'q Positioned<Field>) -> Option<Answer<'d, 'q>> {
        let selection = &field.node.selection_set.node;
        let name = field.node.name.node.as_str();
        if name == "__typename" {
            return Some(Answer::OwnedText(object.type_name().into_owned()));
        }
        Some(match object {
            Object::Timeline(page) => match name {
                "posts" => Answer::Objects(selection, Objects::Posts(&page.posts)),
                "pageInfo" => Answer::Object(selection, Object::PageInfo(page.next_cursor)),
                _ => return None,
            },
            Object::PageInfo(next) => {
                let info = FeedPageInfo::new(next);
                match name {
                    "hasNextPage" => Answer::Bool(info.has_next_page),
                    "endCursor" => info.end_cursor.map_or(Answer::Null, Answer::OwnedText),
                    _ => return None,
                }
            }
            Object::Post(post) => match name {
                "id" => Answer::OwnedText(post.id.to_string()),
                "seq" => Answer::Number(post.seq.into()),
                "content" => Answer::Text(&post.content),
                "mediaIds" => Answer::Texts(&post.media_ids),
                "author" => Answer::Object(
                    selection,
                    Object::Author(self.prefetched(self.ready.user(post.author))?),
                ),
                "createdAt" => Answer::OwnedText(rfc3339_millis(post.created_ms)),
                "editedAt" => post
                    .edited_ms
                    .map_or(Answer::Null, |ms| Answer::OwnedText(rfc3339_millis(ms))),
                "likes" => Answer::Number((post.like_count as i32).into()),
                "likedByMe" => Answer::Bool(post.liked_by_me),
                "commentCount" => Answer::Number((post.comment_count as i32).into()),
                "comments" => self.comments(field, post)?,
                _ => return None,
            },
            Object::Comment(comment) => match name {
                "id" => Answer::OwnedText(comment.id.to_string()),
                "seq" => Answer::Number(comment.seq.into()),
                "postId" => Answer::OwnedText(comment.post.to_string()),
                "content" => Answer::Text(&comment.content),
                "author" => Answer::Object(
                    selection,
                    Object::Author(self.prefetched(self.ready.user(comment.author))?),
                ),
                "createdAt" => Answer::OwnedText(rfc3339_millis(comment.created_ms)),
                _ => return None,
            },
            // An author's plain fields (their follow counts read the engine: not here).
            Object::Author(user) => match name {
                "id" => Answer::OwnedText(user.id.to_string()),
                "username" => Answer::Text(&user.username),
                "name" => Answer::Text(&user.display_name),
                "avatar" => user
                    .avatar_media_id
                    .as_deref()
                    .map_or(Answer::Null, Answer::Text),
                _ => return None,
            },
        })
    }

    /// `comments(limit)`, as `Post::comments` answers it from the prefetched first comments.
    fn comments(
        &self,
        field: &'q Positioned<Field>,
        post: &'d feed::Post,
    ) -> Option<Answer<'d, 'q>> {
        // Out of range: the derived resolver gives the typed error.
        let limit = inline_comment_limit(self.query.comment_limit(field)?).ok()?;
        let comments = if limit == 0 || post.comment_count == 0 {
            &[]
        } else {
            self.prefetched(self.ready.first_comments(post.seq, limit))?
        };
        Some(Answer::Objects(
            &field.node.selection_set.node,
            Objects::Comments(comments),
        ))
    }

    /// An answer as a `Value`.
    fn value(&self, answer: Answer<'d, 'q>) -> Option<Value> {
        Some(match answer {
            Answer::Text(text) => Value::String(text.to_owned()),
            Answer::OwnedText(text) => Value::String(text),
            Answer::Number(n) => Value::Number(n),
            Answer::Bool(b) => Value::Boolean(b),
            Answer::Null => Value::Null,
            Answer::Texts(texts) => {
                Value::List(texts.iter().map(|t| Value::String(t.clone())).collect())
            }
            Answer::Object(selection, object) => self.object_value(selection, object)?,
            Answer::Objects(selection, objects) => Value::List(
                objects
                    .iter()
                    .map(|object| self.object_value(selection, object))
                    .collect::<Option<_>>()?,
            ),
        })
    }

    /// An object as a `Value`: each selected field's value by its response key, in selection
    /// order, fragments on its type flattened in place, keys selected twice merged.
    fn object_value(&self, selection: &'q SelectionSet, object: Object<'d>) -> Option<Value> {
        let type_name = object.type_name();
        let mut fields = IndexMap::with_capacity(selection.items.len());
        self.query.walk(selection, &type_name, &mut |field| {
            let value = self.value(self.answer(object, field)?)?;
            merge(&mut fields, field.node.response_key().node.clone(), value);
            Some(())
        })?;
        // As async-graphql answers an empty selection.
        Some(if fields.is_empty() {
            Value::Null
        } else {
            Value::Object(fields)
        })
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

/// Why the JSON form gave up (never sent: the request then goes through the executor).
const OUTSIDE_THE_PLAIN_SHAPE: &str = "outside the one-pass shape";

/// An object of a page as JSON text, written as its selection is walked: the same keys, order
/// and values as its `Value` serialized. Serializing fails (with nothing to show a client)
/// where [`Page::object_value`] would give `None`, and on a response key selected twice.
pub struct ObjectJson<'p, 'q, 'd> {
    pub page: &'p Page<'q, 'd>,
    pub selection: &'q SelectionSet,
    pub object: Object<'d>,
}

impl Serialize for ObjectJson<'_, '_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let page = self.page;
        let type_name = self.object.type_name();
        let mut map = serializer.serialize_map(None)?;
        let mut keys: Vec<&Name> = Vec::with_capacity(self.selection.items.len());
        let mut failed = None;
        let walked = page.query.walk(self.selection, &type_name, &mut |field| {
            let key = &field.node.response_key().node;
            // async-graphql merges a key selected twice; a stream cannot.
            if keys.contains(&key) {
                return None;
            }
            keys.push(key);
            let answer = page.answer(self.object, field)?;
            map.serialize_entry(key.as_str(), &AnswerJson { page, answer })
                .map_err(|error| failed = Some(error))
                .ok()
        });
        if let Some(error) = failed {
            return Err(error);
        }
        // An empty selection (`null` in async-graphql's answer) cannot reach here: every
        // selection holds a field once directives are refused.
        if walked.is_none() || keys.is_empty() {
            return Err(S::Error::custom(OUTSIDE_THE_PLAIN_SHAPE));
        }
        map.end()
    }
}

/// One field's answer as JSON text.
struct AnswerJson<'p, 'q, 'd> {
    page: &'p Page<'q, 'd>,
    answer: Answer<'d, 'q>,
}

impl Serialize for AnswerJson<'_, '_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let page = self.page;
        match &self.answer {
            Answer::Text(text) => serializer.serialize_str(text),
            Answer::OwnedText(text) => serializer.serialize_str(text),
            Answer::Number(n) => n.serialize(serializer),
            Answer::Bool(b) => serializer.serialize_bool(*b),
            Answer::Null => serializer.serialize_unit(),
            Answer::Texts(texts) => texts.serialize(serializer),
            Answer::Object(selection, object) => ObjectJson {
                page,
                selection,
                object: *object,
            }
            .serialize(serializer),
            Answer::Objects(selection, objects) => {
                let mut list = serializer.serialize_seq(Some(objects.len()))?;
                for object in objects.iter() {
                    list.serialize_element(&ObjectJson {
                        page,
                        selection,
                        object,
                    })?;
                }
                list.end()
            }
        }
    }
}
