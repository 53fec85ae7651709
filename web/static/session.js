// The command session every page outside a room shares: a reconnecting /command/ws socket that
// resumes from the last event id it saw, applies each event once (by id), and answers requests.
import { errorText } from "./error-text.js";

/** A reconnecting command socket: `onEvent(msg)` once per event id; `request(msg)` resolves with the reply. */
export class CommandSocket {
  constructor(token, onEvent, onState) {
    this.token = token; this.onEvent = onEvent; this.onState = onState;
    this.lastId = null; this.seen = new Set(); this.pending = new Map(); this.nextId = 1; this.attempt = 0;
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
      for (const p of this.pending.values()) p.reject(new Error("连接断开 disconnected"));
      this.pending.clear();
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
    const p = msg.id != null ? this.pending.get(msg.id) : null;
    if (!p) return;
    this.pending.delete(msg.id);
    if (msg.type === "error") p.reject(new Error(errorText(msg.code, msg.message))); else p.resolve(msg);
  }
  request(msg) {
    const id = `c${this.nextId++}`;
    return new Promise((resolve, reject) => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) { reject(new Error("未连接 not connected")); return; }
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ ...msg, id }));
    });
  }
}

export function cmpId(a, b) {
  const [am, as] = a.split("-").map(Number); const [bm, bs] = b.split("-").map(Number);
  return am - bm || as - bs;
}
