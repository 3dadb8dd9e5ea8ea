// Players: VOD (hls.js, or dash.js for the DASH URL) with a quality
// selector, storyboard thumbnails over the seek bar and keyboard
// shortcuts; live (low-latency hls.js or dash.js) with its current latency.

import type Hls from "hls.js";
import type { Level } from "hls.js";
import { type Asset, type LiveStream, absolute, api, copy, el, formatBytes, formatDuration } from "./api";

interface Engine {
  /** Quality choices: -1 is automatic. */
  levels(): { index: number; label: string }[];
  setLevel(index: number): void;
  currentLevel(): number;
  /** Seconds behind the live edge, for live streams. */
  latency(): number | null;
  destroy(): void;
}

async function hlsEngine(video: HTMLVideoElement, url: string, live: boolean): Promise<Engine> {
  const { default: HlsClass } = await import("hls.js");
  if (!HlsClass.isSupported()) {
    // Safari plays HLS (and LL-HLS) natively.
    video.src = url;
    return {
      levels: () => [],
      setLevel: () => {},
      currentLevel: () => -1,
      latency: () => null,
      destroy: () => video.removeAttribute("src"),
    };
  }
  // hls.js holds a live stream wherever it started (a second or so behind
  // its PART-HOLD-BACK target) unless it may play faster to catch up.
  const hls: Hls = new HlsClass({
    lowLatencyMode: live,
    maxLiveSyncPlaybackRate: live ? 1.5 : 1,
    backBufferLength: live ? 10 : 30,
  });
  hls.loadSource(url);
  hls.attachMedia(video);
  let manual = -1;
  return {
    levels: () =>
      hls.levels.map((l: Level, index: number) => ({
        index,
        label: l.height ? `${l.height}p · ${Math.round(l.bitrate / 1000)} kb/s` : `${Math.round(l.bitrate / 1000)} kb/s`,
      })),
    setLevel: (index) => {
      manual = index;
      hls.currentLevel = index;
    },
    currentLevel: () => (manual === -1 ? -1 : hls.currentLevel),
    latency: () => (live && Number.isFinite(hls.latency) ? hls.latency : null),
    destroy: () => hls.destroy(),
  };
}

async function dashEngine(video: HTMLVideoElement, url: string, live: boolean): Promise<Engine> {
  const dashjs = await import("dashjs");
  const player = dashjs.MediaPlayer().create();
  player.updateSettings({
    streaming: {
      delay: live ? { liveDelay: 1.5 } : {},
      liveCatchup: { enabled: live },
      abr: { autoSwitchBitrate: { video: true } },
    },
  });
  player.initialize(video, url, true);
  return {
    levels: () =>
      player.getBitrateInfoListFor("video").map((b, index) => ({
        index,
        label: `${b.height}p · ${Math.round(b.bitrate / 1000)} kb/s`,
      })),
    setLevel: (index) => {
      const auto = index === -1;
      player.updateSettings({ streaming: { abr: { autoSwitchBitrate: { video: auto } } } });
      if (!auto) player.setQualityFor("video", index, true);
    },
    currentLevel: () =>
      player.getSettings().streaming?.abr?.autoSwitchBitrate?.video ? -1 : player.getQualityFor("video"),
    latency: () => (live ? player.getCurrentLiveLatency() : null),
    destroy: () => player.reset(),
  };
}

interface Tile {
  start: number;
  end: number;
  url: string;
  x: number;
  y: number;
  w: number;
  h: number;
}

async function storyboard(url: string): Promise<Tile[]> {
  const text = await (await fetch(url)).text();
  const time = (t: string) => {
    const parts = t.trim().split(":").map(Number);
    return parts.reduce((acc, v) => acc * 60 + v, 0);
  };
  const tiles: Tile[] = [];
  for (const block of text.split(/\n\n+/)) {
    const lines = block.trim().split("\n");
    const cue = lines.findIndex((l) => l.includes("-->"));
    if (cue < 0 || !lines[cue + 1]) continue;
    const [from, to] = lines[cue].split("-->");
    const [image, hash] = lines[cue + 1].split("#xywh=");
    if (!hash) continue;
    const [x, y, w, h] = hash.split(",").map(Number);
    tiles.push({ start: time(from), end: time(to), url: new URL(image, absolute(url)).toString(), x, y, w, h });
  }
  return tiles;
}

