// The room client's model of who is here: participants and their publications, as the server
// announces them (mixed into RoomClient; room-client.js owns the state, these keep it consistent).

/** One participant as the client knows it. */
export class Participant {
  constructor(info) {
    this.info = info;                 // {identity, site, name, role, state}
    this.videoTrack = null;           // the receiver track currently carrying its camera
    this.audioTracks = [];
  }
}

/** Participant and publication bookkeeping of a RoomClient. */
export const participantMethods = {
  _upsertParticipant(info) {
    if (!info || (this.me && info.identity === this.me.identity)) return;
    const existing = this.participants.get(info.identity);
    if (existing) existing.info = info;
    else this.participants.set(info.identity, new Participant(info));
  },

  _ensureParticipantFor(pub) {
    if (this.me && pub.identity === this.me.identity) return;
    if (!this.participants.has(pub.identity)) {
      this._upsertParticipant({ identity: pub.identity, site: "", name: pub.identity });
    }
  },

  _removeParticipant(identity) {
    this.participants.delete(identity);
    for (const [id, pub] of this.publications) if (pub.identity === identity) this.publications.delete(id);
    this._emit("participants", {});
  },

  /** Publication ids of one participant, in the order they were announced. */
  publicationsOf(identity) {
    return [...this.publications.values()].filter((p) => p.identity === identity);
  },
};
