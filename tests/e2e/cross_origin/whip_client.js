// A WHIP/WHEP client as a page on another origin would write it: Bearer token, no cookies.

const GATHER_TIMEOUT_MS = 5000;

function gatheringComplete(pc) {
  // No trickle ICE (the server answers PATCH with 501): every candidate goes in the offer.
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, GATHER_TIMEOUT_MS);
  });
}

// POST the offer; the session URL is resolved against the endpoint, not this page's origin.
export async function negotiate(pc, endpoint, token) {
  await pc.setLocalDescription(await pc.createOffer());
  await gatheringComplete(pc);
  const response = await fetch(endpoint, {
    method: "POST",
    mode: "cors",
    credentials: "omit",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/sdp" },
    body: pc.localDescription.sdp,
  });
  const body = await response.text();
  if (response.status !== 201) return { status: response.status, error: body };
  await pc.setRemoteDescription({ type: "answer", sdp: body });
  return { status: 201, location: new URL(response.headers.get("Location"), endpoint).href };
}

export async function end(location, token) {
  const response = await fetch(location, {
    method: "DELETE", mode: "cors", credentials: "omit", headers: { Authorization: `Bearer ${token}` },
  });
  return response.status;
}

export function params() {
  const query = new URLSearchParams(window.location.search);
  return { endpoint: query.get("endpoint"), token: query.get("token") };
}
