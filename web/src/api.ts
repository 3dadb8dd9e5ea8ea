// Talking to the server: JSON with the server's error envelope, the API
// token (when the server runs with auth.mode = token), small formatters.

const TOKEN_KEY = "streamforge.token";

export function token(): string | null {
  return localStorage.getItem(TOKEN_KEY);
}

export function setToken(value: string): void {
  if (value) localStorage.setItem(TOKEN_KEY, value);
  else localStorage.removeItem(TOKEN_KEY);
}

export function authHeaders(): Record<string, string> {
  const t = token();
  return t ? { Authorization: `Bearer ${t}` } : {};
}

/** Appends `access_token` for EventSource and WebSocket, which cannot send headers. */
export function withToken(url: string): string {
  const t = token();
  if (!t) return url;
  return `${url}${url.includes("?") ? "&" : "?"}access_token=${encodeURIComponent(t)}`;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export async function api<T>(path: string, init: RequestInit = {}): Promise<T> {
  const headers = { ...authHeaders(), ...(init.headers as Record<string, string> | undefined) };
  const response = await fetch(path, { ...init, headers });
  if (response.status === 401) {
    document.dispatchEvent(new CustomEvent("need-token"));
  }
  if (!response.ok) {
    let code = "http_error";
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      code = body.error?.code ?? code;
      message = body.error?.message ?? message;
    } catch {
      // Not JSON: keep the status line.
    }
    throw new ApiError(response.status, code, message);
  }
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

export interface Probe {
  duration?: number | null;
  streams?: { type: string; width?: number; height?: number; codec?: string }[];
}

export interface Asset {
  id: string;
  upload_id: string | null;
  filename: string;
  filetype: string;
  size: number;
  status: string;
  error: string | null;
  created_at_ms: number;
  probe: Probe | null;
  preview: boolean;
  download_url: string;
  preview_url?: string;
  hls_url?: string;
  dash_url?: string;
  poster_url?: string;
  storyboard_url?: string;
}

export interface AssetPage {
  assets: Asset[];
  total: number;
  limit: number;
  offset: number;
}

export interface LiveStream {
  name: string;
  live: boolean;
  protocol: string | null;
  codecs: string[];
  width: number | null;
  height: number | null;
  bitrate: number;
  viewers: number;
  uptime_secs: number | null;
  playable: boolean;
  last_error: string | null;
  hls: string;
  dash: string;
}

export interface CreatedKey {
  stream: string;
  key: string;
  rtmp_url: string;
  rtmp_stream_name: string;
  rtsp_url?: string;
  srt_url?: string;
  /** The WHIP endpoint, a path on this server; the key is its bearer token. */
  whip_url?: string;
  hls: string;
  dash: string;
}

export function formatBytes(n: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(v < 10 && i > 0 ? 1 : 0)} ${units[i]}`;
}

export function formatDuration(seconds: number | null | undefined): string {
  if (seconds == null || !isFinite(seconds)) return "–";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

/** Absolute URL of a server path, for players outside this page. */
export function absolute(path: string): string {
  return new URL(path, location.href).toString();
}

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<HTMLElementTagNameMap[K]> & Record<string, unknown> = {},
  ...children: (Node | string | null | undefined)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value == null) continue;
    if (key.startsWith("data-") || key.startsWith("aria-") || key === "for" || key === "role") {
      node.setAttribute(key, String(value));
    } else {
      (node as unknown as Record<string, unknown>)[key] = value;
    }
  }
  for (const child of children) {
    if (child != null) node.append(child);
  }
  return node;
}

export function toast(message: string): void {
  const t = document.getElementById("toast");
  if (!t) return;
  t.textContent = message;
  window.setTimeout(() => {
    if (t.textContent === message) t.textContent = "";
  }, 4000);
}

export async function copy(text: string): Promise<void> {
  try {
    await navigator.clipboard.writeText(text);
    toast("Copied");
  } catch {
    toast("Copy failed: select the text and copy it");
  }
}
