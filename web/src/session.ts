// Who is signed in, and the state every screen shares while they are: the room list (last
// message, unread counts, kept live over the socket), the unread-notification count, and the
// current random match.

import { ApiError, gql } from './api';
import { live, type Frame } from './live';
import { Cell, rememberPerson } from './store';
import { navigate } from './router';

export type Me = {
  id: string;
  username: string;
  displayName: string;
  bio: string;
  email?: string | null;
  avatarMediaId?: string | null;
  avatarMedia?: { url: string | null } | null;
};

export const ME_FIELDS = 'id username displayName bio email avatarMediaId avatarMedia { url(variant: "thumb") }';

/** undefined: not known yet; null: signed out. */
export const me = new Cell<Me | null | undefined>(undefined);

export type LastMessage = { id: string; seq: number; senderId: string | null; body: string; createdAt: string };
export type RoomSummary = {
  id: string;
  kind: 'DIRECT' | 'GROUP';
  title: string;
  directWithId: string | null;
  memberCount: number;
  unreadCount: number;
  lastActivitySeq: number;
  lastMessage: LastMessage | null;
};

export const rooms = new Cell<RoomSummary[] | null>(null);
export const roomsError = new Cell<string | null>(null);
/** The room on screen: its new messages are read, not unread. */
export const openRoomId = new Cell<string | null>(null);
export const unreadNotifications = new Cell(0);
export type CurrentMatch = { roomId: string; partnerId: string; partnerName: string };
export const currentMatch = new Cell<CurrentMatch | null>(null);

const ROOM_FIELDS =
  'id kind title directWithId memberCount unreadCount lastActivitySeq lastMessage { id seq senderId body createdAt }';

const watching = new Map<string, () => void>();

function roomFrame(roomId: string, frame: Frame): void {
  if (frame.type !== 'event') return;
  const event = frame.event as { seq: number; id: string; actor: string; type: string; time: string; payload: Record<string, unknown> };
  const myId = me.value?.id;
  rooms.update((list) => {
    if (!list) return list;
    const index = list.findIndex((room) => room.id === roomId);
    if (index < 0) return list;
    const room = { ...list[index] };
    switch (event.type) {
      case 'chat.message.sent':
        // Already in the list as loaded (a resume may replay what a reload counted).
        if (event.seq <= room.lastActivitySeq) return list;
        room.lastMessage = { id: event.id, seq: event.seq, senderId: event.actor, body: String(event.payload.body ?? ''), createdAt: event.time };
        room.lastActivitySeq = event.seq;
        if (event.actor !== myId && openRoomId.value !== roomId) room.unreadCount += 1;
        return [room, ...list.slice(0, index), ...list.slice(index + 1)];
      case 'chat.message.edited':
        if (room.lastMessage && room.lastMessage.id === event.payload.messageId) {
          room.lastMessage = { ...room.lastMessage, body: String(event.payload.body ?? '') };
        }
        break;
      case 'chat.message.deleted':
        if (room.lastMessage && room.lastMessage.id === event.payload.messageId) {
          room.lastMessage = { ...room.lastMessage, body: '(deleted)' };
        }
        break;
      case 'chat.room.read':
        if (event.actor === myId) room.unreadCount = 0;
        break;
      case 'chat.member.joined':
        room.memberCount += 1;
        break;
      case 'chat.member.left':
        if (event.payload.userId === myId) return list.filter((other) => other.id !== roomId);
        room.memberCount = Math.max(0, room.memberCount - 1);
        break;
      default:
        return list;
    }
    return [...list.slice(0, index), room, ...list.slice(index + 1)];
  });
}

