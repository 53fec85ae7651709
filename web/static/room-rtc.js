// WebRTC helpers of the room client: the RTCConfiguration for the page's ICE servers, waiting for
// ICE gathering (the server does not trickle), VP8 first, and the camera's constraints.

const ICE_GATHER_CAP_MS = 2_000;      // the server does not trickle: send whatever we have by then

// 960x540 at least: Chromium sends its third simulcast layer only from a capture this large.
export const VIDEO_CONSTRAINTS = { width: { ideal: 960 }, height: { ideal: 540 }, frameRate: { ideal: 30 } };
// Three layers, lowest first (the server's answer accepts them by rid): a tile of a wall gets a
// quarter, the spotlight the full picture.
export const SIMULCAST_ENCODINGS = [
  { rid: "q", scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: "h", scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: "f", maxBitrate: 1_500_000 },
];

/** Wait until ICE gathering is complete, or until `capMs` has passed. */
export function iceGatheringDone(pc, capMs = ICE_GATHER_CAP_MS) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = () => { if (pc.iceGatheringState === "complete") done(); };
    const timer = setTimeout(done, capMs);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

/** Put VP8 first and H264 next on a video transceiver, where the browser lets us. */
export function preferVp8(transceiver) {
  if (typeof transceiver.setCodecPreferences !== "function") return;
  const caps = (RTCRtpReceiver.getCapabilities && RTCRtpReceiver.getCapabilities("video")) || null;
  if (!caps) return;
  const rank = (c) => {
    const m = c.mimeType.toLowerCase();
    if (m === "video/vp8") return 0;
    if (m === "video/h264") return 1;
    return 2;
  };
  const codecs = [...caps.codecs].sort((a, b) => rank(a) - rank(b));
  try {
    transceiver.setCodecPreferences(codecs);
  } catch (err) {
    console.warn("setCodecPreferences refused", err);
  }
}

/**
 * The RTCConfiguration for the page's ICE servers: plain URL strings ("stun:host:3478") and
 * `{urls, username, credential}` entries (TURN with time-limited credentials) alike.
 */
export function rtcConfig(iceServers) {
  const plain = [];
  const entries = [];
  for (const server of iceServers || []) {
    if (typeof server === "string") {
      // Chromium refuses the whole configuration for a TURN URL without credentials: skip that one
      if (/^turns?:/i.test(server)) console.warn("TURN server without credentials ignored", server);
      else if (server) plain.push(server);
      continue;
    }
    const urls = server && (Array.isArray(server.urls) ? server.urls.filter(Boolean) : server.urls);
    if (!urls || !urls.length) continue;
    const entry = { urls };
    if (server.username != null) entry.username = String(server.username);
    if (server.credential != null) entry.credential = String(server.credential);
    const turn = [].concat(urls).some((u) => /^turns?:/i.test(u));
    if (turn && (entry.username == null || entry.credential == null)) {
      console.warn("TURN server without credentials ignored", urls);
      continue;
    }
    entries.push(entry);
  }
  if (plain.length) entries.unshift({ urls: plain });
  return { iceServers: entries, bundlePolicy: "max-bundle" };
}
