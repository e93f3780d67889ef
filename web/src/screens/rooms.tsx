// My rooms, most recently active first, each with its last message and unread count (kept
// live by the session's socket), and a form to start a room with people by username.

import { useState } from 'preact/hooks';
import { gql } from '../api';
import { navigate } from '../router';
import { ROOM_FIELDS, loadRooms, olderRoomsCursor, rooms, roomsError, type RoomSummary } from '../session';
import { useCell, usePerson } from '../store';
import { ErrorLine, Loading, PersonLink, Time, useAction } from '../ui';

/** Looks usernames up (comma or space separated) and returns their ids. */
export async function idsOf(usernames: string): Promise<string[]> {
  const names = usernames.split(/[\s,]+/).filter(Boolean);
  const found = await Promise.all(
    names.map((username) => gql<{ user: { id: string } }>('query($u: String!) { user(username: $u) { id } }', { u: username })),
  );
  return found.map((answer) => answer.user.id);
}

export function RoomTitle({ room }: { room: Pick<RoomSummary, 'kind' | 'title' | 'directWithId'> }) {
  const partner = usePerson(room.kind === 'DIRECT' ? room.directWithId : null);
  if (room.kind === 'DIRECT') return <>{partner ? partner.name : 'Direct messages'}</>;
  return <>{room.title}</>;
}

function NewRoom() {
  const [title, setTitle] = useState('');
  const [members, setMembers] = useState('');
  const { run: submit, busy, error } = useAction(async () => {
    const memberIds = await idsOf(members);
    const { createRoom } = await gql<{ createRoom: { id: string } }>(
      'mutation($t: String!, $m: [ID!]) { createRoom(title: $t, memberIds: $m) { id } }',
      { t: title, m: memberIds },
    );
    setTitle('');
    setMembers('');
    await loadRooms();
    navigate(`/rooms/${createRoom.id}`);
  });
  return (
    <form class="card" onSubmit={submit} aria-labelledby="new-room">
      <h2 id="new-room">New room</h2>
      <p class="field">
        <label for="room-title">Title</label>
        <input id="room-title" value={title} required maxLength={100} onInput={(event) => setTitle(event.currentTarget.value)} />
      </p>
      <p class="field">
        <label for="room-members">Members (usernames)</label>
        <input id="room-members" value={members} placeholder="alice, bob" onInput={(event) => setMembers(event.currentTarget.value)} />
      </p>
      <ErrorLine error={error} />
      <button type="submit" disabled={busy}>
        Create room
      </button>
    </form>
  );
}

function RoomItem({ room }: { room: RoomSummary }) {
  return (
    <li data-room={room.id}>
      <a href={`/rooms/${room.id}`} class="room-link">
        <span class="room-title">
          <RoomTitle room={room} />
        </span>
        {room.unreadCount > 0 && (
          <span class="badge unread" data-count={room.unreadCount}>
            {room.unreadCount}
            <span class="visually-hidden"> unread</span>
          </span>
        )}
      </a>
      {room.lastMessage && (
        <span class="last-message">
          <PersonLink id={room.lastMessage.senderId} />: <span class="preview">{room.lastMessage.body}</span> <Time at={room.lastMessage.createdAt} />
        </span>
      )}
    </li>
  );
}

/** Rooms past the live ones (least recently active), a page at a time, as they were when read. */
function OlderRooms({ live: liveRooms }: { live: RoomSummary[] }) {
  const first = useCell(olderRoomsCursor);
  const [older, setOlder] = useState<RoomSummary[]>([]);
  /** undefined: nothing loaded yet (start after the live rooms); null: no more. */
  const [cursor, setCursor] = useState<string | null | undefined>(undefined);
  const next = cursor === undefined ? first : cursor;
  // One page at a time (a double click would load the same page twice).
  const { run: load, busy, error } = useAction(async () => {
    const { rooms: page } = await gql<{ rooms: { nodes: RoomSummary[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } } }>(
      `query($c: String) { rooms(first: 50, cursor: $c) { nodes { ${ROOM_FIELDS} } pageInfo { hasNextPage endCursor } } }`,
      { c: next },
    );
    setOlder((current) => {
      const shown = new Set([...liveRooms, ...current].map((room) => room.id));
      return [...current, ...page.nodes.filter((room) => !shown.has(room.id))];
    });
    setCursor(page.pageInfo.hasNextPage ? page.pageInfo.endCursor : null);
  });
  return (
    <>
      {older.length > 0 && (
        <ul class="rooms" aria-label="Older rooms">
          {older.map((room) => (
            <RoomItem key={room.id} room={room} />
          ))}
        </ul>
      )}
      <ErrorLine error={error} />
      {next !== null && (
        <button class="secondary" onClick={() => void load()} disabled={busy}>
          Older rooms
        </button>
      )}
    </>
  );
}

export function RoomList() {
  const list = useCell(rooms);
  const error = useCell(roomsError);
  return (
    <main>
      <h1>Chats</h1>
      <ErrorLine error={error} />
      {list === null ? (
        <Loading />
      ) : list.length === 0 ? (
        <p class="muted">No rooms yet: start one below, or find someone to talk to under Match.</p>
      ) : (
        <ul class="rooms" aria-label="Your rooms">
          {list.map((room) => (
            <RoomItem key={room.id} room={room} />
          ))}
        </ul>
      )}
      {list && <OlderRooms live={list} />}
      <NewRoom />
    </main>
  );
}
