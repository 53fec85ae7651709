// The room client's subscriber connection: the server offers what this page receives, renegotiating
// as publications come and go; `tracks` in each offer says which mid carries which publication.
import { iceGatheringDone, rtcConfig } from "./room-rtc.js";

/** The subscriber connection of a RoomClient (mixed into its prototype). */
export const subscriberMethods = {
  _createSubscriber(gen) {
    const pc = new RTCPeerConnection(rtcConfig(this.iceServers));
    this.subscriber = pc;
    this._watch(pc, "subscriber", gen);
    pc.addEventListener("connectionstatechange", () => {
      if (gen !== this._generation) return;
      const s = pc.connectionState;
      this._emit("subscriber-state", { state: s });
      if (s === "connected") {
        if (this.subscriberConnectedAt === null) this.subscriberConnectedAt = performance.now();
        this._checkResumed(gen);
      }
    });
    // Tracks are attached from the transceivers after each offer; ontrack only nudges the view.
    pc.addEventListener("track", () => { if (gen === this._generation) this._attachTracks(); });
  },

  async _onSubscribeOffer(msg, gen) {
    const pc = this.subscriber;
    if (!pc || gen !== this._generation) return;
    await pc.setRemoteDescription({ type: "offer", sdp: msg.sdp });
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    await iceGatheringDone(pc);
    if (gen !== this._generation) return;
    this._send({ type: "subscribe_answer", sdp: pc.localDescription.sdp });
    this._expectSubscriber = true;
    if (this._watches.subscriber) this._watches.subscriber.negotiated();
    this.midToPublication = new Map(Object.entries(msg.tracks || {}));
    this._tileSizesSent = null;  // new subscriptions start at the full layer: tell them again
    this._attachTracks();
  },

  /** Send the sizes the page shows received videos at (a Map track -> [width, height] in device
   * pixels), by publication id, when they changed. */
  setTileSizes(sizeOfTrack) {
    const pc = this.subscriber;
    if (!pc) return;
    const sizes = {};
    for (const t of pc.getTransceivers()) {
      const size = t.receiver.track && sizeOfTrack.get(t.receiver.track);
      const publication = t.mid != null && this.midToPublication.get(t.mid);
      if (size && publication) sizes[publication] = size;
    }
    const key = JSON.stringify(sizes);
    if (key === this._tileSizesSent || !Object.keys(sizes).length) return;
    if (this._send({ type: "tile_sizes", sizes })) this._tileSizesSent = key;
  },

  /** Recompute which receiver track belongs to which participant, from the transceivers. */
  _attachTracks() {
    for (const p of this.participants.values()) { p.videoTrack = null; p.audioTracks = []; }
    const pc = this.subscriber;
    if (pc) {
      for (const t of pc.getTransceivers()) {
        if (t.mid == null || !this.midToPublication.has(t.mid)) continue;
        if (t.currentDirection === "inactive" || t.currentDirection === "stopped") continue;
        const pub = this.publications.get(this.midToPublication.get(t.mid));
        const track = t.receiver.track;
        if (!pub || !track) continue;
        this._ensureParticipantFor(pub);
        const p = this.participants.get(pub.identity);
        if (!p) continue;
        if (track.kind === "video") {
          if (!p.videoTrack || pub.source === "camera") p.videoTrack = track;
        } else {
          p.audioTracks.push(track);
        }
      }
    }
    this._emit("participants", {});
  },
};
