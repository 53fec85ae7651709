// The browser side of the `/ws` contract (signaling/messages.py): one session, one subscriber
// connection (the server offers), an optional publisher connection (we offer), and reconnect.
//
// The client owns the model (participants, publications, which receiver carries which publication);
// a view (room-view.js) listens to its events and draws tiles. Tests reach it as `window.__room`.
//
// Session states ("state" events): connecting -> connected <-> reconnecting; replaced (another tab
// or device took the identity: wait for resume()); ended (refused for good: a revoked or expired
// link, an ended sign-in, a site that lost access). A loss (socket closed, no pong, a peer connection
// failed or disconnected for 1.5 s, an attempt that does not answer) tears everything down and
// starts over with a new socket and new peer connections (aiortc cannot restart ICE), keeping the
// camera. After a reconnect the state says "connected" only once the media is back too.

import { errorText } from "./error-text.js";

// Refusals that retrying cannot change: the page stops and says why (room-view.js).
const ACCESS_ENDED = new Set(["token_revoked", "token_expired", "access_withdrawn", "invalid_token", "unauthenticated"]);
import { NodeHosts, RetryPolicy, watchPeer } from "./reconnect.js";
import { candidateRtt, inboundAudioStats, inboundVideoStats, outboundVideoStats, sampleVideo } from "./room-stats.js";
import { participantMethods } from "./room-participants.js";
import { Requests } from "./session.js";
import { publisherMethods } from "./room-publisher.js";
import { subscriberMethods } from "./room-subscriber.js";

export { VIDEO_CONSTRAINTS, rtcConfig } from "./room-rtc.js";

const PING_INTERVAL_MS = 5_000;
const PONG_TIMEOUT_MS = 12_000;       // a 4G link can hang without closing the socket
// A socket that is not open by then is retried; every other attempt waits longer, so a satellite
// hop (1.5 s round trips: TCP, TLS, upgrade) still gets through.
const OPEN_TIMEOUT_MS = { short: 3_000, long: 8_000 };
const WELCOME_TIMEOUT_MS = 15_000;    // the socket is open: a slow link may still answer the hello
const RESUME_CAP_MS = 8_000;          // after a reconnect, "connected" even if media is still on its way
const PROBE_TIMEOUT_MS = 3_000;       // "is the session still there?" after a network or visibility change

export class RoomClient extends EventTarget {
  /**
   * @param {object} opts  {room, token, iceServers, me, publish: "auto"|false, facingMode}
   */
  constructor(opts) {
    super();
    this.room = opts.room;
    this.token = opts.token ?? null;
    this.iceServers = opts.iceServers || [];
    this.facingMode = opts.facingMode || "user";
    this.publishMode = opts.publish ?? "auto";
    this.me = opts.me || null;           // from the page; replaced by welcome.you
    this.grants = [];
    this.roomName = "";
    this.state = "connecting";
    this.lastError = null;

    this.participants = new Map();       // identity -> Participant (not ourselves)
    this.publications = new Map();       // publication_id -> PublicationInfo
    this.midToPublication = new Map();   // subscriber mid -> publication_id (latest offer)

    this.ws = null;
    this.subscriber = null;
    this.publisher = null;
    this.localStream = null;
    this.cameraMuted = false;
    this.micMuted = false;
    this.subscriberConnectedAt = null;

    this.view = null;                    // set by the page: {videoFor(identity)}
    this._generation = 0;                // bumps on every (re)connect; stale callbacks check it
    this._offerChain = Promise.resolve();
    this.requests = new Requests("", 2);  // id "1" is the hello's
    this._timers = new Set();
    this._closed = false;
    this._lastPong = 0;
    this.retry = new RetryPolicy();
    this.nodes = new NodeHosts(location.host, location.protocol);  // this page's node, then the others
    this.replacedMessage = null;         // what session_replaced said, while we wait for resume()
    this._reconnectTimer = null;
    this._attemptTimer = null;           // this attempt's socket must open / be welcomed by then
    this._resumeTimer = null;
    this._welcomed = false;              // the current socket's hello was accepted
    this._expectSubscriber = false;      // someone else publishes: our subscriber must come up
    this._publishing = false;            // we publish: our publisher must come up
    this._watches = { subscriber: null, publisher: null };
    this._onOnline = () => this._hurry("network back online");
    this._onOffline = () => this._offline();
    this._onVisible = () => { if (document.visibilityState === "visible") this._hurry("page visible again"); };
  }

