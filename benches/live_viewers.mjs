// LL-HLS viewers for benches/live_viewers.sh: each viewer follows one
// rendition the way hls.js does in low-latency mode — a blocking playlist
// reload for the next part (_HLS_msn/_HLS_part), then that part — and
// records how long each took and whether any part was skipped.
//
//   node live_viewers.mjs BASE_URL STREAM VIEWERS SECONDS
//
// Prints one JSON line: counts and p50/p99 latencies in milliseconds (with
// RAW_TIMES set, every latency too).
const [basesArg, stream, viewersArg, secondsArg] = process.argv.slice(2);
// BASE_URL may list several bases, comma-separated: the viewers are spread
// over them in turn (the edges of a cluster).
const viewers = Number(viewersArg);
const until = Date.now() + Number(secondsArg) * 1000;
const bases = basesArg.split(",");
const playlistTimes = [];
const partTimes = [];
let parts = 0;
let skipped = 0;
let errors = 0;
// What the failures were: HTTP status or error message, counted.
const why = {};
const failed = (reason) => {
  errors++;
  why[reason] = (why[reason] ?? 0) + 1;
};

/// Every part listed, in order, as {msn, part, uri}.
function listedParts(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("#EXT-X-PART:")) continue;
    const uri = /URI="([^"]+)"/.exec(line)?.[1];
    const m = /^(\d+)\.(\d+)\.m4s/.exec(uri ?? "");
    if (m) out.push({ msn: Number(m[1]), part: Number(m[2]), uri });
  }
  return out;
}

const after = (a, b) => a.msn > b.msn || (a.msn === b.msn && a.part > b.part);

async function viewer(index) {
  const base = bases[index % bases.length];
  const media = `${base}/live/${stream}/v1/media.m3u8`;
  // Start at the newest part, then play every part that follows, in
  // order, as a player does: block for the next one, fetch what is new.
  let text = await (await fetch(media)).text();
  let at = listedParts(text).at(-1);
  while (Date.now() < until && at) {
    const t0 = performance.now();
    // The segment of our part is complete: the next part is the next
    // segment's first (a reload for another part of this one would be
    // answered at once with nothing new, and asked again and again).
    const complete = text.split("\n").includes(`${at.msn}.m4s`);
    const next = complete ? `_HLS_msn=${at.msn + 1}&_HLS_part=0` : `_HLS_msn=${at.msn}&_HLS_part=${at.part + 1}`;
    // A connection the server closed as a request went out (keep-alive's
    // race) is retried, as players do; it is counted.
    let res;
    try {
      res = await fetch(`${media}?${next}`);
      text = await res.text();
    } catch (e) {
      failed(String(e.cause?.code ?? e.message));
      continue;
    }
    playlistTimes.push(performance.now() - t0);
    if (!res.ok) {
      failed(`playlist ${res.status}`);
      continue;
    }
    const listed = listedParts(text);
    const fresh = listed.filter((p) => after(p, at));
    // Parts between ours and the first still listed left the playlist
    // before we got them.
    if (fresh.length > 0 && listed.length > 0 && after(listed[0], at)) {
      const first = listed[0];
      if (first.msn === at.msn) skipped += first.part - at.part - 1;
      else skipped += 1;
    }
    for (const p of fresh) {
      const t1 = performance.now();
      let part;
      try {
        part = await fetch(`${base}/live/${stream}/v1/${p.uri}`);
        await part.arrayBuffer();
      } catch (e) {
        failed(String(e.cause?.code ?? e.message));
        break;
      }
      partTimes.push(performance.now() - t1);
      if (part.ok) parts++;
      else failed(`part ${part.status}`);
      at = p;
    }
  }
}

const pct = (list, p) => {
  if (list.length === 0) return null;
  const sorted = [...list].sort((a, b) => a - b);
  return Number(sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))].toFixed(1));
};
await Promise.all(Array.from({ length: viewers }, (_, i) => viewer(i).catch((e) => failed(String(e.cause?.code ?? e.message)))));
console.log(
  JSON.stringify({
    viewers,
    parts,
    skipped,
    errors,
    why,
    playlist_ms: { p50: pct(playlistTimes, 50), p99: pct(playlistTimes, 99) },
    part_ms: { p50: pct(partTimes, 50), p99: pct(partTimes, 99) },
    // Every time, for a caller that merges several generators' runs.
    ...(process.env.RAW_TIMES ? { playlist_times: playlistTimes, part_times: partTimes } : {}),
  }),
);
