// Drives the web UI in headless Chromium (Debian's, through playwright-core).
//
//   node web_e2e.mjs vod  BASE_URL CLIP ARTIFACT_DIR
//   node web_e2e.mjs live BASE_URL STREAM ARTIFACT_DIR
//   node web_e2e.mjs api  BASE_URL OPERATION ARTIFACT_DIR
//
// vod: uploads CLIP through the page, follows its card to a playable asset,
// plays it, switches quality, hovers the storyboard, uses the keyboard,
// deletes it. live: opens the live list, plays STREAM with the low-latency
// player and reads the latency it shows. api: opens the API reference from
// the page's navigation, finds OPERATION (a path) among the operations
// Swagger UI rendered, and runs "Try it out" on GET /healthz. Saves a screenshot of each page in
// ARTIFACT_DIR; prints one JSON line of findings; exits non-zero on failure.
import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

const [mode, base, subject, artifacts] = process.argv.slice(2);
fs.mkdirSync(artifacts, { recursive: true });
const findings = {};
const shot = (page, name) => page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--autoplay-policy=no-user-gesture-required", "--no-sandbox", "--disable-gpu"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
const consoleErrors = [];
page.on("console", (m) => {
  if (m.type() === "error") consoleErrors.push(m.text());
});
page.on("pageerror", (e) => consoleErrors.push(String(e)));
page.on("response", (r) => {
  if (r.status() >= 400) consoleErrors.push(`${r.status()} ${r.url()}`);
});

/** Every form control has an accessible name (label, aria-label or text). */
async function unlabelled() {
  return page.evaluate(() =>
    [...document.querySelectorAll("input, select, button, textarea")]
      .filter((e) => !e.closest("[hidden]") && e.type !== "file")
      .filter((e) => {
        const labelled = e.labels && e.labels.length > 0;
        return !labelled && !e.getAttribute("aria-label") && !(e.textContent ?? "").trim();
      })
      .map((e) => e.outerHTML.slice(0, 80)),
  );
}

async function videoTime() {
  return page.evaluate(() => document.querySelector("#player")?.currentTime ?? 0);
}

async function waitPlaying(seconds, timeout) {
  const start = await videoTime();
  await page.waitForFunction(
    ([from, s]) => (document.querySelector("#player")?.currentTime ?? 0) > from + s,
    [start, seconds],
    { timeout },
  );
}

