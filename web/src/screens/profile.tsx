// A person's profile: name, bio, avatar, follower counts, follow/unfollow, a direct message
// button, and their posts.

import { useEffect, useState } from 'preact/hooks';
import { gql } from '../api';
import { navigate } from '../router';
import { loadRooms, me } from '../session';
import { useCell } from '../store';
import { Avatar, ErrorLine, Loading } from '../ui';
import { POST_FIELDS, PostList, usePosts, type Post } from './feed';

type Person = {
  id: string;
  username: string;
  name: string;
  avatarMedia: { url: string | null } | null;
  followersCount: number;
  followingCount: number;
  followedByMe: boolean;
};

export function Profile({ username }: { username: string }) {
  const user = useCell(me);
  const [person, setPerson] = useState<Person | null>(null);
  const [bio, setBio] = useState('');
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    gql<{ user: { id: string; bio: string } }>('query($u: String!) { user(username: $u) { id bio } }', { u: username })
      .then(async ({ user: found }) => {
        setBio(found.bio);
        const { users } = await gql<{ users: Person[] }>(
          'query($ids: [ID!]!) { users(ids: $ids) { id username name avatarMedia { url(variant: "small") } followersCount followingCount followedByMe } }',
          { ids: [found.id] },
        );
        setPerson(users[0] ?? null);
      })
      .catch(setError);
  }, [username]);
  const posts = usePosts(
    (cursor) =>
      person
        ? gql<{ userTimeline: { posts: Post[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } } }>(
            `query($u: ID!, $c: String) { userTimeline(userId: $u, limit: 20, cursor: $c) { posts { ${POST_FIELDS} } pageInfo { hasNextPage endCursor } } }`,
            { u: person.id, c: cursor },
          ).then((data) => data.userTimeline)
        : Promise.resolve({ posts: [], pageInfo: { hasNextPage: false, endCursor: null } }),
    person?.id ?? '',
  );
  const toggleFollow = async () => {
    if (!person) return;
    const mutation = person.followedByMe ? 'unfollow' : 'follow';
    try {
      const data = await gql<Record<string, { following: boolean; user: { followersCount: number } }>>(
        `mutation($u: ID!) { ${mutation}(userId: $u) { following user { followersCount } } }`,
        { u: person.id },
      );
      setPerson({ ...person, followedByMe: data[mutation].following, followersCount: data[mutation].user.followersCount });
    } catch (failure) {
      setError(failure);
    }
  };
  const message = async () => {
    if (!person) return;
    try {
      const { openDirectRoom } = await gql<{ openDirectRoom: { id: string } }>('mutation($u: ID!) { openDirectRoom(userId: $u) { id } }', { u: person.id });
      await loadRooms();
      navigate(`/rooms/${openDirectRoom.id}`);
    } catch (failure) {
      setError(failure);
    }
  };
  if (error && !person) return <main><ErrorLine error={error} /></main>;
  if (!person) return <Loading />;
  const mine = person.id === user?.id;
  return (
    <main>
      <header class="profile">
        <Avatar url={person.avatarMedia?.url} name={person.name} size={72} />
        <div>
          <h1>{person.name}</h1>
          <p class="muted">@{person.username}</p>
          {bio && <p>{bio}</p>}
          <p>
            <span class="followers">{person.followersCount} followers</span> · {person.followingCount} following
          </p>
          {!mine && (
            <p>
              <button onClick={toggleFollow} aria-pressed={person.followedByMe}>
                {person.followedByMe ? 'Unfollow' : 'Follow'}
              </button>{' '}
              <button class="secondary" onClick={message}>
                Message
              </button>
            </p>
          )}
        </div>
      </header>
      <ErrorLine error={error} />
      <h2>Posts</h2>
      <ErrorLine error={posts.error} />
      <PostList posts={posts.posts} more={posts.more} loadMore={posts.loadMore} />
    </main>
  );
}