/** (Re)loads my rooms and watches each one's topic from the seq the list reflects. */
export async function loadRooms(): Promise<void> {
  try {
    const { logHead } = await gql<{ logHead: { seq: number } }>('{ logHead { seq } }');
    const data = await gql<{ rooms: { nodes: RoomSummary[] } }>(
      `query($after: Seq) { rooms(first: 100, after: $after) { nodes { ${ROOM_FIELDS} } } }`,
      { after: logHead.seq },
    );
    const list = data.rooms.nodes;
    rooms.set(list);
    roomsError.set(null);
    const ids = new Set(list.map((room) => room.id));
    watching.forEach((stop, id) => {
      if (!ids.has(id)) {
        stop();
        watching.delete(id);
      }
    });
    for (const room of list) {
      if (!watching.has(room.id)) {
        watching.set(room.id, live.watch(`chat:${room.id}`, (frame) => roomFrame(room.id, frame), logHead.seq));
      }
    }
  } catch (error) {
    roomsError.set(error instanceof Error ? error.message : String(error));
  }
}

/** A room I am in now shows no unread messages. */
export function clearUnread(roomId: string): void {
  rooms.update((list) => list?.map((room) => (room.id === roomId ? { ...room, unreadCount: 0 } : room)) ?? list);
}

function notificationsFrame(frame: Frame): void {
  if (frame.type === 'notification') {
    unreadNotifications.update((count) => count + 1);
    notificationArrived.set(frame);
  } else if (frame.type === 'event') {
    // My own joins and leaves: the room list changes.
    void loadRooms();
  }
}

/** The latest live notification frame (the notifications screen prepends it). */
export const notificationArrived = new Cell<Frame | null>(null);

function matchingFrame(frame: Frame): void {
  if (frame.type === 'matched') {
    const partner = frame.partner as { id: string; username: string; displayName: string };
    currentMatch.set({ roomId: String(frame.roomId), partnerId: partner.id, partnerName: partner.displayName });
    void loadRooms().then(() => navigate(`/rooms/${frame.roomId}`));
  } else if (frame.type === 'skipped') {
    currentMatch.set(null);
  }
  matchingArrived.set(frame);
}

/** The latest live matching frame (the matching screen shows it). */
export const matchingArrived = new Cell<Frame | null>(null);

let stopWatching: (() => void)[] = [];

/** After sign-in (or a page load that finds the session): start everything live. */
export async function begin(user: Me): Promise<void> {
  rememberPerson({ id: user.id, username: user.username, name: user.displayName, avatarMedia: user.avatarMedia });
  me.set(user);
  live.start();
  const { logHead } = await gql<{ logHead: { seq: number } }>('{ logHead { seq } }');
  stopWatching = [
    live.watch('notifications', notificationsFrame, logHead.seq),
    live.watch('matching', matchingFrame, logHead.seq),
  ];
  const [, notes, matching] = await Promise.all([
    loadRooms(),
    gql<{ notifications: { unreadCount: number } }>('{ notifications(first: 1) { unreadCount } }'),
    gql<{ matchingStatus: { match: { roomId: string; partner: { id: string; displayName: string } } | null } }>(
      '{ matchingStatus { match { roomId partner { id displayName } } } }',
    ),
  ]);
  unreadNotifications.set(notes.notifications.unreadCount);
  const match = matching.matchingStatus.match;
  currentMatch.set(match ? { roomId: match.roomId, partnerId: match.partner.id, partnerName: match.partner.displayName } : null);
}

/** Finds out at page load whether the browser holds a session. */
export async function resume(): Promise<void> {
  try {
    const data = await gql<{ me: Me }>(`{ me { ${ME_FIELDS} } }`);
    await begin(data.me);
  } catch (error) {
    if (error instanceof ApiError && error.code === 'UNAUTHENTICATED') me.set(null);
    else throw error;
  }
}

export function end(): void {
  if (!me.value) return;
  // Signed out first, so that the socket's own 'signed-out' (from stop) finds nothing to end.
  me.set(null);
  stopWatching.forEach((stop) => stop());
  stopWatching = [];
  watching.forEach((stop) => stop());
  watching.clear();
  live.stop();
  rooms.set(null);
  currentMatch.set(null);
  unreadNotifications.set(0);
}

live.status.subscribe((status) => {
  if (status === 'signed-out') end();
});
live.reconnects.subscribe(() => {
  // Resumed topics replay what was missed; the unread counts are read again to be exact.
  if (me.value) void loadRooms();
});
