// Sessions with the server, shared by every page: the table of requests waiting for their replies
// (the room client and the command socket both use it), and the command session of pages outside a
// room: a reconnecting /command/ws socket that resumes from the last event id it saw, applies each
// event once (by id), and answers requests.
import { errorText } from "./error-text.js";

/** Requests waiting for the reply that carries their id: one table per socket. */
export class Requests {
  constructor(prefix = "", first = 1) { this.prefix = prefix; this.next = first; this.pending = new Map(); }

  /** Send `msg` with a fresh id through `send` (which returns false when it cannot) and resolve with the reply. */
  start(msg, send) {
    const id = `${this.prefix}${this.next++}`;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      if (!send({ ...msg, id })) {
        this.pending.delete(id);
        reject(new Error("not connected"));
      }
    });
  }

  /** Resolve the request `msg` answers; false when none waits for it. */
  resolve(msg) {
    const waiting = msg.id != null ? this.pending.get(msg.id) : null;
    if (!waiting) return false;
    this.pending.delete(msg.id);
    waiting.resolve(msg);
    return true;
  }

  /** Reject the request an error reply answers (its code on the Error); false when none waits for it. */
  reject(msg, text) {
    const waiting = msg.id != null ? this.pending.get(msg.id) : null;
    if (!waiting) return false;
    this.pending.delete(msg.id);
    const err = new Error(text);
    err.code = msg.code;
    waiting.reject(err);
    return true;
  }

  /** Reject every waiting request: the socket is gone. */
  failAll(text) {
    for (const { reject } of this.pending.values()) reject(new Error(text));
    this.pending.clear();
  }
}

/** A reconnecting command socket: `onEvent(msg)` once per event id; `request(msg)` resolves with the reply. */
export class CommandSocket {
  constructor(token, onEvent, onState) {
    this.token = token; this.onEvent = onEvent; this.onState = onState;
    this.lastId = null; this.seen = new Set(); this.requests = new Requests("c"); this.attempt = 0;
    this.connect();
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const qs = this.token ? `?token=${encodeURIComponent(this.token)}` : "";
    const ws = new WebSocket(`${scheme}://${location.host}/command/ws${qs}`);
    this.ws = ws;
    ws.onopen = () => { this.attempt = 0; this.request({ type: "command_subscribe", after: this.lastId }).then(() => this.onState("live")); };
    ws.onmessage = (ev) => this.handle(JSON.parse(ev.data));
    ws.onclose = () => {
      this.onState("offline");
      this.requests.failAll("连接断开 disconnected");
      setTimeout(() => this.connect(), Math.min(10000, 500 * 2 ** this.attempt++));
    };
  }

  handle(msg) {
    if (msg.type === "command_event") {
      if (this.seen.has(msg.event.id)) return;
      this.seen.add(msg.event.id);
      if (!this.lastId || cmpId(msg.event.id, this.lastId) > 0) this.lastId = msg.event.id;
      this.onEvent(msg);
      return;
    }
    // (the Error carries no code here: unlike the room client, this socket toasts no server error
    // itself, so callers say every failure)
    if (msg.type === "error") this.requests.reject({ id: msg.id }, errorText(msg.code, msg.message));
    else this.requests.resolve(msg);
  }

  request(msg) {
    const send = (m) => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
      this.ws.send(JSON.stringify(m));
      return true;
    };
    return this.requests.start(msg, send).catch((err) => {
      throw err.message === "not connected" ? new Error("未连接 not connected") : err;
    });
  }
}

/** Order of two stream event ids ("<ms>-<seq>"). */
export function cmpId(a, b) {
  const [am, as] = a.split("-").map(Number); const [bm, bs] = b.split("-").map(Number);
  return am - bm || as - bs;
}
