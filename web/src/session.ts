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
/** Where the rooms after the live ones start (the list's "Older rooms"), if there are more. */
export const olderRoomsCursor = new Cell<string | null>(null);
/** The room on screen: its new messages are read, not unread. */
export const openRoomId = new Cell<string | null>(null);
export const unreadNotifications = new Cell(0);
export type CurrentMatch = { roomId: string; partnerId: string; partnerName: string };
export const currentMatch = new Cell<CurrentMatch | null>(null);

export const ROOM_FIELDS =
  'id kind title directWithId memberCount unreadCount lastActivitySeq lastMessage { id seq senderId body createdAt }';

/** Rooms whose topics the list follows live (girok allows 100 subscriptions per socket). */
export const LIVE_ROOMS = 90;

const watching = new Map<string, () => void>();
let generation = 0;
/** Frames that arrive while the list loads, applied on top of what it loaded. */
let held: [string, Frame][] | null = null;

type RoomEvent = { seq: number; id: string; actor: string; type: string; time: string; payload: Record<string, unknown> };

function roomFrame(roomId: string, frame: Frame): void {
  if (frame.type !== 'event') return;
  if (held) {
    held.push([roomId, frame]);
    return;
  }
  const event = frame.event as RoomEvent;
  const myId = me.value?.id;
  rooms.update((list) => {
    if (!list) return list;
    const index = list.findIndex((room) => room.id === roomId);
    if (index < 0) return list;
    const room = { ...list[index] };
    switch (event.type) {
      case 'chat.message.sent':
        // Already in the list as loaded.
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
        // Read elsewhere (another tab or device) up to the newest message.
        if (event.actor === myId && Number(event.payload.upToSeq) >= (room.lastMessage?.seq ?? 0)) room.unreadCount = 0;
        break;
      case 'chat.member.left':
        if (event.payload.userId === myId) return list.filter((other) => other.id !== roomId);
        return list;
      case 'matching.skipped':
        // The match ended: both left its room (older logs say so with two chat.member.left).
        if (event.payload.membersLeft) return list.filter((other) => other.id !== roomId);
        return list;
      default:
        return list;
    }
    return [...list.slice(0, index), room, ...list.slice(index + 1)];
  });
}

function follow(ids: string[]): void {
  const keep = new Set(ids);
  watching.forEach((stop, id) => {
    if (!keep.has(id)) {
      stop();
      watching.delete(id);
    }
  });
  for (const id of ids) {
    if (!watching.has(id)) watching.set(id, live.watch(`chat:${id}`, (frame) => roomFrame(id, frame)));
  }
}

/**
 * (Re)loads my rooms: follows each one's topic, waits until girok has registered them, then
 * reads the list as of the log's head and applies on top what arrived meanwhile. A newer load
 * supersedes an older one still running.
 */
export async function loadRooms(): Promise<void> {
  const mine = ++generation;
  held = held ?? [];
  try {
    const known = await gql<{ rooms: { nodes: { id: string }[] } }>(`{ rooms(first: ${LIVE_ROOMS}) { nodes { id } } }`);
    if (mine !== generation) return;
    follow(known.rooms.nodes.map((room) => room.id));
    await Promise.all([...watching.keys()].map((id) => live.ready(`chat:${id}`)));
    const { logHead } = await gql<{ logHead: { seq: number } }>('{ logHead { seq } }');
    const data = await gql<{ rooms: { nodes: RoomSummary[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } } }>(
      `query($after: Seq) { rooms(first: ${LIVE_ROOMS}, after: $after) { nodes { ${ROOM_FIELDS} } pageInfo { hasNextPage endCursor } } }`,
      { after: logHead.seq },
    );
    if (mine !== generation) return;
    const list = data.rooms.nodes;
    follow(list.map((room) => room.id));
    const openId = openRoomId.value;
    rooms.set(list.map((room) => (room.id === openId ? { ...room, unreadCount: 0 } : room)));
    roomsError.set(null);
    olderRoomsCursor.set(data.rooms.pageInfo.hasNextPage ? data.rooms.pageInfo.endCursor : null);
  } catch (error) {
    if (mine === generation) roomsError.set(error instanceof Error ? error.message : String(error));
  } finally {
    if (mine === generation) {
      const frames = held ?? [];
      held = null;
      frames.forEach(([id, frame]) => roomFrame(id, frame));
    }
  }
}

/** A room I am in now shows no unread messages. */
export function clearUnread(roomId: string): void {
  rooms.update((list) => list?.map((room) => (room.id === roomId ? { ...room, unreadCount: 0 } : room)) ?? list);
}

async function countUnreadNotifications(): Promise<void> {
  const notes = await gql<{ notifications: { unreadCount: number } }>('{ notifications(first: 1) { unreadCount } }');
  unreadNotifications.set(notes.notifications.unreadCount);
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

type MatchingView = { match: { roomId: string; partner: { id: string; displayName: string } | null } | null };

async function readMatch(): Promise<void> {
  const { matchingStatus } = await gql<{ matchingStatus: MatchingView }>('{ matchingStatus { match { roomId partner { id displayName } } } }');
  const match = matchingStatus.match;
  currentMatch.set(match ? { roomId: match.roomId, partnerId: match.partner?.id ?? '', partnerName: match.partner?.displayName ?? 'someone' } : null);
}

function matchingFrame(frame: Frame): void {
  if (frame.type === 'matched') {
    const partner = frame.partner as { id: string; displayName: string } | null;
    currentMatch.set({ roomId: String(frame.roomId), partnerId: partner?.id ?? '', partnerName: partner?.displayName ?? 'someone' });
    void loadRooms().then(() => navigate(`/rooms/${frame.roomId}`));
  } else if (frame.type === 'skipped') {
    currentMatch.set(null);
  } else if (frame.type === 'reset') {
    void readMatch();
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
  stopWatching = [live.watch('notifications', notificationsFrame, true), live.watch('matching', matchingFrame, true)];
  await Promise.all([live.ready('notifications'), live.ready('matching')]);
  await Promise.all([loadRooms(), countUnreadNotifications(), readMatch()]);
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
  // Rooms are read again (their topics were subscribed afresh), and so is the unread count of
  // notifications (their frames are live-only).
  if (!me.value) return;
  void loadRooms();
  countUnreadNotifications().catch(() => {});
});
