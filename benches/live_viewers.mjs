// LL-HLS viewers for benches/live_viewers.sh: each viewer follows one
// rendition the way hls.js does in low-latency mode — a blocking playlist
// reload for the next part (_HLS_msn/_HLS_part), then that part — and
// records how long each took and whether any part was skipped.
//
//   node live_viewers.mjs BASE_URL STREAM VIEWERS SECONDS
//
// Prints one JSON line: counts and p50/p99 latencies in milliseconds.
const [base, stream, viewersArg, secondsArg] = process.argv.slice(2);
const viewers = Number(viewersArg);
const until = Date.now() + Number(secondsArg) * 1000;
const media = `${base}/live/${stream}/v1/media.m3u8`;
const playlistTimes = [];
const partTimes = [];
let parts = 0;
let skipped = 0;
let errors = 0;

function lastPart(text) {
  // The newest listed part: the last EXT-X-PART line, and its msn.
  let msn = Number(/#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(text)?.[1] ?? 0);
  let last = null;
  for (const line of text.split("\n")) {
    if (line.startsWith("#EXTINF")) continue;
    if (line.startsWith("#EXT-X-PART:")) {
      const uri = /URI="([^"]+)"/.exec(line)?.[1];
      const m = /^(\d+)\.(\d+)\.m4s/.exec(uri ?? "");
      if (m) last = { msn: Number(m[1]), part: Number(m[2]), uri };
    }
  }
  return last;
}

async function viewer() {
  let text = await (await fetch(media)).text();
  let at = lastPart(text);
  while (Date.now() < until && at) {
    const wantMsn = at.msn;
    const wantPart = at.part + 1;
    const t0 = performance.now();
    const res = await fetch(`${media}?_HLS_msn=${wantMsn}&_HLS_part=${wantPart}`);
    text = await res.text();
    playlistTimes.push(performance.now() - t0);
    if (!res.ok) {
      errors++;
      at = lastPart(text) ?? at;
      continue;
    }
    const next = lastPart(text);
    if (!next) break;
    // Every part after the one we had must be fetched, none skipped.
    const expected = next.msn === at.msn ? next.part - at.part : null;
    if (expected !== null && expected > 1) skipped += expected - 1;
    const t1 = performance.now();
    const part = await fetch(`${base}/live/${stream}/v1/${next.uri}`);
    await part.arrayBuffer();
    partTimes.push(performance.now() - t1);
    if (part.ok) parts++;
    else errors++;
    at = next;
  }
}

const pct = (list, p) => {
  if (list.length === 0) return null;
  const sorted = [...list].sort((a, b) => a - b);
  return Number(sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))].toFixed(1));
};
await Promise.all(Array.from({ length: viewers }, () => viewer().catch(() => errors++)));
console.log(
  JSON.stringify({
    viewers,
    parts,
    skipped,
    errors,
    playlist_ms: { p50: pct(playlistTimes, 50), p99: pct(playlistTimes, 99) },
    part_ms: { p50: pct(partTimes, 50), p99: pct(partTimes, 99) },
  }),
);
