// Plays one live stream in headless Chromium (Debian's, through
// playwright-core) with several players at once, each in its own page:
//
//   node live_players.mjs BASE_URL STREAM SECONDS PLAYER[,PLAYER…]
//
// PLAYER is `dashjs` (dash.js, manifest.mpd), `shaka-dash` (Shaka Player,
// manifest.mpd, low-latency mode) or `hlsjs` (hls.js, master.m3u8,
// low-latency mode), or one of them and another base URL: `hlsjs@URL`
// plays from URL (a cache in front of the server) instead of BASE_URL. Every 100 ms each page notes the wall clock, the
// video's currentTime, the player's own live-latency figure and the
// glass-to-glass latency of the frame on screen: the publisher burns its
// wall clock (milliseconds modulo 2^24) into the top of each frame as 24
// black or white bars of 10 px, starting at x = 8, rows 0-15, and the page
// reads them back from each presented frame. Prints `{"ready": wall_ms}`
// once every player shows a frame, then, SECONDS later, one JSON line:
// { PLAYER: { samples: [[wall_ms, current_time, latency_s | null,
// glass_ms | null], …], errors: […] }, … }.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const [defaultBase, stream, seconds, players] = process.argv.slice(2);
const here = path.dirname(fileURLToPath(import.meta.url));
const modules = path.join(here, "node_modules");
const LIBS = {
  dashjs: "dashjs/dist/modern/umd/dash.all.min.js",
  "shaka-dash": "shaka-player/dist/shaka-player.compiled.js",
  hlsjs: "hls.js/dist/hls.min.js",
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--autoplay-policy=no-user-gesture-required", "--no-sandbox", "--disable-gpu"],
});

/** Starts SPEC (PLAYER or PLAYER@URL) in a page of its own. */
async function open(spec) {
  const [player, from] = spec.split("@");
  const base = from ?? defaultBase;
  const lib = LIBS[player];
  if (!lib) throw new Error(`unknown player ${player}`);
  const page = await browser.newPage({ viewport: { width: 640, height: 400 } });
  const errors = [];
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text().slice(0, 4000));
  });
  page.on("pageerror", (e) => errors.push(String(e).slice(0, 300)));
  // The page comes from the server's origin, so the player's requests are
  // same-origin, as on a site that hosts its own player.
  const url = `${base}/__player_${player}.html`;
  await page.route(url, (route) =>
    route.fulfill({
      contentType: "text/html",
      body: '<!doctype html><video id="v" muted autoplay playsinline width="320"></video>',
    }),
  );
  await page.goto(url);
  await page.addScriptTag({ path: path.join(modules, lib) });
  await page.evaluate(
    async ([player, base, stream]) => {
      const video = document.getElementById("v");
      const mpd = `${base}/live/${stream}/manifest.mpd`;
      const m3u8 = `${base}/live/${stream}/master.m3u8`;
      let latency = () => null;
      if (player === "dashjs") {
        const p = dashjs.MediaPlayer().create();
        p.on("error", (e) => console.error(`dash.js: ${JSON.stringify(e.error ?? e).slice(0, 200)}`));
        p.initialize(video, mpd, true);
        latency = () => p.getCurrentLiveLatency();
      } else if (player === "shaka-dash") {
        shaka.polyfill.installAll();
        const p = new shaka.Player();
        await p.attach(video);
        p.configure({ streaming: { lowLatencyMode: true } });
        p.addEventListener("error", (e) => console.error(`shaka: ${e.detail?.code}`));
        await p.load(mpd);
        latency = () => p.getStats().liveLatency;
      } else {
        // As the web UI does: without a catch-up rate hls.js stays as far
        // behind as it started (1.6-1.8 s here), above its 1 s target.
        const p = new Hls({ lowLatencyMode: true, maxLiveSyncPlaybackRate: 1.5 });
        p.on(Hls.Events.ERROR, (_, d) => console.error(`hls.js: ${d.type} ${d.details} fatal=${d.fatal} ${d.reason ?? d.error?.message ?? ""} ${d.url ?? d.context?.url ?? ""}`));
        p.loadSource(m3u8);
        p.attachMedia(video);
        latency = () => p.latency;
      }
      // The burned-in clock of each presented frame.
      const canvas = document.createElement("canvas");
      const ctx = canvas.getContext("2d", { willReadFrequently: true });
      let glass = null;
      const onFrame = () => {
        if (video.videoWidth > 0) {
          canvas.width = video.videoWidth;
          canvas.height = video.videoHeight;
          ctx.drawImage(video, 0, 0);
          const row = ctx.getImageData(0, 8, Math.min(canvas.width, 8 + 24 * 10), 1).data;
          let stamp = 0;
          for (let bit = 0; bit < 24; bit++) {
            const x = 8 + bit * 10 + 5;
            if (row[x * 4] > 128) stamp += 2 ** bit;
          }
          const now = Date.now() % 2 ** 24;
          glass = (now - stamp + 2 ** 24) % 2 ** 24;
        }
        video.requestVideoFrameCallback(onFrame);
      };
      video.requestVideoFrameCallback(onFrame);
      window.samples = [];
      setInterval(() => {
        const l = latency();
        window.samples.push([
          Date.now(),
          video.currentTime,
          Number.isFinite(l) ? l : null,
          glass,
        ]);
      }, 100);
    },
    [player, base, stream],
  );
  return { player: spec, page, errors };
}

const opened = [];
try {
  for (const player of players.split(",")) opened.push(await open(player));
  // Every player has shown a frame: say so, then watch SECONDS more.
  const deadline = Date.now() + 30_000;
  for (const { page } of opened) {
    await page.waitForFunction(() => document.getElementById("v").currentTime > 0, null, {
      timeout: Math.max(1, deadline - Date.now()),
    });
  }
  console.log(JSON.stringify({ ready: Date.now() }));
  await new Promise((resolve) => setTimeout(resolve, Number(seconds) * 1000));
  const out = {};
  for (const { player, page, errors } of opened) {
    out[player] = { samples: await page.evaluate(() => window.samples), errors };
  }
  console.log(JSON.stringify(out));
} finally {
  await browser.close();
}