function qualitySelect(engine: Engine, video: HTMLVideoElement): HTMLElement {
  const select = el("select", { id: "quality", "aria-label": "Quality" });
  const fill = () => {
    const levels = engine.levels();
    select.replaceChildren(el("option", { value: "-1" }, "Auto"), ...levels.map((l) => el("option", { value: String(l.index) }, l.label)));
    select.value = String(engine.currentLevel());
    select.disabled = levels.length < 2;
  };
  video.addEventListener("loadedmetadata", fill);
  fill();
  select.addEventListener("change", () => engine.setLevel(Number(select.value)));
  return el("label", { className: "row" }, "Quality ", select);
}

function seekBar(video: HTMLVideoElement, tiles: Tile[]): HTMLElement {
  const range = el("input", { type: "range", min: "0", max: "1000", value: "0", "aria-label": "Seek", step: "1" });
  const thumb = el("div", { className: "thumb", hidden: true }, el("span"));
  video.addEventListener("timeupdate", () => {
    if (video.duration > 0 && document.activeElement !== range) range.value = String((video.currentTime / video.duration) * 1000);
  });
  range.addEventListener("input", () => {
    if (video.duration > 0) video.currentTime = (Number(range.value) / 1000) * video.duration;
  });
  range.addEventListener("mousemove", (e) => {
    if (!(video.duration > 0) || tiles.length === 0) return;
    const box = range.getBoundingClientRect();
    const fraction = Math.min(1, Math.max(0, (e.clientX - box.left) / box.width));
    const t = fraction * video.duration;
    const tile = tiles.find((c) => t >= c.start && t < c.end) ?? tiles[tiles.length - 1];
    thumb.hidden = false;
    thumb.style.left = `${e.clientX - box.left}px`;
    thumb.style.width = `${tile.w}px`;
    thumb.style.height = `${tile.h}px`;
    thumb.style.backgroundImage = `url("${tile.url}")`;
    thumb.style.backgroundPosition = `-${tile.x}px -${tile.y}px`;
    (thumb.firstChild as HTMLElement).textContent = formatDuration(t);
  });
  range.addEventListener("mouseleave", () => (thumb.hidden = true));
  return el("div", { className: "seek" }, thumb, range);
}

/** space: play/pause, ←/→: ∓5 s, ↑/↓: volume, f: fullscreen, m: mute. */
function shortcuts(video: HTMLVideoElement, box: HTMLElement): () => void {
  const onKey = (e: KeyboardEvent) => {
    const target = e.target as HTMLElement;
    if (target.closest("input, select, textarea, button") && e.key !== "Escape") return;
    switch (e.key) {
      case " ":
        e.preventDefault();
        if (video.paused) void video.play();
        else video.pause();
        break;
      case "ArrowLeft":
        video.currentTime = Math.max(0, video.currentTime - 5);
        break;
      case "ArrowRight":
        video.currentTime = video.currentTime + 5;
        break;
      case "ArrowUp":
        e.preventDefault();
        video.volume = Math.min(1, video.volume + 0.1);
        break;
      case "ArrowDown":
        e.preventDefault();
        video.volume = Math.max(0, video.volume - 0.1);
        break;
      case "f":
        if (document.fullscreenElement) void document.exitFullscreen();
        else void box.requestFullscreen?.();
        break;
      case "m":
        video.muted = !video.muted;
        break;
    }
  };
  document.addEventListener("keydown", onKey);
  return () => document.removeEventListener("keydown", onKey);
}

function urlRow(label: string, url: string): HTMLElement {
  const input = el("input", { type: "text", readOnly: true, value: url, "aria-label": `${label} URL` });
  const button = el("button", { type: "button" }, `Copy`);
  button.addEventListener("click", () => void copy(url));
  return el("label", {}, label, input, button);
}

let cleanup: (() => void)[] = [];

/** Tears down the player of the previous page. */
export function stopPlayers(): void {
  for (const fn of cleanup) fn();
  cleanup = [];
}

