// The app's one WebSocket (/ws, signed in by the session cookie): topics are subscribed once
// however many screens watch them, every frame goes to the screens watching its topic, and a
// dropped socket comes back by itself (backing off) and resumes each resumable topic from the
// last seq seen, so nothing sent meanwhile is missed or shown twice. `status` says whether
// the app is connected, for the offline banner.

import { Cell } from './store';

export type Frame = { type: string; topic?: string; seq?: number; [key: string]: unknown };
type Watcher = (frame: Frame) => void;

/** Topics whose events a resume replays (`feed` is live-only: screens reload it instead). */
const resumable = (topic: string) => topic !== 'feed';

type Topic = { watchers: Set<Watcher>; lastSeq?: number; subscribed: boolean };

export type Status = 'connecting' | 'online' | 'offline' | 'signed-out';

class Live {
  readonly status = new Cell<Status>('connecting');
  /** Bumped after each reconnect, so live-only screens can reload. */
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
    this.socket?.close(1000);
    this.socket = undefined;
    this.topics.clear();
    this.wasOnline = false;
    this.status.set('signed-out');
  }

  /** For tests and the reconnect button: drops the socket as a network would. */
  drop(): void {
    this.socket?.close(4000, 'dropped by the client');
  }

  /**
   * Watches `topic`; the first watcher subscribes it (resuming after `fromSeq` when given).
   * Returns the function that stops watching (the last one unsubscribes).
   */
  watch(topic: string, watcher: Watcher, fromSeq?: number): () => void {
    let entry = this.topics.get(topic);
    if (!entry) {
      entry = { watchers: new Set(), lastSeq: fromSeq, subscribed: false };
      this.topics.set(topic, entry);
      this.subscribe(topic, entry);
    } else if (fromSeq !== undefined && entry.lastSeq === undefined) {
      entry.lastSeq = fromSeq;
    }
    entry.watchers.add(watcher);
    return () => {
      const current = this.topics.get(topic);
      if (!current) return;
      current.watchers.delete(watcher);
      if (current.watchers.size === 0) {
        this.topics.delete(topic);
        if (current.subscribed) this.send({ type: 'unsubscribe', topic });
      }
    };
  }

  /** Sends a frame if connected (typing hints: dropped when offline, as they should be). */
  send(frame: Record<string, unknown>): boolean {
    if (this.socket?.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  private subscribe(topic: string, entry: Topic): void {
    const frame: Record<string, unknown> = { type: 'subscribe', topic };
    if (resumable(topic) && entry.lastSeq !== undefined) frame.fromSeq = entry.lastSeq;
    entry.subscribed = this.send(frame);
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
      this.topics.forEach((entry) => (entry.subscribed = false));
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

  private receive(frame: Frame): void {
    if (frame.type === 'welcome') {
      this.retryMs = 500;
      this.status.set('online');
      this.topics.forEach((entry, topic) => this.subscribe(topic, entry));
      if (this.wasOnline) this.reconnects.update((count) => count + 1);
      this.wasOnline = true;
      return;
    }
    const topic = frame.topic;
    if (!topic) return;
    const entry = this.topics.get(topic);
    if (!entry) return;
    if (typeof frame.seq === 'number' && resumable(topic)) {
      // A resume may repeat what a screen loaded itself; each frame is passed on once.
      if (entry.lastSeq !== undefined && frame.seq <= entry.lastSeq) return;
      entry.lastSeq = frame.seq;
    }
    entry.watchers.forEach((watcher) => watcher(frame));
  }
}

export const live = new Live();
