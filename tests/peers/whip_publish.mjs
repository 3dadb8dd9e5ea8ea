// Publishes to a WHIP endpoint from headless Chromium (Debian's, through
// playwright-core): Chromium's own WebRTC stack, as a browser studio does.
//
//   node whip_publish.mjs BASE_URL STREAM KEY SECONDS [CODEC]
//
// The video is a 320x240 canvas at 25 fps with the wall clock burned in as
// tests/peers/live_players.mjs reads it back (milliseconds modulo 2^24, 24
// bars of 10 px from x = 8 on rows 0-15, white = 1); the audio a 440 Hz
// tone. CODEC `h264` (the default) offers H.264 video and the audio; `vp8`
// offers VP8 video alone, nothing a server that takes H.264 and Opus can
// use. KEY `-` sends no Authorization. The offer carries every
// candidate (gathering completes first).
//
// Prints one JSON line once the answer came back or was refused:
// {"status": 201, "location": "/whip/…", "body": "…"} — and when refused,
// exits. Otherwise, once connected: {"connected": wall_ms}; SECONDS later
// the sender's statistics and the status of the DELETE that ends it:
// {"stats": {codec, framesEncoded, keyFramesEncoded, width, height,
// packetsSent}, "deleted": 200}.
import { chromium } from "playwright-core";

const [base, stream, key, seconds, codec = "h264"] = process.argv.slice(2);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--autoplay-policy=no-user-gesture-required", "--no-sandbox", "--disable-gpu"],
});
try {
  const page = await browser.newPage();
  page.on("console", (m) => {
    if (m.type() === "error") console.error(m.text().slice(0, 2000));
  });
  // A page of the server's origin: the WHIP requests are same-origin.
  const url = `${base}/__whip_publisher.html`;
  await page.route(url, (route) =>
    route.fulfill({ contentType: "text/html", body: "<!doctype html><canvas id=c width=320 height=240></canvas>" }),
  );
  await page.goto(url);
  const answer = await page.evaluate(
    async ([stream, key, codec]) => {
      const canvas = document.getElementById("c");
      const ctx = canvas.getContext("2d");
      const draw = () => {
        const stamp = Date.now() % 2 ** 24;
        const t = performance.now() / 1000;
        ctx.fillStyle = "#204060";
        ctx.fillRect(0, 0, 320, 240);
        ctx.fillStyle = "#e0c040";
        ctx.fillRect(120 + 80 * Math.sin(t), 120, 40, 40);
        ctx.fillStyle = "black";
        ctx.fillRect(0, 0, 320, 16);
        ctx.fillStyle = "white";
        for (let bit = 0; bit < 24; bit++) {
          if (Math.floor(stamp / 2 ** bit) % 2) ctx.fillRect(8 + bit * 10, 0, 10, 16);
        }
      };
      draw();
      setInterval(draw, 10);
      const video = canvas.captureStream(25).getVideoTracks()[0];
      video.contentHint = "detail";
      const audioContext = new AudioContext({ sampleRate: 48000 });
      const tone = audioContext.createOscillator();
      tone.frequency.value = 440;
      const out = audioContext.createMediaStreamDestination();
      tone.connect(out);
      tone.start();
      const audio = out.stream.getAudioTracks()[0];

      const pc = new RTCPeerConnection();
      window.pc = pc;
      const v = pc.addTransceiver(video, { direction: "sendonly" });
      const wanted = `video/${codec === "vp8" ? "VP8" : "H264"}`;
      // The codec under test, with retransmissions (RTX) as browsers and
      // OBS offer them: without "video/rtx" in the list, Chromium offers
      // none and a lost packet cannot be sent again.
      v.setCodecPreferences(
        RTCRtpSender.getCapabilities("video").codecs.filter(
          (c) => c.mimeType === wanted || c.mimeType === "video/rtx",
        ),
      );
      const params = v.sender.getParameters();
      params.degradationPreference = "maintain-resolution";
      await v.sender.setParameters(params);
      if (codec !== "vp8") pc.addTransceiver(audio, { direction: "sendonly" });
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise((resolve) => {
        if (pc.iceGatheringState === "complete") return resolve();
        pc.addEventListener("icegatheringstatechange", () => {
          if (pc.iceGatheringState === "complete") resolve();
        });
      });
      const headers = { "Content-Type": "application/sdp" };
      if (key !== "-") headers.Authorization = `Bearer ${key}`;
      const response = await fetch(`/whip/${stream}`, {
        method: "POST",
        headers,
        body: pc.localDescription.sdp,
      });
      const body = await response.text();
      const location = response.headers.get("Location");
      if (response.status === 201) {
        await pc.setRemoteDescription({ type: "answer", sdp: body });
      }
      window.whipLocation = location;
      return { status: response.status, location, body };
    },
    [stream, key, codec],
  );
  console.log(JSON.stringify(answer));
  if (answer.status === 201) {
    await page.waitForFunction(() => window.pc.connectionState === "connected", null, {
      timeout: 20_000,
    });
    console.log(JSON.stringify({ connected: Date.now() }));
    await new Promise((resolve) => setTimeout(resolve, Number(seconds) * 1000));
    const done = await page.evaluate(async () => {
      const report = await window.pc.getStats();
      let stats = {};
      report.forEach((s) => {
        if (s.type === "outbound-rtp" && s.kind === "video") {
          stats = {
            codec: report.get(s.codecId)?.mimeType,
            framesEncoded: s.framesEncoded,
            keyFramesEncoded: s.keyFramesEncoded,
            width: s.frameWidth,
            height: s.frameHeight,
            packetsSent: s.packetsSent,
          };
        }
      });
      const response = await fetch(window.whipLocation, { method: "DELETE" });
      window.pc.close();
      return { stats, deleted: response.status };
    });
    console.log(JSON.stringify(done));
  }
} finally {
  await browser.close();
}
