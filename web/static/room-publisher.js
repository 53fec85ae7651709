// The room client's publishing side: local camera and microphone, the publisher connection (this
// page offers), mutes and the front/rear camera switch.
import { SIMULCAST_ENCODINGS, VIDEO_CONSTRAINTS, iceGatheringDone, preferVp8, rtcConfig } from "./room-rtc.js";

/** Local media and the publisher connection of a RoomClient (mixed into its prototype). */
export const publisherMethods = {
  canPublish() {
    return this.publishMode !== false && this.grants.includes("publish");
  },

  async _getLocalMedia() {
    const live = this.localStream && this.localStream.getTracks().every((t) => t.readyState === "live");
    if (live) return this.localStream;
    if (this.localStream) this.localStream.getTracks().forEach((t) => t.stop());
    const video = { ...VIDEO_CONSTRAINTS, facingMode: { ideal: this.facingMode } };
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video, audio: true });
    } catch (err) {
      // A kit without a microphone (or a camera) should still publish what it has.
      console.warn("camera+microphone unavailable, trying each alone", err);
      const tracks = [];
      for (const c of [{ video }, { audio: true }]) {
        try { tracks.push(...(await navigator.mediaDevices.getUserMedia(c)).getTracks()); } catch { /* none */ }
      }
      if (!tracks.length) throw err;
      stream = new MediaStream(tracks);
    }
    this.localStream = stream;
    this._applyMuteToTracks();
    this._emit("local-stream", { stream });
    return stream;
  },

  async _publish(gen) {
    const stream = await this._getLocalMedia();
    if (gen !== this._generation) return;
    const pc = new RTCPeerConnection(rtcConfig(this.iceServers));
    this.publisher = pc;
    const watch = this._watch(pc, "publisher", gen);
    pc.addEventListener("connectionstatechange", () => {
      if (gen !== this._generation) return;
      this._emit("publisher-state", { state: pc.connectionState });
      if (pc.connectionState === "connected") this._checkResumed(gen);
    });
    const entries = [];
    for (const track of stream.getTracks()) {
      const init = { direction: "sendonly", streams: [stream] };
      if (track.kind === "video" && this.simulcast !== false) init.sendEncodings = SIMULCAST_ENCODINGS;
      const t = pc.addTransceiver(track, init);
      if (track.kind === "video") preferVp8(t);
      entries.push([t, track.kind === "video" ? "camera" : "microphone"]);
    }
    await pc.setLocalDescription(await pc.createOffer());
    await iceGatheringDone(pc);
    if (gen !== this._generation) return;
    const sources = Object.fromEntries(entries.filter(([t]) => t.mid != null).map(([t, s]) => [t.mid, s]));
    const answer = await this._request({ type: "publish_offer", sdp: pc.localDescription.sdp, sources });
    if (gen !== this._generation) return;
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    watch.negotiated();
    if (this.cameraMuted) this._send({ type: "set_muted", kind: "video", muted: true });
    if (this.micMuted) this._send({ type: "set_muted", kind: "audio", muted: true });
    this._emit("published", {});
  },

  _applyMuteToTracks() {
    if (!this.localStream) return;
    for (const t of this.localStream.getVideoTracks()) t.enabled = !this.cameraMuted;
    for (const t of this.localStream.getAudioTracks()) t.enabled = !this.micMuted;
  },

  /** Turn our camera ("video") or microphone ("audio") off or on. */
  setMuted(kind, muted) {
    if (kind === "video") this.cameraMuted = muted; else this.micMuted = muted;
    this._applyMuteToTracks();
    if (this.publisher) this._send({ type: "set_muted", kind, muted });
    this._emit("local-mute", { kind, muted });
  },

  /** Swap between the front and the rear camera without renegotiating. */
  async switchCamera() {
    if (!this.localStream) return;
    this.facingMode = this.facingMode === "environment" ? "user" : "environment";
    const fresh = await navigator.mediaDevices.getUserMedia({
      video: { ...VIDEO_CONSTRAINTS, facingMode: { exact: this.facingMode } },
    });
    const track = fresh.getVideoTracks()[0];
    track.enabled = !this.cameraMuted;
    const old = this.localStream.getVideoTracks()[0];
    if (this.publisher) {
      const sender = this.publisher.getSenders().find((s) => s.track && s.track.kind === "video");
      if (sender) await sender.replaceTrack(track);
    }
    if (old) { this.localStream.removeTrack(old); old.stop(); }
    this.localStream.addTrack(track);
    this._emit("local-stream", { stream: this.localStream });
  },
};
