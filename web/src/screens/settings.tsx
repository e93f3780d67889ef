// My account: display name, bio and avatar (uploaded, processed, then set), my sessions with
// revoke, and signing out.

import { useEffect, useState } from 'preact/hooks';
import { gql } from '../api';
import { ME_FIELDS, end, me, type Me } from '../session';
import { rememberPerson, useCell } from '../store';
import { Avatar, ErrorLine, ImagePicker, Loading, Time } from '../ui';

type Session = { id: string; userAgent: string; ip: string; createdAt: string; lastSeenAt: string; current: boolean };

function Sessions() {
  const [sessions, setSessions] = useState<Session[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const load = () =>
    gql<{ sessions: Session[] }>('{ sessions { id userAgent ip createdAt lastSeenAt current } }')
      .then((data) => setSessions(data.sessions))
      .catch(setError);
  useEffect(() => void load(), []);
  const revoke = async (session: Session) => {
    try {
      await gql('mutation($id: ID!) { revokeSession(id: $id) }', { id: session.id });
      if (session.current) end();
      else await load();
    } catch (failure) {
      setError(failure);
    }
  };
  return (
    <section aria-labelledby="sessions">
      <h2 id="sessions">Sessions</h2>
      <ErrorLine error={error} />
      {sessions === null ? (
        <Loading />
      ) : (
        <ul class="sessions">
          {sessions.map((session) => (
            <li key={session.id} data-session={session.id}>
              <span>
                {session.userAgent || 'Unknown client'} · {session.ip} · since <Time at={session.createdAt} />
                {session.current && <strong> (this browser)</strong>}
              </span>{' '}
              <button class="secondary" onClick={() => revoke(session)}>
                {session.current ? 'Sign out here' : 'Revoke'}
              </button>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

export function MySettings() {
  const user = useCell(me);
  const [name, setName] = useState(user?.displayName ?? '');
  const [bio, setBio] = useState(user?.bio ?? '');
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState('');
  if (!user) return <Loading />;
  const update = async (patch: Record<string, unknown>, what: string) => {
    setError(null);
    try {
      const { updateMe } = await gql<{ updateMe: Me }>(
        `mutation($d: String, $b: String, $a: String) { updateMe(displayName: $d, bio: $b, avatarMediaId: $a) { ${ME_FIELDS} } }`,
        patch,
      );
      me.set(updateMe);
      rememberPerson({ id: updateMe.id, username: updateMe.username, name: updateMe.displayName, avatarMedia: updateMe.avatarMedia });
      setSaved(what);
    } catch (failure) {
      setError(failure);
    }
  };
  // Only once girok has ended the session: otherwise the cookie would still sign this browser in.
  const signOut = async () => {
    try {
      await gql('mutation { logout }');
      end();
    } catch (failure) {
      setError(failure);
    }
  };
  return (
    <main>
      <h1>My profile</h1>
      <p>
        <a href={`/u/${user.username}`}>See my public profile</a>
      </p>
      <section class="card" aria-labelledby="avatar">
        <h2 id="avatar">Avatar</h2>
        <div class="avatar-row">
          <Avatar url={user.avatarMedia?.url} name={user.displayName} size={72} />
          <ImagePicker label="Upload a new avatar" onReady={(media) => update({ a: media.id }, 'Avatar updated')} />
        </div>
      </section>
      <form
        class="card"
        onSubmit={(event) => {
          event.preventDefault();
          void update({ d: name, b: bio }, 'Profile saved');
        }}
      >
        <p class="field">
          <label for="me-name">Display name</label>
          <input id="me-name" value={name} required maxLength={50} onInput={(event) => setName(event.currentTarget.value)} />
        </p>
        <p class="field">
          <label for="me-bio">Bio</label>
          <textarea id="me-bio" value={bio} maxLength={500} rows={3} onInput={(event) => setBio(event.currentTarget.value)} />
        </p>
        <button type="submit">Save</button>
      </form>
      <ErrorLine error={error} />
      {saved && (
        <p role="status" class="muted">
          {saved}
        </p>
      )}
      <Sessions />
      <p>
        <button onClick={signOut}>Sign out</button>
      </p>
    </main>
  );
}
