// Uploads: drag-and-drop or pick files; each goes up with tus-js-client
// (pause, resume, automatic retries, resume after a page reload when the
// same file is picked again), and its card follows the server's stages
// over Server-Sent Events until the asset is playable.

import * as tus from "tus-js-client";
import { type Asset, api, authHeaders, el, formatBytes, formatDuration, withToken } from "./api";

/** Called when an upload's asset changes stage, so the library can refresh. */
type Changed = () => void;

export function uploadPanel(onChanged: Changed): HTMLElement {
  const input = el("input", { type: "file", multiple: true, id: "file-input", accept: "video/*,audio/*,image/*" });
  const zone = el(
    "label",
    { className: "drop", for: "file-input" },
    input,
    el("strong", {}, "Drop video or audio files here"),
    el("br"),
    el("span", { className: "muted" }, "or press Enter to choose files. Uploads resume after a lost connection or a page reload."),
  );
  zone.tabIndex = 0;
  zone.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      input.click();
    }
  });
  const list = el("div", { className: "uploads", "aria-label": "Uploads", role: "list" });
  const start = (files: FileList | File[]) => {
    for (const file of Array.from(files)) list.prepend(uploadCard(file, onChanged));
  };
  input.addEventListener("change", () => {
    if (input.files) start(input.files);
    input.value = "";
  });
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (e.dataTransfer?.files) start(e.dataTransfer.files);
  });
  return el("section", { "aria-labelledby": "upload-heading" }, el("h2", { id: "upload-heading" }, "Upload"), zone, unfinished(), list);
}

/** Uploads a previous page left unfinished: picking the same file resumes them. */
function unfinished(): HTMLElement {
  const box = el("p", { className: "muted" });
  void tus.defaultOptions.urlStorage?.findAllUploads().then((uploads) => {
    if (uploads.length === 0) return;
    const names = uploads.map((u) => u.metadata?.filename ?? "a file").join(", ");
    box.textContent = `Unfinished uploads: ${names}. Choose the same file again to resume where it stopped.`;
  });
  return box;
}

/**
 * Where an MP4/MOV file's index (`moov`) starts when it comes after the
 * media (`mdat`): such a file is unplayable until its end arrives, so it is
 * sent index first. Reads only the top-level box headers.
 */
export async function indexAtEnd(file: File): Promise<number | null> {
  const mp4ish = /\.(mp4|m4v|mov)$/i.test(file.name) || /^video\/(mp4|quicktime)/.test(file.type);
  if (!mp4ish) return null;
  let at = 0;
  let mdat = -1;
  for (let i = 0; i < 64 && at + 8 <= file.size; i++) {
    const head = new DataView(await file.slice(at, at + 16).arrayBuffer());
    if (head.byteLength < 8) return null;
    let size = head.getUint32(0);
    const type = String.fromCharCode(head.getUint8(4), head.getUint8(5), head.getUint8(6), head.getUint8(7));
    if (size === 1 && head.byteLength >= 16) size = Number(head.getBigUint64(8));
    else if (size === 0) size = file.size - at;
    if (size < 8) return null;
    if (type === "mdat") mdat = at;
    if (type === "moov") return mdat >= 0 && at > mdat ? at : null;
    at += size;
  }
  return null;
}

/** What a card drives: one tus upload, or the two of an index-first send. */
interface Sender {
  start(): void;
  pause(): Promise<void>;
}