  // --- lifecycle ---------------------------------------------------------------------------------

  /** Connect (and keep reconnecting until close(), or until another session replaces this one). */
  start() {
    this._closed = false;
    this.replacedMessage = null;
    // a phone coming out of a tunnel, or back from the background: try at once, not at the next tick
    window.addEventListener("online", this._onOnline);
    window.addEventListener("offline", this._onOffline);
    document.addEventListener("visibilitychange", this._onVisible);
    this._connect();
  }

  /** Leave on purpose: tell the server, stop media, never reconnect. */
  close() {
    if (this._closed) return;
    this._closed = true;
    this._send({ type: "leave" });
    clearTimeout(this._reconnectTimer);
    window.removeEventListener("online", this._onOnline);
    window.removeEventListener("offline", this._onOffline);
    document.removeEventListener("visibilitychange", this._onVisible);
    this._teardown();
    this._stopLocalMedia();
  }

  /** After session_replaced: take the session back here (the other tab or device is then replaced). */
  resume() {
    if (this._closed || this.state !== "replaced") return;
    this.retry.reset();
    this._setState("connecting");
    this.start();
  }

  /** Replaced by another session, or refused for good: nothing reconnects by itself. */
  _stopped() {
    return this.state === "replaced" || this.state === "ended";
  }

  _stopLocalMedia() {
    if (this.localStream) this.localStream.getTracks().forEach((t) => t.stop());
    this.localStream = null;
  }

  _setState(state, detail = {}) {
    this.state = state;
    this._emit("state", { state, ...detail });
  }

  _emit(name, detail) {
    this.dispatchEvent(new CustomEvent(name, { detail }));
  }

  _teardown() {
    this._generation += 1;
    // the receivers end with their connection and a <video> showing an ended track goes black:
    // the view keeps each tile's last picture from this event until new frames arrive
    if (this.subscriber) this._emit("media-closing", {});
    clearTimeout(this._attemptTimer);
    clearTimeout(this._resumeTimer);
    for (const watch of Object.values(this._watches)) if (watch) watch.stop();
    this._watches = { subscriber: null, publisher: null };
    this._welcomed = false;
    for (const t of this._timers) clearInterval(t);
    this._timers.clear();
    this.requests.failAll("session ended");
    if (this.ws) {
      this.ws.onopen = this.ws.onmessage = this.ws.onclose = this.ws.onerror = null;
      try { this.ws.close(); } catch { /* already closed */ }
    }
    this.ws = null;
    for (const pc of [this.subscriber, this.publisher]) {
      if (pc) { try { pc.close(); } catch { /* already closed */ } }
    }
    this.subscriber = null;
    this.publisher = null;
    this.subscriberConnectedAt = null;
    this.midToPublication.clear();
    this._offerChain = Promise.resolve();
    // the old receivers are gone with their connection: tiles must not hold ended tracks
    for (const p of this.participants.values()) { p.videoTrack = null; p.audioTracks = []; }
  }

  /** The session is lost: tear it down and try again when the retry policy says. */
  _scheduleReconnect(reason, { refused = false } = {}) {
    if (this._closed || this._stopped()) return;
    if (!this._welcomed) this.nodes.failed();  // not even welcomed: the next attempt tries another node
    this._teardown();
    this._setState("reconnecting", { reason });
    clearTimeout(this._reconnectTimer);
    const delay = this.retry.nextDelay(refused);
    console.info(`reconnect attempt ${this.retry.attempts} in ${Math.round(delay)} ms: ${reason}`);
    this._reconnectTimer = setTimeout(() => this._connect(), delay);
  }

  /** A hint that the network is back: check now instead of at the next timer. */
  _hurry(reason) {
    if (this._closed || this._stopped() || !this.retry.mayHurry) return;
    if (this.state === "connected") {
      if (this._healthy()) this._probe(reason);
      else this._scheduleReconnect(`${reason}, connection unhealthy`);
      return;
    }
    // an attempt waiting for its timer, or one whose packets went into the void: start afresh
    if (this._welcomed) return;  // already back, waiting for the media: let it come
    console.info(`reconnect now: ${reason}`);
    this._connect();
  }

  /**
   * The device has no network at all (a tunnel): say so now rather than when ICE notices (~6 s),
   * and be ready to start afresh the moment "online" comes.
   */
  _offline() {
    if (this._closed || this._stopped() || this.state === "reconnecting") return;
    this._scheduleReconnect("network offline");
  }

