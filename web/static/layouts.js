// The arithmetic of the wall's layouts, free of the DOM: how many columns a grid takes, how large
// the spotlight strip's tiles are so that every one fits.

export const FIXED_LAYOUTS = { "2x2": 4, "3x3": 9, "4x4": 16 };
const STRIP_SHARE = 0.32;   // of a landscape wall's width, at most, for the spotlight strip
const STRIP_TILE_SHARE = 0.2;

/**
 * Where the spotlight strip goes and how large its tiles are so that all `n` fit at 16:9 in a
 * W x H wall: beside the main tile on a landscape screen, below it on a portrait one, in as many
 * columns as make the tiles largest. Returns {side, vars} (CSS custom properties for the grid).
 */
export function spotlightStrip(n, W, H, gap) {
  if (n === 0) return { side: "none", vars: {} };
  let best = { cols: 1, w: 0 };
  if (W >= H) {
    for (let cols = 1; cols <= 4; cols += 1) {
      const rows = Math.ceil(n / cols);
      const byHeight = ((H - (rows - 1) * gap) / rows) * 16 / 9;
      const byWidth = Math.min(W * STRIP_TILE_SHARE, (W * STRIP_SHARE - cols * gap) / cols);
      const w = Math.min(byHeight, byWidth);
      if (w > best.w) best = { cols, w };
    }
    const rows = Math.ceil(n / best.cols);
    const h = (best.w * 9) / 16;
    return { side: "right", vars: {
      "--strip-cols": String(best.cols), "--strip-rows": String(rows),
      "--strip-w": `${Math.floor(best.w)}px`, "--strip-h": `${Math.floor(h)}px`,
    } };
  }
  const mainH = Math.min((W * 9) / 16, H / 2);
  const rest = H - mainH - gap;
  for (let cols = 1; cols <= 4; cols += 1) {
    const rows = Math.ceil(n / cols);
    const byWidth = (W - (cols - 1) * gap) / cols;
    const byHeight = ((rest - (rows - 1) * gap) / rows) * 16 / 9;
    const w = Math.min(byWidth, byHeight);
    if (w > best.w) best = { cols, w };
  }
  return { side: "below", vars: {
    "--strip-cols": String(best.cols), "--strip-rows": String(Math.ceil(n / best.cols)),
    "--strip-w": `${Math.floor(best.w)}px`, "--strip-h": `${Math.floor((best.w * 9) / 16)}px`,
    "--main-h": `${Math.floor(mainH)}px`,
  } };
}

/** The grid's columns and rows that make `n` tiles largest at 16:9 in a W x H wall. */
export function gridFit(n, W, H) {
  let best = { cols: 1, size: 0 };
  for (let cols = 1; cols <= n; cols += 1) {
    const rows = Math.ceil(n / cols);
    const w = Math.min(W / cols, ((H / rows) * 16) / 9);
    if (w > best.size) best = { cols, size: w };
  }
  return { cols: best.cols, rows: Math.ceil(n / best.cols) };
}
