// Plays one VOD asset in headless Chromium (Debian's, through
// playwright-core) with dash.js and Shaka Player (manifest.mpd) and hls.js
// (master.m3u8), one page each:
//
//   node vod_players.mjs BASE_URL ASSET SECONDS
//
// Each page notes every SourceBuffer the player creates. Once the video
// has played SECONDS (or has ended), prints one JSON line:
// { PLAYER: { played, ended, buffers: [[mime, [[start, end], …]], …],
//   failed: [[status, url], …], errors: […] }, … }
// `failed` lists every HTTP response of 400 or more the page received.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const [base, asset, seconds] = process.argv.slice(2);
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

async function play(player) {
  const page = await browser.newPage({ viewport: { width: 640, height: 400 } });
  const errors = [];
  const failed = [];
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text().slice(0, 400));
  });
  page.on("pageerror", (e) => errors.push(String(e).slice(0, 300)));
  page.on("response", (r) => {
    if (r.status() >= 400) failed.push([r.status(), r.url()]);
  });
  const url = `${base}/__vod_${player}.html`;
  await page.route(url, (route) =>
    route.fulfill({
      contentType: "text/html",
      body: '<!doctype html><video id="v" muted autoplay playsinline width="320"></video>',
    }),
  );
  await page.goto(url);
  // Every SourceBuffer the player makes, to read each track's buffered
  // ranges (the media element only shows their intersection).
  await page.evaluate(() => {
    window.buffers = [];
    const add = MediaSource.prototype.addSourceBuffer;
    MediaSource.prototype.addSourceBuffer = function (mime) {
      const buffer = add.call(this, mime);
      window.buffers.push([mime, buffer]);
      return buffer;
    };
  });
  await page.addScriptTag({ path: path.join(modules, LIBS[player]) });
  await page.evaluate(
    async ([player, base, asset]) => {
      const video = document.getElementById("v");
      const mpd = `${base}/vod/${asset}/manifest.mpd`;
      const m3u8 = `${base}/vod/${asset}/master.m3u8`;
      if (player === "dashjs") {
        const p = dashjs.MediaPlayer().create();
        p.on("error", (e) => console.error(`dash.js: ${JSON.stringify(e.error ?? e).slice(0, 200)}`));
        p.initialize(video, mpd, true);
      } else if (player === "shaka-dash") {
        shaka.polyfill.installAll();
        const p = new shaka.Player();
        await p.attach(video);
        p.addEventListener("error", (e) => console.error(`shaka: ${e.detail?.code}`));
        await p.load(mpd);
      } else {
        const p = new Hls();
        p.on(Hls.Events.ERROR, (_, d) => console.error(`hls.js: ${d.type} ${d.details} fatal=${d.fatal}`));
        p.loadSource(m3u8);
        p.attachMedia(video);
      }
    },
    [player, base, asset],
  );
  await page.waitForFunction(
    (s) => {
      const v = document.getElementById("v");
      return v.ended || v.currentTime >= s;
    },
    Number(seconds),
    { timeout: 30_000 },
  );
  const state = await page.evaluate(() => {
    const video = document.getElementById("v");
    const ranges = (b) => Array.from({ length: b.length }, (_, i) => [b.start(i), b.end(i)]);
    return {
      played: video.currentTime,
      ended: video.ended,
      buffers: window.buffers.map(([mime, b]) => [mime, ranges(b.buffered)]),
    };
  });
  await page.close();
  return { ...state, failed, errors };
}

const out = {};
try {
  for (const player of Object.keys(LIBS)) out[player] = await play(player);
  console.log(JSON.stringify(out));
} finally {
  await browser.close();
}
