// One room: its history (newest at the bottom, older pages on demand), live messages, edits
// and deletions, sending with retry (each message keeps its clientId, so a retry is never a
// second message), replies, image attachments, typing and presence, and read receipts.
// Someone who is not a member sees only that.

import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiError, describe, gql, newClientId, variantUrl, type Media } from '../api';
import { live, type Frame } from '../live';
import { navigate } from '../router';
import { clearUnread, currentMatch, me, loadRooms, openRoomId } from '../session';
import { useCell, usePerson } from '../store';
import { ErrorLine, ImagePicker, Loading, PersonLink, Time } from '../ui';
import { RoomTitle, idsOf } from './rooms';

type Message = {
  id: string;
  seq: number;
  senderId: string | null;
  body: string;
  clientId: string | null;
  replyToId: string | null;
  edited: boolean;
  createdAt: string;
  attachments: Media[];
};

type Member = { userId: string; readUpToSeq: number; online: boolean };
type RoomInfo = { id: string; kind: 'DIRECT' | 'GROUP'; title: string; creatorId: string | null; directWithId: string | null; members: Member[] };
type Pending = { clientId: string; body: string; replyToId: string | null; attachments: Media[]; failed?: string; retryable?: boolean };

/** Failures a later attempt may cure (sent again by itself when the connection is back). */
const TRANSIENT = new Set(['OFFLINE', 'OVERLOADED', 'STORAGE_UNAVAILABLE', 'RATE_LIMITED', 'NOT_READY', 'BAD_RESPONSE']);
/** girok's limit on a message body, in bytes of UTF-8. */
const MAX_BODY_BYTES = 4096;

const MEDIA_FIELDS = 'id state width height variants { name url width height }';
const MESSAGE_FIELDS = `id seq senderId body clientId replyToId edited createdAt attachments { ${MEDIA_FIELDS} }`;
const PAGE = 30;
const TYPING_SHOWN_MS = 5_000;
const TYPING_EVERY_MS = 2_500;

function sortedMerge(messages: Message[], more: Message[]): Message[] {
  const byId = new Map(messages.map((message) => [message.id, message]));
  more.forEach((message) => byId.set(message.id, message));
  return [...byId.values()].sort((a, b) => a.seq - b.seq);
}

function Typing({ typers }: { typers: string[] }) {
  const first = usePerson(typers[0]);
  const text = typers.length === 0 ? '' : typers.length === 1 ? `${first?.name ?? 'Someone'} is typing…` : `${typers.length} people are typing…`;
  return (
    <p class="typing muted" aria-live="polite">
      {text}
    </p>
  );
}

function Attachments({ media }: { media: Media[] }) {
  if (!media.length) return null;
  return (
    <span class="attachments">
      {media.map((item) => (
        <a key={item.id} href={variantUrl(item, 'full')} target="_blank" rel="noopener">
          <img src={variantUrl(item, 'small')} alt="Attached image" width={item.width ?? undefined} height={item.height ?? undefined} loading="lazy" />
        </a>
      ))}
    </span>
  );
}

function MessageItem(props: {
  message: Message;
  mine: boolean;
  parent?: Message;
  seenBy: string[];
  onReply: () => void;
}) {
  const { message, mine, parent } = props;
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState(message.body);
  const [error, setError] = useState<unknown>(null);
  const save = async (event: Event) => {
    event.preventDefault();
    try {
      await gql('mutation($m: ID!, $b: String!) { editMessage(messageId: $m, body: $b) }', { m: message.id, b: draft });
      setEditing(false);
      setError(null);
    } catch (failure) {
      setError(failure);
    }
  };
  const remove = async () => {
    try {
      await gql('mutation($m: ID!) { deleteMessage(messageId: $m) }', { m: message.id });
    } catch (failure) {
      setError(failure);
    }
  };
  return (
    <li class={mine ? 'message mine' : 'message'} data-seq={message.seq} data-message={message.id}>
      <span class="meta">
        <PersonLink id={message.senderId} avatar /> <Time at={message.createdAt} />
        {message.edited && <span class="muted"> (edited)</span>}
      </span>
      {parent && (
        <blockquote class="reply-to">
          <PersonLink id={parent.senderId} />: {parent.body}
        </blockquote>
      )}
      {editing ? (
        <form onSubmit={save} class="edit">
          <label for={`edit-${message.id}`} class="visually-hidden">
            Edit message
          </label>
          <textarea id={`edit-${message.id}`} rows={2} value={draft} ref={(field) => field?.focus()} onInput={(event) => setDraft(event.currentTarget.value)} />
          <button type="submit">Save</button>
          <button type="button" class="secondary" onClick={() => setEditing(false)}>
            Cancel
          </button>
        </form>
      ) : (
        <p class="body">{message.body}</p>
      )}
      <Attachments media={message.attachments} />
      <span class="actions">
        <button class="link" onClick={props.onReply}>
          Reply
        </button>
        {mine && !editing && (
          <>
            <button class="link" onClick={() => (setDraft(message.body), setEditing(true))}>
              Edit
            </button>
            <button class="link" onClick={remove}>
              Delete
            </button>
          </>
        )}
      </span>
      {props.seenBy.length > 0 && (
        <span class="seen muted">
          Seen by{' '}
          {props.seenBy.map((id, index) => (
            <span key={id}>
              {index > 0 && ', '}
              <PersonLink id={id} />
            </span>
          ))}
        </span>
      )}
      <ErrorLine error={error} />
    </li>
  );
}

