// Client of the server's live WebSocket (/ws/live). Charts subscribe with a PromQL
// query and receive the query's value each time new samples are stored, at most
// once per second, so they can append points without fetching the range again.
//
// Messages to the server:   {"subscribe": {"id", "query"}}, {"unsubscribe": {"id"}}
// Messages from the server: {"id", "t", "result": [{"metric", "value": [t, "v"]}]}
//                           {"id", "error"}

import type { VectorSample } from './api';
import { requestReload } from './state';

export interface LiveUpdate {
  timeS: number;
  result: VectorSample[];
}

interface Subscription {
  query: string;
  onUpdate: (update: LiveUpdate) => void;
  onError: (message: string) => void;
}

type ConnectionListener = (connected: boolean) => void;

const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30_000;
// The socket stays open this long after the last unsubscribe, because a page change
// unsubscribes every chart and the next page subscribes again right away.
const IDLE_CLOSE_MS = 10_000;

export class LiveClient {
  private socket: WebSocket | null = null;
  private readonly subscriptions = new Map<string, Subscription>();
  private nextId = 1;
  private retryMs = RETRY_MIN_MS;
  private retryTimer = 0;
  private lostConnection = false;
  private idleTimer = 0;
  private connected = false;
  private readonly connectionListeners = new Set<ConnectionListener>();

  constructor(private readonly url: () => string) {}

  /** Subscribe to a query; the returned function unsubscribes. */
  subscribe(query: string, onUpdate: Subscription['onUpdate'], onError: Subscription['onError']): () => void {
    const id = `s${this.nextId}`;
    this.nextId += 1;
    this.subscriptions.set(id, { query, onUpdate, onError });
    window.clearTimeout(this.idleTimer);
    this.ensureSocket();
    this.send({ subscribe: { id, query } });
    return () => {
      if (!this.subscriptions.delete(id)) return;
      this.send({ unsubscribe: { id } });
      if (this.subscriptions.size === 0) {
        this.idleTimer = window.setTimeout(() => this.close(), IDLE_CLOSE_MS);
      }
    };
  }

  onConnectionChange(listener: ConnectionListener): () => void {
    this.connectionListeners.add(listener);
    listener(this.connected);
    return () => {
      this.connectionListeners.delete(listener);
    };
  }

  private ensureSocket(): void {
    if (this.socket || this.retryTimer) return;
    const socket = new WebSocket(this.url());
    this.socket = socket;
    socket.addEventListener('open', () => {
      this.retryMs = RETRY_MIN_MS;
      this.setConnected(true);
      // Points that arrived while the socket was down (a server restart, say, after which
      // agents send their spools) come only with the range: fetch it again.
      if (this.lostConnection) requestReload();
      this.lostConnection = false;
      for (const [id, subscription] of this.subscriptions) {
        this.send({ subscribe: { id, query: subscription.query } });
      }
    });
    socket.addEventListener('message', (event) => this.receive(event.data));
    socket.addEventListener('close', () => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.lostConnection = true;
      this.setConnected(false);
      if (this.subscriptions.size > 0) this.scheduleRetry();
    });
  }

  private scheduleRetry(): void {
    this.retryTimer = window.setTimeout(() => {
      this.retryTimer = 0;
      if (this.subscriptions.size > 0) this.ensureSocket();
    }, this.retryMs);
    this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2);
  }

  private receive(data: unknown): void {
    if (typeof data !== 'string') return;
    let message: { id?: string; t?: number; result?: VectorSample[]; error?: string };
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    const subscription = message.id ? this.subscriptions.get(message.id) : undefined;
    if (!subscription) return;
    if (typeof message.error === 'string') {
      subscription.onError(message.error);
    } else if (typeof message.t === 'number' && Array.isArray(message.result)) {
      subscription.onUpdate({ timeS: message.t, result: message.result });
    }
  }

  private send(message: object): void {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  private setConnected(connected: boolean): void {
    this.connected = connected;
    for (const listener of this.connectionListeners) listener(connected);
  }

  private close(): void {
    if (this.subscriptions.size > 0) return;
    this.socket?.close(1000, 'no subscriptions');
    this.socket = null;
  }
}

export const live = new LiveClient(() => {
  const scheme = window.location.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${window.location.host}/ws/live`;
});
