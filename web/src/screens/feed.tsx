// The home timeline (me and whom I follow, newest first, new posts arriving live), the post
// composer with images, and a post's card: likes, its first comments, more on demand, and a
// comment box. A single post has its own page (where notifications link).

import { useEffect, useState } from 'preact/hooks';
import { gql, variantUrl, type Media } from '../api';
import { live, type Frame } from '../live';
import { useCell } from '../store';
import { Avatar, ErrorLine, ImagePicker, Loading, Time, useAction } from '../ui';

type Author = { id: string; username: string; name: string; avatarMedia: { url: string | null } | null };
type Comment = { id: string; content: string; createdAt: string; author: Author };
export type Post = {
  id: string;
  seq: number;
  content: string;
  createdAt: string;
  editedAt: string | null;
  likes: number;
  likedByMe: boolean;
  commentCount: number;
  author: Author;
  media: Media[];
  comments: Comment[];
};

const AUTHOR = 'id username name avatarMedia { url(variant: "thumb") }';
export const POST_FIELDS = `id seq content createdAt editedAt likes likedByMe commentCount
  author { ${AUTHOR} }
  media { id state width height variants { name url width height } }
  comments(limit: 3) { id content createdAt author { ${AUTHOR} } }`;

function Comments({ post, onAdded }: { post: Post; onAdded: (comment: Comment) => void }) {
  const [shown, setShown] = useState<Comment[]>(post.comments);
  const [cursor, setCursor] = useState<string | null>(null);
  const [more, setMore] = useState(post.commentCount > post.comments.length);
  const [draft, setDraft] = useState('');
  const [error, setError] = useState<unknown>(null);
  useEffect(() => setShown(post.comments), [post.comments]);
  const loadMore = async () => {
    try {
      const { comments } = await gql<{ comments: { comments: Comment[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } } }>(
        `query($p: ID!, $c: String) { comments(postId: $p, first: 20, cursor: $c) { comments { id content createdAt author { ${AUTHOR} } } pageInfo { hasNextPage endCursor } } }`,
        { p: post.id, c: cursor },
      );
      setShown((current) => {
        const known = new Set(current.map((comment) => comment.id));
        return cursor === null ? comments.comments : [...current, ...comments.comments.filter((comment) => !known.has(comment.id))];
      });
      setCursor(comments.pageInfo.endCursor);
      setMore(comments.pageInfo.hasNextPage);
    } catch (failure) {
      setError(failure);
    }
  };
  const add = async (event: Event) => {
    event.preventDefault();
    try {
      const { addComment } = await gql<{ addComment: Comment }>(
        `mutation($p: ID!, $t: String!) { addComment(postId: $p, content: $t) { id content createdAt author { ${AUTHOR} } } }`,
        { p: post.id, t: draft },
      );
      setDraft('');
      setError(null);
      setShown((current) => [...current, addComment]);
      onAdded(addComment);
    } catch (failure) {
      setError(failure);
    }
  };
  const field = `comment-${post.id}`;
  return (
    <section class="comments" aria-label="Comments">
      <ul>
        {shown.map((comment) => (
          <li key={comment.id} class="comment">
            <a href={`/u/${comment.author.username}`}>{comment.author.name}</a>: {comment.content} <Time at={comment.createdAt} />
          </li>
        ))}
      </ul>
      {more && (
        <button class="link" onClick={loadMore}>
          More comments
        </button>
      )}
      <form onSubmit={add} class="inline">
        <label for={field} class="visually-hidden">
          Write a comment
        </label>
        <input id={field} value={draft} maxLength={1000} required placeholder="Write a comment" onInput={(event) => setDraft(event.currentTarget.value)} />
        <button type="submit">Comment</button>
      </form>
      <ErrorLine error={error} />
    </section>
  );
}

export function PostCard({ post: initial }: { post: Post }) {
  const [post, setPost] = useState(initial);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => setPost(initial), [initial]);
  const toggleLike = async () => {
    const mutation = post.likedByMe ? 'unlikePost' : 'likePost';
    try {
      const data = await gql<Record<string, { likes: number; likedByMe: boolean }>>(`mutation($id: ID!) { ${mutation}(id: $id) { likes likedByMe } }`, { id: post.id });
      setPost((current) => ({ ...current, ...data[mutation] }));
    } catch (failure) {
      setError(failure);
    }
  };
  return (
    <article class="post card" data-post={post.id} aria-labelledby={`post-${post.id}`}>
      <header>
        <Avatar url={post.author.avatarMedia?.url} name={post.author.name} />
        <a id={`post-${post.id}`} href={`/u/${post.author.username}`}>
          {post.author.name}
        </a>{' '}
        <a href={`/posts/${post.id}`} class="muted">
          <Time at={post.createdAt} />
        </a>
        {post.editedAt && <span class="muted"> (edited)</span>}
      </header>
      <p class="content">{post.content}</p>
      {post.media.length > 0 && (
        <div class="post-media">
          {post.media.map((item) => (
            <a key={item.id} href={variantUrl(item, 'full')} target="_blank" rel="noopener">
              <img src={variantUrl(item, 'large')} alt="Image in the post" width={item.width ?? undefined} height={item.height ?? undefined} loading="lazy" />
            </a>
          ))}
        </div>
      )}
      <p class="post-actions">
        <button class={post.likedByMe ? 'like liked' : 'like'} aria-pressed={post.likedByMe} onClick={toggleLike}>
          {post.likedByMe ? 'Liked' : 'Like'} <span class="count">{post.likes}</span>
        </button>
        <span class="muted">
          {post.commentCount} {post.commentCount === 1 ? 'comment' : 'comments'}
        </span>
      </p>
      <ErrorLine error={error} />
      <Comments post={post} onAdded={() => setPost((current) => ({ ...current, commentCount: current.commentCount + 1 }))} />
    </article>
  );
}

