// The library: every asset with its poster, title, duration, status and
// size; search by name, pages, delete with confirmation.

import { type Asset, type AssetPage, api, el, formatBytes, formatDuration, toast } from "./api";

const PAGE = 12;

export function libraryPanel(): { node: HTMLElement; refresh: () => void } {
  const search = el("input", { type: "search", id: "library-search", placeholder: "Search by name", "aria-label": "Search by name" });
  const grid = el("div", { className: "grid", role: "list", "aria-label": "Assets" });
  const prev = el("button", { type: "button" }, "Previous");
  const next = el("button", { type: "button" }, "Next");
  const where = el("span", { className: "muted", "aria-live": "polite" });
  let offset = 0;
  let loading = 0;

  const load = async () => {
    const ticket = ++loading;
    const q = search.value.trim();
    const params = new URLSearchParams({ limit: String(PAGE), offset: String(offset) });
    if (q) params.set("q", q);
    try {
      const page = await api<AssetPage>(`/api/assets?${params}`);
      if (ticket !== loading) return;
      if (page.assets.length === 0 && offset > 0 && page.total > 0) {
        offset = Math.max(0, offset - PAGE);
        return load();
      }
      grid.replaceChildren(...page.assets.map((a) => card(a, load)));
      if (page.total === 0) grid.append(el("p", { className: "muted" }, q ? `Nothing matches “${q}”.` : "No uploads yet."));
      const pages = Math.max(1, Math.ceil(page.total / PAGE));
      where.textContent = `Page ${Math.floor(offset / PAGE) + 1} of ${pages} · ${page.total} assets`;
      prev.disabled = offset === 0;
      next.disabled = offset + PAGE >= page.total;
    } catch (e) {
      grid.replaceChildren(el("p", { className: "error", role: "alert" }, `Cannot load the library: ${(e as Error).message}`));
    }
  };

  let timer = 0;
  search.addEventListener("input", () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(() => {
      offset = 0;
      void load();
    }, 250);
  });
  prev.addEventListener("click", () => {
    offset = Math.max(0, offset - PAGE);
    void load();
  });
  next.addEventListener("click", () => {
    offset += PAGE;
    void load();
  });
  void load();

  const node = el(
    "section",
    { "aria-labelledby": "library-heading" },
    el("h2", { id: "library-heading" }, "Library"),
    el("div", { className: "toolbar" }, search, prev, next, where),
    grid,
  );
  return { node, refresh: () => void load() };
}

function card(asset: Asset, reload: () => Promise<void>): HTMLElement {
  const picture = asset.poster_url
    ? el("img", { src: asset.poster_url, alt: "", loading: "lazy" })
    : el("div", { className: "placeholder" }, asset.status === "ready" ? "audio" : asset.status);
  const title = asset.status === "ready" ? el("a", { href: `#/asset/${asset.id}`, className: "title" }, asset.filename) : el("span", { className: "title" }, asset.filename);
  const remove = el("button", { type: "button", className: "danger", "aria-label": `Delete ${asset.filename}` }, "Delete");
  remove.addEventListener("click", async () => {
    if (!window.confirm(`Delete “${asset.filename}” and everything made from it?`)) return;
    try {
      await api(`/api/assets/${encodeURIComponent(asset.id)}`, { method: "DELETE" });
      toast(`Deleted ${asset.filename}`);
      await reload();
    } catch (e) {
      toast(`Cannot delete: ${(e as Error).message}`);
    }
  });
  return el(
    "article",
    { className: "card", role: "listitem", "data-asset": asset.id },
    picture,
    title,
    el(
      "div",
      { className: "row" },
      el("span", { className: `badge ${asset.status}` }, asset.status),
      el("span", { className: "muted" }, formatDuration(asset.probe?.duration)),
      el("span", { className: "muted" }, formatBytes(asset.size)),
    ),
    asset.error ? el("p", { className: "error" }, asset.error) : null,
    el("div", { className: "row" }, remove),
  );
}
