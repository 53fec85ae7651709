// What the room client reads of its own connections for the tiles' quality bars and for tests:
// WebRTC statistics per publication, round trips, the uplink, and a sampled picture. No state.

/** The inbound-rtp statistics of every receiver of `kind` on the client's subscriber connection. */
async function inboundStats(client, kind) {
  const pc = client.subscriber;
  if (!pc) return [];
  const out = [];
  for (const t of pc.getTransceivers()) {
    if (t.mid == null || !client.midToPublication.has(t.mid)) continue;
    if (!t.receiver.track || t.receiver.track.kind !== kind) continue;
    const publication_id = client.midToPublication.get(t.mid);
    const pub = client.publications.get(publication_id);
    const report = await t.receiver.getStats();
    let inbound = null;
    report.forEach((s) => { if (s.type === "inbound-rtp" && s.kind === kind) inbound = s; });
    out.push({ publication_id, identity: pub ? pub.identity : null, stats: inbound || {} });
  }
  return out;
}

/** Inbound video per publication: decoded frames, fps, losses. */
export async function inboundVideoStats(client) {
  return (await inboundStats(client, "video")).map(({ publication_id, identity, stats }) => ({
    publication_id, identity,
    framesDecoded: stats.framesDecoded || 0,
    framesPerSecond: stats.framesPerSecond || 0,
    packetsLost: stats.packetsLost || 0,
    packetsReceived: stats.packetsReceived || 0,
    bytesReceived: stats.bytesReceived || 0,
  }));
}

/** Inbound audio per publication: energy and packets. */
export async function inboundAudioStats(client) {
  return (await inboundStats(client, "audio")).map(({ publication_id, identity, stats }) => ({
    publication_id, identity,
    totalAudioEnergy: stats.totalAudioEnergy || 0,
    packetsReceived: stats.packetsReceived || 0,
    packetsLost: stats.packetsLost || 0,
    bytesReceived: stats.bytesReceived || 0,
  }));
}

/** The round trip on a connection's nominated candidate pair, in ms (or null). */
export async function candidateRtt(pc) {
  if (!pc) return null;
  const report = await pc.getStats();
  let rtt = null;
  report.forEach((s) => {
    if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded" && s.currentRoundTripTime != null) {
      rtt = s.currentRoundTripTime * 1000;
    }
  });
  return rtt;
}

/** Uplink figures of the camera on a publisher connection (null without one). */
export async function outboundVideoStats(pc) {
  if (!pc) return null;
  const report = await pc.getStats();
  const out = { framesPerSecond: null, bytesSent: 0, packetsSent: 0, rttMs: null, fractionLost: null, packetsLost: 0 };
  report.forEach((s) => {
    if (s.type === "outbound-rtp" && s.kind === "video") {
      out.framesPerSecond = s.framesPerSecond ?? null;
      out.bytesSent = s.bytesSent || 0;
      out.packetsSent = s.packetsSent || 0;
    } else if (s.type === "remote-inbound-rtp" && s.kind === "video") {
      if (s.roundTripTime != null) out.rttMs = s.roundTripTime * 1000;
      out.fractionLost = s.fractionLost ?? null;
      out.packetsLost = s.packetsLost || 0;
    } else if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded" && out.rttMs == null
               && s.currentRoundTripTime != null) {
      out.rttMs = s.currentRoundTripTime * 1000;
    }
  });
  return out;
}

/** Draw a <video> into a small canvas: {mean, variance} of the grey levels, and its size. */
export function sampleVideo(video) {
  if (!video || !video.videoWidth) return { mean: 0, variance: 0, width: 0, height: 0 };
  const w = 64;
  const h = Math.max(1, Math.round((w * video.videoHeight) / video.videoWidth));
  const canvas = document.createElement("canvas");
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(video, 0, 0, w, h);
  const px = ctx.getImageData(0, 0, w, h).data;
  let sum = 0; let sq = 0; const n = w * h;
  for (let i = 0; i < px.length; i += 4) {
    const g = 0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2];
    sum += g; sq += g * g;
  }
  const mean = sum / n;
  return { mean, variance: sq / n - mean * mean, width: video.videoWidth, height: video.videoHeight };
}
