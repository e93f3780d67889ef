// My notifications, newest first, live: new ones appear at the top and raise the badge;
// opening this screen marks them read.

import { useEffect, useState } from 'preact/hooks';
import { gql } from '../api';
import { notificationArrived, unreadNotifications } from '../session';
import { useCell } from '../store';
import { live } from '../live';
import { ErrorLine, Loading, PersonLink, Time } from '../ui';

type Note = { seq: number; kind: string; actorId: string | null; postId: string | null; roomId: string | null; createdAt: string; read: boolean };

const WHAT: Record<string, string> = {
  LIKE: 'liked your post',
  COMMENT: 'commented on your post',
  FOLLOW: 'followed you',
  MENTION: 'mentioned you',
  MATCH: 'was matched with you',
};

export function Notifications() {
  const [notes, setNotes] = useState<Note[] | null>(null);
  const [cursor, setCursor] = useState<string | null>(null);
  const [more, setMore] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const arrived = useCell(notificationArrived);
  const reconnects = useCell(live.reconnects);

  const load = async (from: string | null) => {
    const { notifications } = await gql<{
      notifications: { notifications: (Omit<Note, 'actorId'> & { actor: { id: string } | null })[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } };
    }>(
      'query($c: String) { notifications(first: 20, cursor: $c) { notifications { seq kind actor { id } postId roomId createdAt read } pageInfo { hasNextPage endCursor } } }',
      { c: from },
    );
    const page = notifications.notifications.map(({ actor, ...note }) => ({ ...note, actorId: actor?.id ?? null }));
    setNotes((current) => (from === null ? page : [...(current ?? []), ...page]));
    setCursor(notifications.pageInfo.endCursor);
    setMore(notifications.pageInfo.hasNextPage);
  };

  const markRead = () => {
    unreadNotifications.set(0);
    gql('mutation { markNotificationsRead { readUpToSeq } }').catch(setError);
  };

  // Notification frames are live-only: after a reconnect the list is read again.
  useEffect(() => {
    load(null).then(markRead).catch(setError);
  }, [reconnects]);

  useEffect(() => {
    const note = arrived?.notification as { seq: number; kind: string; actorId: string | null; postId: string | null; roomId?: string | null; createdAt: string } | undefined;
    if (!note || notes === null) return;
    setNotes((current) =>
      current?.some((other) => other.seq === note.seq)
        ? current
        : [{ ...note, kind: note.kind.toUpperCase(), roomId: note.roomId ?? null, read: false }, ...(current ?? [])],
    );
    markRead();
  }, [arrived]);

  return (
    <main>
      <h1>Notifications</h1>
      <ErrorLine error={error} />
      {notes === null ? (
        <Loading />
      ) : notes.length === 0 ? (
        <p class="muted">Nothing yet.</p>
      ) : (
        <ul class="notifications">
          {notes.map((note) => (
            <li key={note.seq} class={note.read ? 'notification' : 'notification unread'}>
              <PersonLink id={note.actorId} avatar /> {WHAT[note.kind] ?? note.kind.toLowerCase()}
              {note.postId && (
                <>
                  {' '}
                  <a href={`/posts/${note.postId}`}>See the post</a>
                </>
              )}
              {note.roomId && (
                <>
                  {' '}
                  <a href={`/rooms/${note.roomId}`}>Open the chat</a>
                </>
              )}{' '}
              <Time at={note.createdAt} />
            </li>
          ))}
        </ul>
      )}
      {more && (
        <button class="secondary" onClick={() => load(cursor).catch(setError)}>
          Older notifications
        </button>
      )}
    </main>
  );
}
