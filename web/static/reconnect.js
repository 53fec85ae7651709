// When a lost session tries again, and when a peer connection counts as lost. No DOM, no sockets:
// room-client.js drives these, tests/e2e/test_reconnect_browser.py checks the schedule directly.
//
// The server keeps a lost participant's tiles for its grace period (30 s by default) and lets the same
// identity take them over, so a phone leaving a tunnel must be back fast: the first try goes at once,
// the next ones about every second while the server still waits for us, then back off up to 15 s so
// a dead server is not hammered. A hello the server refused (room locked, removed, bad token) is not a
// network problem: it backs off from the start, and "the network is back" hints do not hurry it.

export const FAST_WINDOW_MS = 30_000;
export const FAST_RETRY_MS = 1_000;
export const BACKOFF_MIN_MS = 2_000;
export const BACKOFF_MAX_MS = 15_000;
// Chromium says "disconnected" after ~2.5 s without packets; it rarely heals once the network changed,
// and aiortc cannot restart ICE, so a new connection is the only way back.
export const DISCONNECTED_GRACE_MS = 1_500;
// A negotiated connection that is not up by then will not be (no route, UDP blocked).
export const PC_CONNECT_TIMEOUT_MS = 10_000;

/** The delay before each attempt after the session was lost. */
export class RetryPolicy {
  constructor({ now = () => Date.now(), random = Math.random, fastWindowMs = FAST_WINDOW_MS } = {}) {
    this._now = now;
    this._random = random;
    this.fastWindowMs = fastWindowMs;  // the server's grace period, once its welcome said so
    this.reset();
  }

  /** The session is fully back: the next loss starts from "at once" again. */
  reset() {
    this.lostAt = null;
    this.attempts = 0;      // attempts since the loss
    this.slow = 0;          // attempts after the fast window
    this.refusals = 0;      // hellos refused in a row
    this.refused = false;   // was the last failure a refusal?
  }

  /** The server accepted a hello: refusals no longer count. */
  accepted() {
    this.refusals = 0;
    this.refused = false;
  }

  /** How long to wait before the next attempt; `refused`: the server said no to our hello. */
  nextDelay(refused = false) {
    const now = this._now();
    if (this.lostAt === null) this.lostAt = now;
    this.attempts += 1;
    this.refused = refused;
    if (refused) {
      this.refusals += 1;
      return this._backoff(this.refusals - 1);
    }
    if (this.attempts === 1) return 0;
    if (now - this.lostAt < this.fastWindowMs) return FAST_RETRY_MS * (0.75 + 0.5 * this._random());
    this.slow += 1;
    return this._backoff(this.slow - 1);
  }

  /** Whether "the network is back" may skip the wait (never after a refusal). */
  get mayHurry() {
    return !this.refused;
  }

  _backoff(n) {
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** n);
    return Math.min(BACKOFF_MAX_MS, base * (0.75 + 0.5 * this._random()));
  }
}

/**
 * Call `onLost(reason)` once when `pc` fails, stays "disconnected" for `graceMs`, or is still not
 * connected `connectMs` after `negotiated()` was called. `stop()` forgets the connection.
 */
export function watchPeer(pc, label, onLost, { graceMs = DISCONNECTED_GRACE_MS, connectMs = PC_CONNECT_TIMEOUT_MS } = {}) {
  let graceTimer = null;
  let connectTimer = null;
  let stopped = false;
  const stop = () => {
    stopped = true;
    clearTimeout(graceTimer);
    clearTimeout(connectTimer);
    pc.removeEventListener("connectionstatechange", onChange);
  };
  const lost = (why) => {
    if (stopped) return;
    stop();
    onLost(`${label} ${why}`);
  };
  function onChange() {
    const s = pc.connectionState;
    clearTimeout(graceTimer);
    if (s === "connected") clearTimeout(connectTimer);
    else if (s === "failed") lost("connection failed");
    else if (s === "disconnected") graceTimer = setTimeout(() => lost("connection lost"), graceMs);
  }
  pc.addEventListener("connectionstatechange", onChange);
  return {
    /** Descriptions are exchanged: from now on the connection has `connectMs` to come up. */
    negotiated() {
      if (stopped || connectTimer !== null || pc.connectionState === "connected") return;
      connectTimer = setTimeout(() => {
        if (pc.connectionState !== "connected") lost("did not connect");
      }, connectMs);
    },
    stop,
  };
}

/**
 * Where the next attempt goes. Several nodes serve one deployment and any of them relays a session
 * to its room's node; a page whose own node died cannot reach it, so after an attempt that was not
 * welcomed the next one tries the next live node the last welcome named (`welcome.nodes`).
 */
export class NodeHosts {
  constructor(own, protocol) {
    this.protocol = protocol;   // "http:" or "https:": a page may not open ws:// from https
    this.hosts = [own];
    this.index = 0;
  }

  /** The host (host:port) the next socket opens to. */
  get current() {
    return this.hosts[this.index % this.hosts.length];
  }

  /** A welcome named the live nodes' public base URLs: keep ours first and the ones of this page's scheme. */
  update(urls) {
    const current = this.current;
    const others = [];
    for (const url of urls || []) {
      let parsed;
      try { parsed = new URL(url); } catch { continue; }
      if (parsed.protocol === this.protocol && parsed.host !== current && !others.includes(parsed.host)) others.push(parsed.host);
    }
    const kept = this.hosts.filter((h) => h !== current && !others.includes(h));
    this.hosts = [current, ...others, ...kept];
    this.index = 0;
  }

  /** An attempt failed before a welcome: the next one goes to the next node. */
  failed() {
    this.index = (this.index + 1) % this.hosts.length;
  }
}
