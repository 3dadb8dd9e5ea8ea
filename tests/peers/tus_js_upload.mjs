// Uploads a file with tus-js-client (Node), the client web pages use.
//
//   node tus_js_upload.mjs ENDPOINT FILE [--stop-after BYTES] [--resume-url URL]
//                          [--chunk-size BYTES] [--parallel N]
//
// --stop-after aborts once that many bytes were acknowledged and prints the
// upload URL, as a user closing the tab would; --resume-url continues an
// upload from where the server says it stands. Prints one JSON line:
// {"url": ..., "done": bool, "offset": n}.
import fs from "node:fs";
import * as tus from "tus-js-client";

const [endpoint, file, ...rest] = process.argv.slice(2);
const option = (name) => {
  const i = rest.indexOf(name);
  return i >= 0 ? rest[i + 1] : undefined;
};
const stopAfter = Number(option("--stop-after") ?? 0);
const resumeUrl = option("--resume-url");
const chunkSize = Number(option("--chunk-size") ?? 256 * 1024);
const parallel = Number(option("--parallel") ?? 1);
const size = fs.statSync(file).size;

// With parallel uploads tus-js-client slices the source itself and needs
// the whole of it; a single upload streams from the file.
const source = parallel > 1 ? fs.readFileSync(file) : fs.createReadStream(file);
const upload = new tus.Upload(source, {
  endpoint,
  uploadUrl: resumeUrl,
  uploadSize: parallel > 1 ? undefined : size,
  chunkSize,
  parallelUploads: parallel,
  retryDelays: [],
  metadata: { filename: file.split("/").pop(), filetype: "video/mp4" },
  onProgress(sent) {
    // Progress counts bytes sent; stop once the server has acknowledged enough.
    if (stopAfter && sent >= stopAfter) {
      upload.abort().then(() => {
        console.log(JSON.stringify({ url: upload.url, done: false, offset: sent }));
        process.exit(0);
      });
    }
  },
  onError(err) {
    console.error(String(err));
    process.exit(1);
  },
  onSuccess() {
    console.log(JSON.stringify({ url: upload.url, done: true, offset: size }));
    process.exit(0);
  },
});
upload.start();