  /** Ping now; no pong within PROBE_TIMEOUT_MS means the socket died quietly (NAT, background). */
  _probe(reason) {
    const gen = this._generation;
    const sentAt = Date.now();
    this._send({ type: "ping" });
    const timer = setTimeout(() => {
      this._timers.delete(timer);
      if (gen === this._generation && this._lastPong < sentAt) this._scheduleReconnect(`${reason}, no pong`);
    }, PROBE_TIMEOUT_MS);
    this._timers.add(timer);
  }

  _healthy() {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    const bad = ["disconnected", "failed", "closed"];
    return [this.subscriber, this.publisher].every((pc) => !pc || !bad.includes(pc.connectionState));
  }

  _connect() {
    if (this._closed || this._stopped()) return;
    clearTimeout(this._reconnectTimer);
    this._teardown();
    const gen = this._generation;
    if (this.state !== "reconnecting") this._setState("connecting");
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${this.nodes.current}/ws`);
    this.ws = ws;
    const openMs = this.retry.attempts % 2 === 1 ? OPEN_TIMEOUT_MS.short : OPEN_TIMEOUT_MS.long;
    this._attemptTimer = setTimeout(() => {
      if (gen === this._generation) this._scheduleReconnect("the server did not answer in time");
    }, openMs);
    ws.onopen = () => {
      if (gen !== this._generation) return;
      clearTimeout(this._attemptTimer);
      this._attemptTimer = setTimeout(() => {
        if (gen === this._generation && !this._welcomed) this._scheduleReconnect("no welcome from the server");
      }, WELCOME_TIMEOUT_MS);
      this._send({ type: "hello", id: "1", version: 1, room: this.room, token: this.token });
    };
    ws.onmessage = (ev) => {
      if (gen !== this._generation) return;
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      this._dispatch(msg, gen).catch((err) => {
        console.error("message handling failed", msg.type, err);
        this._toast(`处理 ${msg.type} 失败 Failed to handle ${msg.type}: ${err.message || err}`);
      });
    };
    ws.onclose = (ev) => {
      if (gen !== this._generation) return;
      this._scheduleReconnect(`websocket closed (${ev.code})`);
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  _send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(msg));
      return true;
    }
    return false;
  }

  /** Send a message that needs no reply; false when the session is not open (it is not queued). */
  send(msg) {
    return this._send(msg);
  }

  /** Send a request (any client message) and resolve with the reply carrying the same id. */
  request(msg) {
    return this._request(msg);
  }

  /**
   * Call `handler(msg)` for every feature message of `type` ("rollcall_*" matches a prefix).
   * A handler that throws (or rejects) becomes a toast, never a broken session. Returns an unsubscribe.
   */
  on(type, handler) {
    const prefix = type.endsWith("*") ? type.slice(0, -1) : null;
    const fail = (msg, err) => {
      console.error("message handling failed", msg.type, err);
      this._toast(`处理 ${msg.type} 失败 Failed to handle ${msg.type}: ${(err && err.message) || err}`);
    };
    const listener = (e) => {
      const msg = e.detail;
      if (typeof msg.type !== "string" || (prefix === null ? msg.type !== type : !msg.type.startsWith(prefix))) return;
      try {
        const result = handler(msg);
        if (result && typeof result.catch === "function") result.catch((err) => fail(msg, err));
      } catch (err) {
        fail(msg, err);
      }
    };
    this.addEventListener("message", listener);
    return () => this.removeEventListener("message", listener);
  }

  /** Send a request and resolve with the reply carrying the same id. */
  _request(msg) {
    return this.requests.start(msg, (m) => this._send(m));
  }

  _toast(text, level = "error") {
    this._emit("toast", { text, level });
  }

  // --- server messages ---------------------------------------------------------------------------

  async _dispatch(msg, gen) {
    switch (msg.type) {
      case "welcome":
        return this._onWelcome(msg, gen);
      case "subscribe_offer":
        this._offerChain = this._offerChain
          .then(() => this._onSubscribeOffer(msg, gen))
          .catch((err) => {
            console.error("subscribe offer failed", err);
            this._toast(`订阅协商失败 Subscribe negotiation failed: ${err.message || err}`);
          });
        return undefined;
      case "publish_answer":
        if (msg.id !== "1") this.requests.resolve(msg);
        return undefined;
      case "participant_joined":
        this._upsertParticipant(msg.participant);
        this._emit("participants", {});
        return undefined;
      case "participant_left":
        this._removeParticipant(msg.identity);
        return undefined;
      case "participant_updated":
        // "reconnecting" while its connections are lost (its tiles stay), "connected" when back
        this._upsertParticipant(msg.participant);
        this._emit("participant-state", { identity: msg.participant.identity, state: msg.participant.state });
        this._emit("participants", {});
        return undefined;
      case "session_replaced":
        this._onReplaced(msg);
        return undefined;
      case "publication_added":
        this.publications.set(msg.publication.publication_id, msg.publication);
        this._ensureParticipantFor(msg.publication);
        this._emit("participants", {});
        return undefined;
      case "publication_removed":
        this.publications.delete(msg.publication_id);
        this._attachTracks();
        return undefined;
      case "publication_muted": {
        const pub = this.publications.get(msg.publication_id);
        if (pub) this.publications.set(msg.publication_id, { ...pub, muted: !!msg.muted });
        this._emit("participants", {});
        return undefined;
      }
      case "publication_paused": {
        // the server paused this video: our link cannot carry it now (it resumes by itself)
        const pub = this.publications.get(msg.publication_id);
        if (pub) this.publications.set(msg.publication_id, { ...pub, paused: !!msg.paused });
        this._emit("participants", {});
        return undefined;
      }
      case "pong":
        this._lastPong = Date.now();
        return undefined;
      case "error":
        return this._onError(msg);
      default:
        // Feature messages (room control, command channel, roll-call): a reply resolves its
        // request; every one is passed on as a "message" event for the page's modules.
        if (msg.id !== "1") this.requests.resolve(msg);
        this._emit("message", msg);
        return undefined;
    }
  }

  _onError(msg) {
    const text = errorText(msg.code, msg.message);
    this.lastError = msg;
    if (msg.code === "session_replaced") {
      // refused because a newer session of ours exists (two tabs raced): the same as being told so
      this._onReplaced(msg);
      return;
    }
    if (msg.code === "room_moved") {
      // the room's node changed (or died) under this session: connect again at once, relayed there
      this._scheduleReconnect("the room moved to another node");
      return;
    }
    if (ACCESS_ENDED.has(msg.code)) {
      // the link was revoked or expired, the sign-in ended, the site lost access: retrying cannot help
      this._onAccessEnded(msg, text);
      return;
    }
    if (msg.id === "1" && !this._welcomed) {
      // hello refused (locked, removed, bad token): the banner says why; keep retrying, slowly
      this._emit("join-error", msg);
      this._toast(`无法加入 Cannot join: ${text}`);
      this._scheduleReconnect(`hello refused: ${msg.code}`, { refused: true });
      return;
    }
    this.requests.reject(msg, text);
    this._emit("server-error", msg);
    this._toast(`服务器错误 Server error: ${text}`);
  }

  async _onWelcome(msg, gen) {
    clearTimeout(this._attemptTimer);
    this._welcomed = true;
    this.retry.accepted();
    this.nodes.update(msg.nodes);
    if (msg.reconnect_grace > 0) this.retry.fastWindowMs = msg.reconnect_grace * 1000;
    this.me = { ...(this.me || {}), ...msg.you };
    this.grants = msg.grants || [];
    this.roomName = msg.room_name || "";
    // keep the Participant objects of those still here: their tiles (and <video>) stay as they are
    const present = new Set((msg.participants || []).map((p) => p.identity));
    for (const identity of [...this.participants.keys()]) if (!present.has(identity)) this.participants.delete(identity);
    this.publications.clear();
    for (const p of msg.participants || []) this._upsertParticipant(p);
    for (const pub of msg.publications || []) {
      this.publications.set(pub.publication_id, pub);
      this._ensureParticipantFor(pub);
    }
    this._lastPong = Date.now();
    this._startPing(gen);
    this._expectSubscriber = this._othersPublish();
    this._publishing = this.canPublish();
    this._createSubscriber(gen);
    if (this.state === "reconnecting") {
      this._resumeTimer = setTimeout(() => this._resumed(gen), RESUME_CAP_MS);
      this._checkResumed(gen);
    } else {
      this.retry.reset();
      this._setState("connected");
    }
    this._emit("participants", {});
    if (this._publishing) {
      try {
        await this._publish(gen);
      } catch (err) {
        if (gen !== this._generation) return;
        this._publishing = false;
        this._checkResumed(gen);
        console.error("publish failed", err);
        this._toast(`无法发布摄像头/麦克风 Cannot publish camera/microphone: ${err.message || err}`);
      }
    }
  }

  _othersPublish() {
    return [...this.publications.values()].some((p) => !this.me || p.identity !== this.me.identity);
  }

  /** After a reconnect: "connected" once the connections we need carry media again. */
  _checkResumed(gen) {
    if (gen !== this._generation || this.state !== "reconnecting" || !this._welcomed) return;
    const up = (pc) => !!pc && pc.connectionState === "connected";
    if (this._expectSubscriber && !up(this.subscriber)) return;
    if (this._publishing && !up(this.publisher)) return;
    this._resumed(gen);
  }

  _resumed(gen) {
    if (gen !== this._generation || this.state !== "reconnecting") return;
    clearTimeout(this._resumeTimer);
    this.retry.reset();
    this._setState("connected", { resumed: true });
  }

  /** Refused for good (see ACCESS_ENDED): stop, free the camera, and say why. */
  _onAccessEnded(msg, text) {
    this._teardown();
    clearTimeout(this._reconnectTimer);
    this.participants.clear();
    this.publications.clear();
    this._stopLocalMedia();
    this._toast(`无法继续 Cannot continue: ${text}`);
    this._setState("ended", { reason: msg.code, message: msg.message || "" });
    this._emit("access-ended", { code: msg.code, message: msg.message || "" });
    this._emit("participants", {});
  }

  /** The same identity joined elsewhere: stop here, and do not come back by ourselves. */
  _onReplaced(msg) {
    this.replacedMessage = msg.message || "";
    this._teardown();
    clearTimeout(this._reconnectTimer);
    this.participants.clear();
    this.publications.clear();
    this._stopLocalMedia();  // the camera belongs to the session that took over
    this._setState("replaced", { reason: "session replaced", message: this.replacedMessage });
    this._emit("replaced", { message: this.replacedMessage });
    this._emit("participants", {});
  }

  _startPing(gen) {
    const timer = setInterval(() => {
      if (gen !== this._generation) return;
      if (Date.now() - this._lastPong > PONG_TIMEOUT_MS) {
        this._scheduleReconnect("no pong from the server");
        return;
      }
      this._send({ type: "ping" });
    }, PING_INTERVAL_MS);
    this._timers.add(timer);
  }

  /** Reconnect when `pc` fails, stays disconnected, or does not come up once negotiated. */
  _watch(pc, label, gen) {
    const watch = watchPeer(pc, label, (reason) => { if (gen === this._generation) this._scheduleReconnect(reason); });
    this._watches[label] = watch;
    return watch;
  }

  // --- test and view hooks -----------------------------------------------------------------------

  /** One summary per remote participant: {identity, publication_ids, hasVideo, state}. */
  tiles() {
    return [...this.participants.values()].map((p) => {
      const video = this.view ? this.view.videoFor(p.info.identity) : null;
      const hasVideo = !!(p.videoTrack && p.videoTrack.readyState === "live" && video && video.videoWidth > 0);
      return {
        identity: p.info.identity,
        publication_ids: this.publicationsOf(p.info.identity).map((x) => x.publication_id),
        hasVideo,
        state: p.info.state || "connected",
      };
    });
  }

  /** Inbound video per publication: decoded frames, fps, losses. */
  inboundVideoStats() { return inboundVideoStats(this); }

  /** Inbound audio per publication: energy and packets. */
  inboundAudioStats() { return inboundAudioStats(this); }

  /** Round-trip time to the server on the subscriber connection, in ms (or null). */
  subscriberRtt() { return candidateRtt(this.subscriber); }

  /** Uplink figures of our own camera: {framesPerSecond, bytesSent, packetsSent, rttMs, fractionLost, packetsLost}. */
  outboundVideoStats() { return outboundVideoStats(this.publisher); }

  /** A participant's tile picture, sampled: {mean, variance, width, height} of its grey levels. */
  sampleTile(identity) { return sampleVideo(this.view ? this.view.videoFor(identity) : null); }
}

// One concern a module: the model of who is here, the subscriber connection, the publishing side.
Object.assign(RoomClient.prototype, participantMethods, subscriberMethods, publisherMethods);
