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

  const upload = new tus.Upload(file, {
    endpoint: "/files/",
    chunkSize: 16 * 1024 * 1024,
    retryDelays: [0, 1000, 3000, 5000, 10000],
    metadata: { filename: file.name, filetype: file.type || "application/octet-stream" },
    headers: authHeaders(),
    storeFingerprintForResuming: true,
    removeFingerprintOnSuccess: true,
    onUploadUrlAvailable() {
      const id = upload.url?.split("/").pop();
      if (id) follow(id);
    },
    onProgress(sent, total) {
      progress.value = total > 0 ? sent / total : 0;
      const seconds = (performance.now() - started) / 1000;
      const rate = seconds > 0 ? (sent - startedAt) / seconds : 0;
      const left = rate > 0 ? (total - sent) / rate : Infinity;
      stats.textContent = `${formatBytes(sent)} of ${formatBytes(total)} · ${formatBytes(rate)}/s · ${
        isFinite(left) ? `${formatDuration(left)} left` : "estimating…"
      }`;
    },
    onError(err) {
      stats.textContent = `Upload failed: ${err.message}`;
      stats.className = "error";
      retry.hidden = false;
      pause.hidden = true;
    },
    onSuccess() {
      progress.value = 1;
      stats.textContent = `Uploaded ${formatBytes(file.size)}`;
      pause.hidden = true;
      retry.hidden = true;
    },
  });

  const begin = () => {
    started = performance.now();
    startedAt = Number(progress.value) * file.size;
    stats.className = "muted";
    upload.start();
  };
  pause.addEventListener("click", () => {
    paused = !paused;
    if (paused) {
      void upload.abort();
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

  void upload.findPreviousUploads().then((previous) => {
    if (previous.length > 0) upload.resumeFromPreviousUpload(previous[0]);
    begin();
  });
  return card;
}
