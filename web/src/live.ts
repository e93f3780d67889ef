// The app's one WebSocket (/ws, signed in by the session cookie). Topics are subscribed once
// however many screens watch them; every frame goes to the screens watching its topic.
//
// Consistency: a screen adds its watcher, waits for `ready(topic)` (girok has registered the
// subscription: every later event will come), then loads its state as of the log's head and
// merges what arrived meanwhile. After a dropped socket comes back (by itself, backing off),
// topics whose watchers asked for it are resumed from the last seq seen (girok allows a few
// resumes at a time, so only those); the others are subscribed afresh and their watchers get a
// `reset` frame to load again. `status` says whether the app is connected (the offline banner).

import { Cell } from './store';

export type Frame = { type: string; topic?: string; seq?: number; [key: string]: unknown };
type Watcher = (frame: Frame) => void;

type Topic = {
  watchers: Set<Watcher>;
  /** Watchers that asked to resume this topic after a reconnect (none: subscribe afresh and send `reset`). */
  resumers: number;
  lastSeq?: number;
  state: 'idle' | 'pending' | 'subscribed' | 'refused';
  ready: Promise<number>;
  markReady: (headSeq: number) => void;
  readySettled: boolean;
  /** The pending subscription replays nothing (no fromSeq): its head is where it starts. */
  fresh: boolean;
  retryTimer?: number;
};

export type Status = 'connecting' | 'online' | 'offline' | 'signed-out';

/** Frames that carry a log position of their topic (`notification` frames are live-only). */
const positioned = (frame: Frame) => typeof frame.seq === 'number' && (frame.type === 'event' || frame.topic === 'matching');

/** Refusals after which subscribing again cannot help. */
const FINAL = new Set(['NOT_A_MEMBER', 'ROOM_NOT_FOUND', 'UNKNOWN_TOPIC', 'TOO_MANY_SUBSCRIPTIONS', 'UNAUTHENTICATED']);

function deferred(): { promise: Promise<number>; resolve: (value: number) => void } {
  let resolve: (value: number) => void = () => {};
  const promise = new Promise<number>((done) => (resolve = done));
  return { promise, resolve };
}

class Live {
  readonly status = new Cell<Status>('connecting');
  /** Bumped after each reconnect, so screens can read again what live frames do not replay. */
  readonly reconnects = new Cell(0);
  private socket?: WebSocket;
  private topics = new Map<string, Topic>();
  private retryMs = 500;
  private retryTimer?: number;
  private wasOnline = false;
  private running = false;

  start(): void {
    if (this.running) return;
    this.running = true;
    this.connect();
  }

  /** Ends the socket (signing out): nothing reconnects until `start`. */
  stop(): void {
    this.running = false;
    clearTimeout(this.retryTimer);
    this.topics.forEach((entry) => clearTimeout(entry.retryTimer));
    this.socket?.close(1000);
    this.socket = undefined;
    this.topics.clear();
    this.wasOnline = false;
    this.status.set('signed-out');
  }

  /**
   * Watches `topic` (the first watcher subscribes it); `resume`: replay what was missed after
   * a reconnect rather than receive `reset`. Returns the function that stops watching.
   */
  watch(topic: string, watcher: Watcher, resume = false): () => void {
    let entry = this.topics.get(topic);
    if (!entry) {
      const ready = deferred();
      entry = { watchers: new Set(), resumers: 0, state: 'idle', ready: ready.promise, markReady: ready.resolve, readySettled: false, fresh: true };
      this.topics.set(topic, entry);
      this.subscribe(topic, entry, false);
    }
    if (resume) entry.resumers += 1;
    entry.watchers.add(watcher);
    return () => {
      const current = this.topics.get(topic);
      if (!current || !current.watchers.delete(watcher)) return;
      if (resume) current.resumers -= 1;
      if (current.watchers.size === 0) {
        this.topics.delete(topic);
        clearTimeout(current.retryTimer);
        if (current.state === 'subscribed' || current.state === 'pending') this.send({ type: 'unsubscribe', topic });
      }
    };
  }

  /**
   * Resolves once girok has registered the subscription (with the head seq it reported), or
   * after `timeoutMs` when girok cannot be reached (the caller loads anyway; a reconnect
   * sends `reset`).
   */
  ready(topic: string, timeoutMs = 5_000): Promise<number> {
    const ready = this.topics.get(topic)?.ready ?? Promise.resolve(0);
    return Promise.race([ready, new Promise<number>((resolve) => setTimeout(() => resolve(0), timeoutMs))]);
  }