function Composer({ onPosted }: { onPosted: (post: Post) => void }) {
  const [content, setContent] = useState('');
  const [media, setMedia] = useState<Media[]>([]);
  const { run: submit, busy, error } = useAction(async () => {
    const { createPost } = await gql<{ createPost: Post }>(`mutation($t: String!, $m: [String!]) { createPost(content: $t, mediaIds: $m) { ${POST_FIELDS} } }`, {
      t: content,
      m: media.map((item) => item.id),
    });
    setContent('');
    setMedia([]);
    onPosted(createPost);
  });
  return (
    <form class="card composer" onSubmit={submit}>
      <label for="post-content">New post</label>
      <textarea id="post-content" rows={3} maxLength={5000} required value={content} placeholder="What's new?" onInput={(event) => setContent(event.currentTarget.value)} />
      {media.length > 0 && (
        <div class="post-media">
          {media.map((item) => (
            <img key={item.id} src={variantUrl(item, 'small')} alt="Image to post" />
          ))}
        </div>
      )}
      <ImagePicker label="Add image" disabled={media.length >= 4} onReady={(item) => setMedia((current) => [...current, item].slice(0, 4))} />
      <ErrorLine error={error} />
      <button type="submit" disabled={busy}>
        Post
      </button>
    </form>
  );
}

type Page = { posts: Post[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } };

/** A timeline (home, or one person's) with its pages; new posts are added by `prepend`. */
export function usePosts(load: (cursor: string | null) => Promise<Page>, key: string) {
  const [posts, setPosts] = useState<Post[] | null>(null);
  const [cursor, setCursor] = useState<string | null>(null);
  const [more, setMore] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const reload = async () => {
    try {
      const page = await load(null);
      setPosts(page.posts);
      setCursor(page.pageInfo.endCursor);
      setMore(page.pageInfo.hasNextPage);
    } catch (failure) {
      setError(failure);
    }
  };
  useEffect(() => {
    void reload();
  }, [key]);
  const loadMore = async () => {
    try {
      const page = await load(cursor);
      setPosts((current) => [...(current ?? []), ...page.posts]);
      setCursor(page.pageInfo.endCursor);
      setMore(page.pageInfo.hasNextPage);
    } catch (failure) {
      setError(failure);
    }
  };
  const prepend = (post: Post) => setPosts((current) => (current?.some((other) => other.id === post.id) ? current : [post, ...(current ?? [])]));
  return { posts, more, error, loadMore, prepend, reload };
}

export function PostList({ posts, more, loadMore }: { posts: Post[] | null; more: boolean; loadMore: () => void }) {
  if (posts === null) return <Loading />;
  return (
    <>
      {posts.length === 0 && <p class="muted">No posts yet.</p>}
      <div class="posts" aria-label="Posts">
        {posts.map((post) => (
          <PostCard key={post.id} post={post} />
        ))}
      </div>
      {more && (
        <button class="secondary" onClick={loadMore}>
          Older posts
        </button>
      )}
    </>
  );
}

export function Feed() {
  const reconnects = useCell(live.reconnects);
  const timeline = usePosts(
    (cursor) => gql<{ timeline: Page }>(`query($c: String) { timeline(limit: 20, cursor: $c) { posts { ${POST_FIELDS} } pageInfo { hasNextPage endCursor } } }`, { c: cursor }).then((data) => data.timeline),
    `home-${reconnects}`,
  );
  useEffect(
    () =>
      live.watch('feed', (frame: Frame) => {
        if (frame.type !== 'post') return;
        const pushed = frame.post as { id: string };
        gql<{ post: Post }>(`query($id: ID!) { post(id: $id) { ${POST_FIELDS} } }`, { id: pushed.id })
          .then((data) => timeline.prepend(data.post))
          .catch(() => {});
      }),
    [],
  );
  return (
    <main>
      <h1>Feed</h1>
      <Composer onPosted={timeline.prepend} />
      <ErrorLine error={timeline.error} />
      <PostList posts={timeline.posts} more={timeline.more} loadMore={timeline.loadMore} />
    </main>
  );
}

export function PostScreen({ id }: { id: string }) {
  const [post, setPost] = useState<Post | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    gql<{ post: Post }>(`query($id: ID!) { post(id: $id) { ${POST_FIELDS} } }`, { id })
      .then((data) => setPost(data.post))
      .catch(setError);
  }, [id]);
  return (
    <main>
      <h1>Post</h1>
      <ErrorLine error={error} />
      {post ? <PostCard post={post} /> : !error && <Loading />}
    </main>
  );
}