export async function assetPage(main: HTMLElement, id: string): Promise<void> {
  const asset = await api<Asset>(`/api/assets/${encodeURIComponent(id)}`);
  const video = el("video", { controls: false, playsInline: true, id: "player", poster: asset.poster_url ?? "" });
  video.setAttribute("aria-label", `Video: ${asset.filename}`);
  const box = el("div", { className: "player", tabIndex: 0 }, video);
  main.replaceChildren(el("h1", {}, asset.filename));
  const preview = asset.status !== "ready" && asset.preview_url ? asset.preview_url : null;
  if (!preview && (asset.status !== "ready" || !asset.hls_url || !asset.dash_url)) {
    main.append(el("p", { className: asset.error ? "error" : "muted" }, asset.error ?? `This asset is ${asset.status}; it plays once ready.`));
    return;
  }
  if (preview) {
    main.append(el("p", { className: "muted", id: "preview-note", role: "status" }, "Preview: the upload and its processing are still going on; what is ready so far plays now."));
  }
  const hlsUrl = preview ?? asset.hls_url ?? "";
  const dashUrl = preview ? null : (asset.dash_url ?? null);
  const format = el("select", { id: "format", "aria-label": "Format" }, el("option", { value: "hls" }, "HLS (hls.js)"));
  if (dashUrl) format.append(el("option", { value: "dash" }, "DASH (dash.js)"));
  const controls = el("div", { className: "toolbar" });
  const play = el("button", { type: "button", id: "play" }, "Play");
  play.addEventListener("click", () => (video.paused ? void video.play() : video.pause()));
  video.addEventListener("play", () => (play.textContent = "Pause"));
  video.addEventListener("pause", () => (play.textContent = "Play"));
  const mute = el("button", { type: "button" }, "Mute");
  mute.addEventListener("click", () => (video.muted = !video.muted));
  video.addEventListener("volumechange", () => (mute.textContent = video.muted ? "Unmute" : "Mute"));
  const clock = el("span", { className: "muted", "aria-live": "off" }, "0:00");
  video.addEventListener("timeupdate", () => (clock.textContent = `${formatDuration(video.currentTime)} / ${formatDuration(video.duration)}`));
  const tiles = asset.storyboard_url ? await storyboard(asset.storyboard_url).catch(() => []) : [];

  let engine: Engine | null = null;
  const attach = async () => {
    engine?.destroy();
    engine = format.value === "dash" && dashUrl ? await dashEngine(video, dashUrl, false) : await hlsEngine(video, hlsUrl, false);
    controls.replaceChildren(play, mute, clock, qualitySelect(engine, video), el("label", { className: "row" }, "Format ", format));
  };
  format.addEventListener("change", () => void attach());
  await attach();
  cleanup.push(() => engine?.destroy(), shortcuts(video, box));

  const download = preview
    ? el("span", { className: "muted" }, "The original can be downloaded once the upload is complete.")
    : el("a", { href: asset.download_url, download: asset.filename, className: "button", id: "download" }, `Download original (${formatBytes(asset.size)})`);
  main.append(
    box,
    seekBar(video, tiles),
    controls,
    el("p", { className: "muted" }, "Keys: space play/pause · ←/→ seek 5 s · ↑/↓ volume · f fullscreen · m mute"),
    el("p", {}, download),
    el("h2", {}, "Play elsewhere"),
    el("div", { className: "urls" }, urlRow("HLS", absolute(hlsUrl)), dashUrl ? urlRow("DASH", absolute(dashUrl)) : null),
    el(
      "dl",
      { className: "facts" },
      el("dt", {}, "Duration"),
      el("dd", {}, formatDuration(asset.probe?.duration)),
      el("dt", {}, "Streams"),
      el("dd", {}, (asset.probe?.streams ?? []).map((s) => (s.width ? `${s.codec} ${s.width}×${s.height}` : s.codec)).join(", ")),
    ),
  );
}

export async function livePlayer(main: HTMLElement, name: string): Promise<void> {
  // The server's URLs: signed when playback needs a signature.
  const stream = await api<LiveStream>(`/api/live/${encodeURIComponent(name)}`);
  const hlsUrl = stream.hls;
  const dashUrl = stream.dash;
  const video = el("video", { controls: true, muted: true, autoplay: true, playsInline: true, id: "player" });
  video.setAttribute("aria-label", `Live stream ${name}`);
  const latency = el("output", { id: "latency", "aria-live": "off" }, "latency –");
  const format = el("select", { id: "format", "aria-label": "Format" }, el("option", { value: "hls" }, "LL-HLS (hls.js)"), el("option", { value: "dash" }, "LL-DASH (dash.js)"));
  let engine: Engine | null = null;
  const attach = async () => {
    engine?.destroy();
    engine = format.value === "dash" ? await dashEngine(video, dashUrl, true) : await hlsEngine(video, hlsUrl, true);
  };
  format.addEventListener("change", () => void attach());
  main.replaceChildren(
    el("h1", {}, `Live: ${name}`),
    el("div", { className: "player" }, video),
    el("div", { className: "toolbar" }, el("label", { className: "row" }, "Format ", format), latency),
    el("div", { className: "urls" }, urlRow("HLS", absolute(hlsUrl)), dashUrl ? urlRow("DASH", absolute(dashUrl)) : null),
  );
  await attach();
  const timer = window.setInterval(() => {
    const l = engine?.latency();
    latency.textContent = l == null || !isFinite(l) ? "latency –" : `latency ${l.toFixed(2)} s`;
    latency.dataset.seconds = l == null ? "" : String(l);
  }, 500);
  cleanup.push(() => window.clearInterval(timer), () => engine?.destroy());
}