  /** Sends a frame if connected (typing hints: dropped when offline, as they should be). */
  send(frame: Record<string, unknown>): boolean {
    if (this.socket?.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  private subscribe(topic: string, entry: Topic, resuming: boolean): void {
    if (entry.readySettled) {
      const ready = deferred();
      entry.ready = ready.promise;
      entry.markReady = ready.resolve;
      entry.readySettled = false;
    }
    const frame: Record<string, unknown> = { type: 'subscribe', topic };
    entry.fresh = !(resuming && entry.lastSeq !== undefined);
    if (!entry.fresh) frame.fromSeq = entry.lastSeq;
    entry.state = this.send(frame) ? 'pending' : 'idle';
  }

  private connect(): void {
    if (!this.running) return;
    if (this.status.value !== 'online') this.status.set(this.wasOnline ? 'offline' : 'connecting');
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const socket = new WebSocket(`${scheme}//${location.host}/ws`);
    this.socket = socket;
    socket.onmessage = (message) => {
      let frame: Frame;
      try {
        frame = JSON.parse(String(message.data));
      } catch {
        return;
      }
      this.receive(frame);
    };
    socket.onclose = (close) => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      // Every topic is asked for again on the next connection, refused ones too: some
      // refusals (too many subscriptions, not signed in) were the connection's.
      this.topics.forEach((entry) => {
        clearTimeout(entry.retryTimer);
        entry.state = 'idle';
      });
      if (close.code === 4004 || close.code === 4001) {
        // The session ended (signed out elsewhere, revoked): the app goes to sign-in.
        this.running = false;
        this.status.set('signed-out');
        return;
      }
      this.status.set('offline');
      this.retryTimer = window.setTimeout(() => this.connect(), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, 5_000);
    };
  }

  private deliver(entry: Topic, frame: Frame): void {
    entry.watchers.forEach((watcher) => watcher(frame));
  }

  private welcome(): void {
    this.retryMs = 500;
    this.status.set('online');
    const reconnected = this.wasOnline;
    this.wasOnline = true;
    this.topics.forEach((entry, topic) => {
      if (entry.state === 'refused') return;
      const resuming = reconnected && entry.resumers > 0 && entry.lastSeq !== undefined;
      this.subscribe(topic, entry, resuming);
      if (reconnected && !resuming) this.deliver(entry, { type: 'reset', topic });
    });
    if (reconnected) this.reconnects.update((count) => count + 1);
  }

  private refused(topic: string, entry: Topic, frame: Frame): void {
    const code = String(frame.code);
    if (code === 'RATE_LIMITED') {
      // Too many resumes at once: ask again when girok says.
      entry.state = 'idle';
      entry.retryTimer = window.setTimeout(() => this.subscribe(topic, entry, true), Number(frame.retryAfterMs ?? 1_000));
      return;
    }
    if (code === 'RESUME_TOO_OLD') {
      // Too far behind to replay: subscribe afresh; the watchers load again.
      this.subscribe(topic, entry, false);
      this.deliver(entry, { type: 'reset', topic });
      return;
    }
    if (code === 'ALREADY_SUBSCRIBED') return;
    // Any other refusal ends the subscription: the screens waiting for it load anyway, and
    // one that may pass later (a transient failure) is asked for again.
    entry.markReady(0);
    entry.readySettled = true;
    if (FINAL.has(code)) {
      entry.state = 'refused';
    } else {
      entry.state = 'idle';
      entry.retryTimer = window.setTimeout(() => this.subscribe(topic, entry, true), Number(frame.retryAfterMs ?? 2_000));
    }
    this.deliver(entry, frame);
  }

  private receive(frame: Frame): void {
    if (frame.type === 'welcome') return this.welcome();
    const topic = frame.topic;
    if (!topic) return;
    const entry = this.topics.get(topic);
    if (!entry) return;
    if (frame.type === 'error') return this.refused(topic, entry, frame);
    if (frame.type === 'subscribed') {
      entry.state = 'subscribed';
      const head = Number(frame.headSeq ?? 0);
      // Every event after the head will come: a later resume may start there.
      if (entry.fresh) entry.lastSeq = Math.max(entry.lastSeq ?? 0, head);
      entry.markReady(head);
      entry.readySettled = true;
    }
    if (positioned(frame)) {
      // A resume may repeat what a screen has; each event is passed on once.
      const seq = frame.seq as number;
      if (entry.lastSeq !== undefined && seq <= entry.lastSeq) return;
      entry.lastSeq = seq;
    }
    this.deliver(entry, frame);
  }
}

export const live = new Live();
