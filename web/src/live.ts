// Live streams: the list with viewer counts, and how to publish a new one.

import { type CreatedKey, type LiveStream, api, copy, el, formatDuration } from "./api";

export function livePage(main: HTMLElement): () => void {
  const table = el("tbody");
  const list = el(
    "table",
    { "aria-label": "Live streams" },
    el("thead", {}, el("tr", {}, ...["Stream", "Status", "Viewers", "Video", "Bit rate", "Up for"].map((h) => el("th", { scope: "col" }, h)))),
    table,
  );
  const load = async () => {
    try {
      const { streams } = await api<{ streams: LiveStream[] }>("/api/live");
      table.replaceChildren(
        ...streams.map((s) =>
          el(
            "tr",
            { "data-stream": s.name },
            el("td", {}, s.playable ? el("a", { href: `#/live/${encodeURIComponent(s.name)}` }, s.name) : s.name),
            el("td", {}, el("span", { className: `badge ${s.live ? "live" : ""}` }, s.live ? `live (${s.protocol})` : "offline"), s.last_error ? el("span", { className: "error" }, ` ${s.last_error}`) : null),
            el("td", { "data-role": "viewers" }, String(s.viewers)),
            el("td", {}, s.width ? `${s.width}×${s.height} ${s.codecs.join(", ")}` : s.codecs.join(", ") || "–"),
            el("td", {}, s.bitrate ? `${Math.round(s.bitrate / 1000)} kb/s` : "–"),
            el("td", {}, s.uptime_secs != null ? formatDuration(s.uptime_secs) : "–"),
          ),
        ),
      );
      if (streams.length === 0) table.append(el("tr", {}, el("td", { colSpan: 6, className: "muted" }, "No streams yet: create a key below and point an encoder at it.")));
    } catch (e) {
      table.replaceChildren(el("tr", {}, el("td", { colSpan: 6, className: "error" }, (e as Error).message)));
    }
  };

  const name = el("input", { id: "stream-name", required: true, pattern: "[A-Za-z0-9_-]{1,64}", placeholder: "studio-a" });
  const result = el("div", { "aria-live": "polite" });
  const form = el(
    "form",
    { className: "toolbar" },
    el("label", { for: "stream-name" }, "Stream name"),
    name,
    el("button", { type: "submit" }, "Create key"),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const key = await api<CreatedKey>("/api/live/keys", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ stream: name.value }),
      });
      const row = (label: string, value: string) => {
        const b = el("button", { type: "button" }, "Copy");
        b.addEventListener("click", () => void copy(value));
        return el("label", {}, label, el("input", { type: "text", readOnly: true, value, "aria-label": label }), b);
      };
      result.replaceChildren(
        el("p", {}, "The key is shown once; keep it secret. In OBS: Settings → Stream → Custom."),
        el(
          "div",
          { className: "urls" },
          row("Server", key.rtmp_url),
          row("Key", key.rtmp_stream_name),
          ...(key.rtsp_url ? [row("RTSP", key.rtsp_url)] : []),
          ...(key.srt_url ? [row("SRT", key.srt_url)] : []),
          ...(key.whip_url ? [row("WHIP", new URL(key.whip_url, window.location.href).href)] : []),
        ),
        el("p", { className: "muted" }, `ffmpeg: ffmpeg -re -i input.mp4 -c copy -f flv "${key.rtmp_url}/${key.rtmp_stream_name}"`),
        ...(key.srt_url
          ? [
              el(
                "p",
                { className: "muted" },
                `SRT: ffmpeg -re -i input.mp4 -c copy -f mpegts "${key.srt_url}&linger=2"; in OBS, the SRT URL as the Server and an empty Stream Key.`,
              ),
            ]
          : []),
        ...(key.whip_url
          ? [
              el(
                "p",
                { className: "muted" },
                "WHIP (WebRTC, H.264 and Opus): in OBS 30+, Service “WHIP”, the WHIP URL as the Server and the key as the Bearer Token.",
              ),
            ]
          : []),
      );
      void load();
    } catch (err) {
      result.replaceChildren(el("p", { className: "error", role: "alert" }, (err as Error).message));
    }
  });

  main.replaceChildren(
    el("h1", {}, "Live streams"),
    list,
    el("h2", {}, "Publish a new stream"),
    el("p", { className: "muted" }, "Push RTMP to the server URL with the stream key (H.264 or HEVC video, AAC audio); viewers get LL-HLS and low-latency DASH."),
    form,
    result,
  );
  void load();
  const timer = window.setInterval(() => void load(), 3000);
  return () => window.clearInterval(timer);
}
