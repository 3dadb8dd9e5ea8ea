// The page: a hash router over the library (with uploads), the asset
// player, the live list and the live player.

import { el, setToken, token } from "./api";
import { libraryPanel } from "./library";
import { livePage } from "./live";
import { assetPage, livePlayer, stopPlayers } from "./player";
import { uploadPanel } from "./upload";

const main = document.getElementById("main") as HTMLElement;
let leave: (() => void) | null = null;

async function route(): Promise<void> {
  stopPlayers();
  leave?.();
  leave = null;
  const path = location.hash.replace(/^#/, "") || "/";
  const [, section, id] = path.split("/");
  for (const link of document.querySelectorAll<HTMLAnchorElement>("[data-nav]")) {
    const current = (link.dataset.nav === "live") === (section === "live");
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  try {
    if (section === "asset" && id) {
      await assetPage(main, decodeURIComponent(id));
    } else if (section === "live" && id) {
      await livePlayer(main, decodeURIComponent(id));
    } else if (section === "live") {
      leave = livePage(main);
    } else {
      const library = libraryPanel();
      main.replaceChildren(el("h1", {}, "Media"), uploadPanel(library.refresh), library.node);
    }
  } catch (e) {
    main.replaceChildren(el("h1", {}, "Something went wrong"), el("p", { className: "error", role: "alert" }, (e as Error).message));
  }
  main.focus({ preventScroll: true });
}

// A server with auth.mode = token answers 401: ask for a token.
const tokenForm = document.getElementById("token-form") as HTMLFormElement;
const tokenInput = document.getElementById("token-input") as HTMLInputElement;
document.addEventListener("need-token", () => {
  tokenForm.hidden = false;
  tokenInput.focus();
});
tokenForm.addEventListener("submit", (e) => {
  e.preventDefault();
  setToken(tokenInput.value.trim());
  tokenForm.hidden = true;
  void route();
});
if (token()) tokenInput.value = token() ?? "";

window.addEventListener("hashchange", () => void route());
void route();