export function RoomScreen({ id }: { id: string }) {
  const user = useCell(me);
  const myId = user?.id ?? '';
  const status = useCell(live.status);
  const match = useCell(currentMatch);
  const [room, setRoom] = useState<RoomInfo | null>(null);
  const [messages, setMessages] = useState<Message[]>([]);
  const [older, setOlder] = useState<number | null>(null);
  const [pending, setPending] = useState<Pending[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [typers, setTypers] = useState<Map<string, number>>(new Map());
  const [draft, setDraft] = useState('');
  const [replyTo, setReplyTo] = useState<Message | null>(null);
  const [attachments, setAttachments] = useState<Media[]>([]);
  const [addName, setAddName] = useState('');
  const lastTyping = useRef(0);
  const readUpTo = useRef(0);
  const readTimer = useRef<number | undefined>(undefined);
  const sending = useRef<Promise<void>>(Promise.resolve());
  /** Sends that failed for a passing reason, due again (cancelled when the screen closes). */
  const retries = useRef(new Set<number>());
  const loadingOlder = useRef(false);
  const olderButton = useRef<HTMLButtonElement>(null);
  const stickToBottom = useRef(true);

  // Follow the room live first (holding frames), then load it as of the log's head and apply
  // on top what arrived meanwhile. A `reset` (the socket came back without a resume) loads again.
  useEffect(() => {
    let cancelled = false;
    let held: Frame[] | null = [];
    const load = async () => {
      held = held ?? [];
      try {
        await live.ready(`chat:${id}`);
        const { logHead } = await gql<{ logHead: { seq: number } }>('{ logHead { seq } }');
        const data = await gql<{ room: RoomInfo; messages: { nodes: Message[]; pageInfo: { hasNextPage: boolean; endCursor: number | null } } }>(
          `query($r: ID!, $after: Seq) {
            room(id: $r, after: $after) { id kind title creatorId directWithId members { userId readUpToSeq online } }
            messages(roomId: $r, first: ${PAGE}, after: $after) { nodes { ${MESSAGE_FIELDS} } pageInfo { hasNextPage endCursor } }
          }`,
          { r: id, after: logHead.seq },
        );
        if (cancelled) return;
        setRoom(data.room);
        setMessages((current) => sortedMerge(current, data.messages.nodes));
        setOlder((current) => (current === null || current > (data.messages.pageInfo.endCursor ?? 0) ? (data.messages.pageInfo.hasNextPage ? data.messages.pageInfo.endCursor : null) : current));
        markRead(logHead.seq, true);
      } catch (failure) {
        if (!cancelled) setError(failure);
      }
      const frames = held ?? [];
      held = null;
      frames.forEach(apply);
    };
    const stop = live.watch(
      `chat:${id}`,
      (frame) => {
        if (frame.type === 'reset') void load();
        else if (held) held.push(frame);
        else apply(frame);
      },
      true,
    );
    void load();
    return () => {
      cancelled = true;
      stop();
    };
  }, [id]);

  // Messages of this room are read while it is on screen (and the tab visible).
  useEffect(() => {
    const visible = () => document.visibilityState === 'visible';
    const onVisibility = () => {
      openRoomId.set(visible() ? id : null);
      if (visible()) markRead(undefined, true);
    };
    openRoomId.set(visible() ? id : null);
    document.addEventListener('visibilitychange', onVisibility);
    return () => {
      document.removeEventListener('visibilitychange', onVisibility);
      openRoomId.set(null);
      if (readTimer.current !== undefined) {
        clearTimeout(readTimer.current);
        sendRead();
      }
    };
  }, [id]);

  /**
   * Marks the room read up to the newest message seen: at once when `now`, else at most once
   * per 300 ms (live messages), and what is still waiting when the screen goes.
   */
  function markRead(upTo?: number, now = false) {
    if (upTo !== undefined) readUpTo.current = Math.max(readUpTo.current, upTo);
    clearUnread(id);
    if (document.visibilityState !== 'visible') return;
    clearTimeout(readTimer.current);
    readTimer.current = now ? undefined : window.setTimeout(sendRead, 300);
    if (now) sendRead();
  }

  function sendRead() {
    readTimer.current = undefined;
    const upToSeq = readUpTo.current || undefined;
    gql('mutation($r: ID!, $s: Seq) { markRead(roomId: $r, upToSeq: $s) { seq } }', { r: id, s: upToSeq }).catch(() => {});
  }

  useEffect(() => {
    const scroller = document.scrollingElement;
    if (stickToBottom.current && scroller) scroller.scrollTop = scroller.scrollHeight;
  }, [messages, pending]);

  useEffect(() => {
    const onScroll = () => {
      const scroller = document.scrollingElement;
      if (scroller) stickToBottom.current = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 120;
    };
    addEventListener('scroll', onScroll, { passive: true });
    return () => removeEventListener('scroll', onScroll);
  }, []);

  // Typing hints expire by themselves.
  useEffect(() => {
    if (typers.size === 0) return;
    const timer = setTimeout(() => {
      const now = Date.now();
      setTypers((current) => new Map([...current].filter(([, until]) => until > now)));
    }, 1_000);
    return () => clearTimeout(timer);
  }, [typers]);

  // Messages that failed for want of a connection go out again once it is back.
  useEffect(() => {
    if (status === 'online') pending.filter((item) => item.failed && item.retryable).forEach((item) => void deliver(item));
  }, [status]);
  useEffect(() => () => retries.current.forEach((timer) => clearTimeout(timer)), []);

  function apply(frame: Frame) {
    if (frame.type === 'typing') {
      setTypers((current) => new Map(current).set(String(frame.userId), Date.now() + TYPING_SHOWN_MS));
      return;
    }
    if (frame.type === 'presence') {
      setRoom((current) => current && { ...current, members: current.members.map((member) => (member.userId === frame.userId ? { ...member, online: Boolean(frame.online) } : member)) });
      return;
    }
    if (frame.type === 'error') {
      setError(new ApiError(String(frame.code), String(frame.message)));
      return;
    }
    if (frame.type !== 'event') return;
    const event = frame.event as { seq: number; id: string; actor: string; type: string; time: string; payload: Record<string, any>; media?: Media[] };
    const payload = event.payload;
    switch (event.type) {
      case 'chat.message.sent': {
        const message: Message = {
          id: event.id,
          seq: event.seq,
          senderId: event.actor,
          body: payload.body,
          clientId: payload.clientId ?? null,
          replyToId: payload.replyTo ?? null,
          edited: false,
          createdAt: event.time,
          attachments: event.media ?? [],
        };
        setMessages((current) => sortedMerge(current, [message]));
        if (message.clientId) setPending((current) => current.filter((item) => item.clientId !== message.clientId));
        setTypers((current) => {
          const next = new Map(current);
          next.delete(event.actor);
          return next;
        });
        if (event.actor !== myId) markRead(event.seq);
        break;
      }
      case 'chat.message.edited':
        setMessages((current) => current.map((message) => (message.id === payload.messageId ? { ...message, body: payload.body, edited: true } : message)));
        break;
      case 'chat.message.deleted':
        setMessages((current) => current.filter((message) => message.id !== payload.messageId));
        break;
      case 'chat.room.read':
        setRoom((current) => current && { ...current, members: current.members.map((member) => (member.userId === event.actor ? { ...member, readUpToSeq: Math.max(member.readUpToSeq, payload.upToSeq) } : member)) });
        break;
      case 'chat.member.joined':
        setRoom((current) => current && (current.members.some((member) => member.userId === payload.userId) ? current : { ...current, members: [...current.members, { userId: payload.userId, readUpToSeq: 0, online: false }] }));
        break;
      case 'matching.skipped':
        // The match ended: both left the room (older logs say so with two chat.member.left).
        if (payload.membersLeft) {
          setError(new ApiError('NOT_A_MEMBER', 'This match has ended.'));
          setRoom((current) => current && { ...current, members: [] });
        }
        break;
      case 'chat.member.left':
        if (payload.userId === myId) {
          setError(new ApiError('NOT_A_MEMBER', 'You are no longer a member of this room.'));
        }
        setRoom((current) => current && { ...current, members: current.members.filter((member) => member.userId !== payload.userId) });
        break;
    }
  }

  /** Sends one message after those before it (so they reach the log in the order written). */
  function deliver(item: Pending): Promise<void> {
    sending.current = sending.current.then(() => deliverNow(item));
    return sending.current;
  }

  async function deliverNow(item: Pending) {
    setPending((current) => current.map((other) => (other.clientId === item.clientId ? { ...other, failed: undefined, retryable: false } : other)));
    try {
      const { sendMessage } = await gql<{ sendMessage: { seq: number; id: string; createdAt: string } }>(
        'mutation($r: ID!, $b: String!, $c: String, $reply: ID, $att: [ID!]) { sendMessage(roomId: $r, body: $b, clientId: $c, replyTo: $reply, attachments: $att) { seq id createdAt } }',
        { r: id, b: item.body, c: item.clientId, reply: item.replyToId, att: item.attachments.map((media) => media.id) },
      );
      // Shown at once; the live event (or a resume) confirms it with the same id.
      setMessages((current) =>
        current.some((message) => message.id === sendMessage.id)
          ? current
          : sortedMerge(current, [{ id: sendMessage.id, seq: sendMessage.seq, senderId: myId, body: item.body, clientId: item.clientId, replyToId: item.replyToId, edited: false, createdAt: sendMessage.createdAt, attachments: item.attachments }]),
      );
      setPending((current) => current.filter((other) => other.clientId !== item.clientId));
    } catch (failure) {
      const retryable = failure instanceof ApiError && TRANSIENT.has(failure.code);
      setPending((current) => current.map((other) => (other.clientId === item.clientId ? { ...other, failed: describe(failure), retryable } : other)));
      // Offline: sent again when the socket is back (above); any other passing failure: when
      // girok says, or in a second (the same clientId, so never twice).
      if (retryable && failure.code !== 'OFFLINE') {
        const timer = window.setTimeout(() => {
          retries.current.delete(timer);
          void deliver(item);
        }, (failure.retryAfter ?? 1) * 1_000);
        retries.current.add(timer);
      }
    }
  }

  const send = (event: Event) => {
    event.preventDefault();
    const body = draft.trim();
    if (!body) return;
    if (new TextEncoder().encode(body).length > MAX_BODY_BYTES) {
      setError(new ApiError('INVALID_ARGUMENT', `A message is at most ${MAX_BODY_BYTES} bytes; this one is longer`));
      return;
    }
    const item: Pending = { clientId: newClientId(), body, replyToId: replyTo?.id ?? null, attachments };
    setPending((current) => [...current, item]);
    setDraft('');
    setReplyTo(null);
    setAttachments([]);
    stickToBottom.current = true;
    void deliver(item);
  };

  const typing = (value: string) => {
    setDraft(value);
    const now = Date.now();
    if (value && now - lastTyping.current > TYPING_EVERY_MS) {
      lastTyping.current = now;
      live.send({ type: 'typing', roomId: id });
    }
  };

  const loadOlder = async () => {
    if (older === null || loadingOlder.current) return;
    loadingOlder.current = true;
    try {
      const data = await gql<{ messages: { nodes: Message[]; pageInfo: { hasNextPage: boolean; endCursor: number | null } } }>(
        `query($r: ID!, $before: Seq) { messages(roomId: $r, first: ${PAGE}, before: $before) { nodes { ${MESSAGE_FIELDS} } pageInfo { hasNextPage endCursor } } }`,
        { r: id, before: older },
      );
      stickToBottom.current = false;
      setMessages((current) => sortedMerge(current, data.messages.nodes));
      setOlder(data.messages.pageInfo.hasNextPage ? data.messages.pageInfo.endCursor : null);
    } catch (failure) {
      setError(failure);
    }
    loadingOlder.current = false;
  };

  // Scrolling up to the top of the history loads the page before it (the button stays for
  // keyboards and for browsers without IntersectionObserver).
  useEffect(() => {
    const button = olderButton.current;
    if (!button || typeof IntersectionObserver === 'undefined') return;
    const observer = new IntersectionObserver((entries) => {
      if (entries.some((entry) => entry.isIntersecting) && !stickToBottom.current) void loadOlder();
    });
    observer.observe(button);
    return () => observer.disconnect();
  }, [older]);

  const addMember = async (event: Event) => {
    event.preventDefault();
    try {
      const [userId] = await idsOf(addName);
      if (!userId) return;
      await gql('mutation($r: ID!, $u: ID!) { addMember(roomId: $r, userId: $u) }', { r: id, u: userId });
      setAddName('');
      setRoom((current) => current && (current.members.some((member) => member.userId === userId) ? current : { ...current, members: [...current.members, { userId, readUpToSeq: 0, online: false }] }));
    } catch (failure) {
      setError(failure);
    }
  };

  const skip = async () => {
    try {
      await gql('mutation { skipMatch(requeue: true) { seq } }');
      currentMatch.set(null);
      await loadRooms();
      navigate('/matching');
    } catch (failure) {
      setError(failure);
    }
  };

  const byId = useMemo(() => new Map(messages.map((message) => [message.id, message])), [messages]);
  const others = room?.members.filter((member) => member.userId !== myId) ?? [];
  const myLast = [...messages].reverse().find((message) => message.senderId === myId);
  const typingNow = [...typers.keys()].filter((userId) => userId !== myId);

  if (error && !room) {
    const code = error instanceof ApiError ? error.code : '';
    return (
      <main>
        <h1>{code === 'NOT_A_MEMBER' || code === 'ROOM_NOT_FOUND' ? 'No access' : 'This room cannot be shown'}</h1>
        <p role="alert">{code === 'NOT_A_MEMBER' || code === 'ROOM_NOT_FOUND' ? 'You are not a member of this room.' : describe(error)}</p>
        <p>
          <a href="/">Back to your chats</a>
        </p>
      </main>
    );
  }
  if (!room) return <Loading />;
  return (
    <main class="room">
      <header class="room-header">
        <h1>
          <RoomTitle room={room} />
        </h1>
        <ul class="members" aria-label="Members">
          {room.members.map((member) => (
            <li key={member.userId} class={member.online ? 'online' : 'offline'}>
              <span class="dot" aria-hidden="true" />
              <PersonLink id={member.userId} /> <span class="visually-hidden">{member.online ? '(online)' : '(offline)'}</span>
            </li>
          ))}
        </ul>
        {match?.roomId === id && (
          <p class="match-bar">
            A random match. <button onClick={skip}>Skip and find someone else</button>
          </p>
        )}
      </header>
      <ErrorLine error={error} />
      {older !== null && (
        <button class="secondary" ref={olderButton} onClick={loadOlder}>
          Load older messages
        </button>
      )}
      <div role="log" aria-label="Messages" aria-relevant="additions">
      <ol class="messages">
        {messages.map((message) => (
          <MessageItem
            key={message.id}
            message={message}
            mine={message.senderId === myId}
            parent={message.replyToId ? byId.get(message.replyToId) : undefined}
            seenBy={message === myLast ? others.filter((member) => member.readUpToSeq >= message.seq).map((member) => member.userId) : []}
            onReply={() => setReplyTo(message)}
          />
        ))}
        {pending.map((item) => (
          <li key={item.clientId} class="message mine pending">
            <p class="body">{item.body}</p>
            {item.failed ? (
              <span class="error" role="alert">
                Not sent: {item.failed}{' '}
                <button class="link" onClick={() => void deliver(item)}>
                  Retry
                </button>
              </span>
            ) : (
              <span class="muted">Sending…</span>
            )}
          </li>
        ))}
      </ol>
      </div>
      <Typing typers={typingNow} />
      <form class="chat-composer" onSubmit={send}>
        {replyTo && (
          <p class="replying">
            Replying to <PersonLink id={replyTo.senderId} />: {replyTo.body.slice(0, 80)}{' '}
            <button type="button" class="link" onClick={() => setReplyTo(null)}>
              Cancel reply
            </button>
          </p>
        )}
        {attachments.length > 0 && <Attachments media={attachments} />}
        <label for="composer-body" class="visually-hidden">
          Message
        </label>
        <textarea
          id="composer-body"
          rows={2}
          value={draft}
          placeholder="Write a message"
          onInput={(event) => typing(event.currentTarget.value)}
          onKeyDown={(event) => {
            if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) send(event);
          }}
        />
        <ImagePicker label="Attach image" disabled={attachments.length >= 4} onReady={(media) => setAttachments((current) => [...current, media].slice(0, 4))} />
        <button type="submit">Send</button>
      </form>
      {room.kind === 'GROUP' && room.creatorId === myId && (
        <form class="add-member" onSubmit={addMember}>
          <label for="add-member">Add a member (username)</label>
          <input id="add-member" value={addName} onInput={(event) => setAddName(event.currentTarget.value)} />
          <button type="submit">Add</button>
        </form>
      )}
    </main>
  );
}