function uploadCard(file: File, onChanged: Changed): HTMLElement {
  const progress = el("progress", { max: 1, value: 0, "aria-label": `Upload progress of ${file.name}` });
  const stats = el("span", { className: "muted" }, "starting…");
  const stage = el("span", { className: "badge", "data-role": "stage" }, "uploading");
  const pause = el("button", { type: "button" }, "Pause");
  const retry = el("button", { type: "button", hidden: true }, "Retry");
  const posterBox = el("div", { "data-role": "poster" });
  const result = el("div");
  const card = el(
    "article",
    { className: "card", role: "listitem", "data-file": file.name },
    el("div", { className: "title" }, file.name),
    el("div", { className: "row" }, stage, el("span", { className: "muted" }, formatBytes(file.size))),
    progress,
    stats,
    el("div", { className: "row" }, pause, retry),
    posterBox,
    result,
  );

  let started = performance.now();
  let startedAt = 0;
  let paused = false;
  let events: EventSource | null = null;

  const follow = (uploadId: string) => {
    if (events) return;
    events = new EventSource(withToken(`/api/assets/${encodeURIComponent(uploadId)}/events`));
    const onEvent = (e: MessageEvent) => {
      const data = JSON.parse(e.data);
      if (data.stage) {
        stage.textContent = data.stage;
        stage.className = `badge ${data.stage}`;
      }
      if (data.status) {
        stage.textContent = data.status;
        stage.className = `badge ${data.status}`;
      }
      const assetId: string | undefined = data.asset_id ?? undefined;
      const state: string | undefined = data.stage ?? data.status;
      if (data.type === "poster_ready" && data.poster_url) showPoster(data.poster_url);
      if (assetId && state === "previewing") void showPreview(assetId);
      if (data.error) result.replaceChildren(el("p", { className: "error", role: "alert" }, data.error));
      if (e.type === "snapshot" && assetId && !state) {
        // The upload finished before we listened: ask the asset where it stands.
        void api<Asset>(`/api/assets/${encodeURIComponent(assetId)}`).then((asset) => {
          stage.textContent = asset.status;
          stage.className = `badge ${asset.status}`;
          if (asset.status === "ready" || asset.status === "failed") {
            events?.close();
            void showAsset(assetId);
          }
          onChanged();
        });
      }
      if (assetId && (state === "ready" || state === "failed")) {
        events?.close();
        void showAsset(assetId);
      }
      if (state) onChanged();
    };
    events.addEventListener("snapshot", onEvent);
    events.addEventListener("status", onEvent);
  };

  const showPoster = (url: string) => {
    if (posterBox.querySelector("img")) return;
    posterBox.replaceChildren(el("img", { src: url, alt: `Poster of ${file.name}` }));
  };

  // Playable while the rest is still arriving.
  const showPreview = async (id: string) => {
    const asset = await api<Asset>(`/api/assets/${encodeURIComponent(id)}`);
    if (asset.status === "ready" || !asset.preview_url) return;
    if (asset.poster_url) showPoster(asset.poster_url);
    result.replaceChildren(el("a", { href: `#/asset/${asset.id}`, "data-role": "preview" }, "Watch the preview"));
  };

  const showAsset = async (id: string) => {
    const asset = await api<Asset>(`/api/assets/${encodeURIComponent(id)}`);
    const children: Node[] = [];
    if (asset.poster_url) showPoster(asset.poster_url);
    if (asset.status === "ready") {
      children.push(
        el("p", { className: "muted" }, `Duration ${formatDuration(asset.probe?.duration)}`),
        el("a", { href: `#/asset/${asset.id}`, "data-role": "play" }, "Play"),
      );
    } else if (asset.error) {
      children.push(el("p", { className: "error", role: "alert" }, asset.error));
    }
    result.replaceChildren(...children);
  };

  const options = (onProgress: (sent: number) => void) => ({
    endpoint: "/files/",
    chunkSize: 16 * 1024 * 1024,
    retryDelays: [0, 1000, 3000, 5000, 10000],
    metadata: { filename: file.name, filetype: file.type || "application/octet-stream" },
    headers: authHeaders(),
    onProgress: (sent: number) => onProgress(sent),
    onError(err: Error) {
      stats.textContent = `Upload failed: ${err.message}`;
      stats.className = "error";
      retry.hidden = false;
      pause.hidden = true;
    },
  });
  const progressed = (sent: number) => {
    const total = file.size;
    progress.value = total > 0 ? sent / total : 0;
    const seconds = (performance.now() - started) / 1000;
    const rate = seconds > 0 ? (sent - startedAt) / seconds : 0;
    const left = rate > 0 ? (total - sent) / rate : Infinity;
    stats.textContent = `${formatBytes(sent)} of ${formatBytes(total)} · ${formatBytes(rate)}/s · ${
      isFinite(left) ? `${formatDuration(left)} left` : "estimating…"
    }`;
  };
  const done = () => {
    progress.value = 1;
    stats.textContent = `Uploaded ${formatBytes(file.size)}`;
    pause.hidden = true;
    retry.hidden = true;
  };

  // One upload, resumable across page reloads (tus-js-client keeps its URL).
  const single = (): Sender => {
    const upload = new tus.Upload(file, {
      ...options(progressed),
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      onUploadUrlAvailable() {
        const id = upload.url?.split("/").pop();
        if (id) follow(id);
      },
      onSuccess: done,
    });
    let checked = false;
    return {
      start() {
        if (checked) return upload.start();
        checked = true;
        void upload.findPreviousUploads().then((previous) => {
          if (previous.length > 0) upload.resumeFromPreviousUpload(previous[0]);
          upload.start();
        });
      },
      pause: () => upload.abort(),
    };
  };

  // Index first: the tail holding the MP4 index as one partial upload, a
  // final concatenation created as soon as the head's upload exists, then
  // the head. The server starts processing with the index in hand.
  const indexFirst = (moov: number): Sender => {
    const tailSize = file.size - moov;
    const partial = { "Upload-Concat": "partial", ...authHeaders() };
    let active: tus.Upload | null = null;
    let head: tus.Upload | null = null;
    const tail = new tus.Upload(file.slice(moov), {
      ...options((sent) => progressed(sent)),
      headers: partial,
      onSuccess() {
        head = new tus.Upload(file.slice(0, moov), {
          ...options((sent) => progressed(tailSize + sent)),
          headers: partial,
          async onUploadUrlAvailable() {
            const path = (u: string | null) => (u ? new URL(u, location.href).pathname : "");
            const created = await fetch("/files/", {
              method: "POST",
              headers: {
                "Tus-Resumable": "1.0.0",
                "Upload-Concat": `final;${path(head?.url ?? null)} ${path(tail.url)}`,
                ...authHeaders(),
              },
            });
            const id = created.headers.get("location")?.split("/").pop();
            if (created.ok && id) follow(id);
          },
          onSuccess: done,
        });
        active = head;
        head.start();
      },
    });
    active = tail;
    return {
      start: () => active?.start(),
      pause: async () => {
        await active?.abort();
      },
    };
  };

  let sender: Sender | null = null;
  const begin = () => {
    started = performance.now();
    startedAt = Number(progress.value) * file.size;
    stats.className = "muted";
    sender?.start();
  };
  pause.addEventListener("click", () => {
    paused = !paused;
    if (paused) {
      void sender?.pause();
      pause.textContent = "Resume";
      stats.textContent = "Paused";
    } else {
      pause.textContent = "Pause";
      begin();
    }
  });
  retry.addEventListener("click", () => {
    retry.hidden = true;
    pause.hidden = false;
    begin();
  });

  void indexAtEnd(file).then((moov) => {
    sender = moov === null ? single() : indexFirst(moov);
    if (moov !== null) stats.textContent = "Sending the index first, so processing can start at once";
    begin();
  });
  return card;
}