try {
  if (mode === "vod") {
    const name = path.basename(subject);
    await page.goto(`${base}/`);
    await page.waitForSelector("#library-search");
    findings.unlabelled = await unlabelled();
    await shot(page, "library-empty");

    // A slow uplink: each PATCH the page sends is forwarded to the server
    // at about 160 KB/s (Chromium's network emulation does not slow request
    // bodies), so that the preview can play while the upload goes on.
    await page.route("**/files/*", async (route) => {
      const request = route.request();
      if (request.method() !== "PATCH") return route.continue();
      const body = request.postDataBuffer() ?? Buffer.alloc(0);
      const headers = Object.fromEntries(
        Object.entries(request.headers()).filter(([k]) => !["host", "content-length", "connection"].includes(k)),
      );
      let sent = 0;
      const slow = new ReadableStream({
        async pull(controller) {
          if (sent >= body.length) return controller.close();
          await new Promise((r) => setTimeout(r, 100));
          controller.enqueue(body.subarray(sent, sent + 16 * 1024));
          sent += 16 * 1024;
        },
      });
      const response = await fetch(request.url(), { method: "PATCH", headers, body: slow, duplex: "half" });
      await route.fulfill({
        status: response.status,
        headers: Object.fromEntries(response.headers),
        body: Buffer.from(await response.arrayBuffer()),
      });
    });
    await page.setInputFiles("#file-input", subject);
    const card = page.locator(`article[data-file="${name}"]`);
    await card.waitFor();
    await card.locator("[data-role=poster] img").waitFor({ timeout: 120_000 });
    const previewLink = card.locator("a[data-role=preview]");
    await previewLink.waitFor({ timeout: 120_000 });
    await shot(page, "upload-preview");
    const href = await previewLink.getAttribute("href");
    const assetId = href.split("/").pop();
    // Watch the preview in a second window while this one keeps uploading.
    const other = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const viewer = await other.newPage();
    await viewer.goto(`${base}/${href}`);
    await viewer.waitForSelector("#preview-note");
    await viewer.click("#play");
    const startAt = await viewer.evaluate(() => document.querySelector("#player").currentTime);
    await viewer.waitForFunction((t) => document.querySelector("#player").currentTime > t + 1, startAt, { timeout: 30_000 });
    findings.preview_played = true;
    // Where the upload stood on the server while the preview played.
    const asset = await (await fetch(`${base}/api/assets/${assetId}`)).json();
    const tusHead = (path) => fetch(`${base}${path}`, { method: "HEAD", headers: { "Tus-Resumable": "1.0.0" } });
    const head = await tusHead(`/files/${asset.upload_id}`);
    findings.length = Number(head.headers.get("upload-length"));
    const concat = head.headers.get("upload-concat") ?? "";
    if (concat.startsWith("final;")) {
      // Sent index first: the bytes in are the partials' offsets.
      findings.index_first = true;
      let offset = 0;
      for (const part of concat.slice("final;".length).split(" ")) {
        offset += Number((await tusHead(part)).headers.get("upload-offset"));
      }
      findings.offset_when_preview_played = offset;
    } else {
      findings.offset_when_preview_played = Number(head.headers.get("upload-offset"));
    }
    findings.status_when_preview_played = asset.status;
    await viewer.screenshot({ path: path.join(artifacts, "preview-player.png"), fullPage: true });
    await other.close();

    // The stage follows the server's events: uploading … ready.
    const stages = new Set();
    const seen = setInterval(async () => {
      const text = await card.locator("[data-role=stage]").textContent().catch(() => null);
      if (text) stages.add(text);
    }, 100);
    await card.locator("a[data-role=play]").waitFor({ timeout: 180_000 });
    clearInterval(seen);
    // The last stage, as the play link appears with it.
    stages.add(await card.locator("[data-role=stage]").textContent());
    findings.stages = [...stages];
    findings.progress = await card.locator("progress").evaluate((p) => p.value);
    findings.poster = await card.locator("img").count();
    await shot(page, "upload-ready");

    await card.locator("a[data-role=play]").click();
    await page.waitForSelector("#player");
    await page.click("#play");
    await waitPlaying(1.5, 30_000);
    findings.played = true;

    // Quality: Auto plus one entry per rung; pick the lowest, then check
    // the picture follows.
    const options = await page.locator("#quality option").allTextContents();
    findings.qualities = options;
    const heights = options.map((o) => parseInt(o, 10)).filter((h) => h > 0);
    const lowest = Math.min(...heights);
    const index = options.findIndex((o) => parseInt(o, 10) === lowest) - 1;
    await page.selectOption("#quality", String(index));
    await page.waitForFunction((h) => document.querySelector("#player")?.videoHeight === h, lowest, { timeout: 30_000 });
    findings.switched_to = lowest;
    await waitPlaying(0.5, 30_000);

    // Storyboard thumbnails over the seek bar.
    const seek = page.locator(".seek input[type=range]");
    const box = await seek.boundingBox();
    await page.mouse.move(box.x + box.width * 0.5, box.y + box.height / 2);
    await page.waitForSelector(".thumb:not([hidden])");
    findings.thumbnail = await page.locator(".thumb").evaluate((t) => t.style.backgroundImage);

    // Keyboard: m mutes, space pauses.
    await page.locator("h1").click();
    await page.keyboard.press("m");
    findings.muted = await page.evaluate(() => document.querySelector("#player").muted);
    await page.keyboard.press(" ");
    findings.paused = await page.evaluate(() => document.querySelector("#player").paused);
    findings.download = await page.locator("#download").textContent();
    findings.urls = await page.locator(".urls input").evaluateAll((inputs) => inputs.map((i) => i.value));
    findings.unlabelled_player = await unlabelled();
    await shot(page, "player");

    // Phone width: the library still fits.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${base}/#/`);
    await page.fill("#library-search", name.slice(0, 6));
    const item = page.locator("article[data-asset]").first();
    await item.waitFor();
    findings.overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
    await shot(page, "library-phone");

    page.once("dialog", (d) => d.accept());
    await item.getByRole("button", { name: /Delete/ }).click();
    await page.waitForSelector("article[data-asset]", { state: "detached", timeout: 10_000 });
    findings.deleted = true;
    await shot(page, "library-after-delete");
  } else if (mode === "live") {
    await page.goto(`${base}/#/live`);
    const row = page.locator(`tr[data-stream="${subject}"]`);
    await row.locator("a").waitFor({ timeout: 30_000 });
    findings.viewers_column = await row.locator("[data-role=viewers]").textContent();
    findings.unlabelled = await unlabelled();
    await shot(page, "live-list");
    await row.locator("a").click();
    await page.waitForSelector("#player");
    await waitPlaying(2, 30_000);
    await page.waitForFunction(() => Number(document.querySelector("#latency")?.dataset.seconds) > 0, null, { timeout: 15_000 });
    findings.latency = Number(await page.locator("#latency").getAttribute("data-seconds"));
    findings.played = true;
    await shot(page, "live-player");
  } else if (mode === "api") {
    await page.goto(`${base}/`);
    await page.getByRole("link", { name: "API", exact: true }).click();
    await page.waitForSelector(".opblock", { timeout: 30_000 });
    findings.title = await page.locator(".info .title").first().textContent();
    findings.operations = await page.locator(".opblock-summary-path").allTextContents();
    findings.has_subject = findings.operations.some((p) => p.replace(/\u200b/g, "") === subject);
    const health = page.locator(".opblock-get").filter({ hasText: "/healthz" }).first();
    await health.locator(".opblock-summary").click();
    await health.getByRole("button", { name: "Try it out" }).click();
    await health.getByRole("button", { name: "Execute" }).click();
    await health.locator(".live-responses-table tbody .response-col_status").first().waitFor({ timeout: 15_000 });
    findings.try_status = (await health.locator(".live-responses-table tbody .response-col_status").first().textContent()).trim();
    await shot(page, "api-reference");
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
  findings.console_errors = consoleErrors;
  console.log(JSON.stringify(findings));
  await browser.close();
} catch (e) {
  await shot(page, `failure-${mode}`).catch(() => {});
  console.error(`web e2e (${mode}) failed: ${e.stack ?? e}`);
  console.error(JSON.stringify({ ...findings, console_errors: consoleErrors }));
  await browser.close();
  process.exit(1);
}
