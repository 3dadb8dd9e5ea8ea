import { defineConfig } from "vite";

// The server serves `dist/` at `/`, bundles under `/static/` (the `/assets`
// name belongs to the API's vocabulary). `npm run dev` proxies the API to a
// server on 127.0.0.1:8080.
export default defineConfig({
  build: {
    assetsDir: "static",
    target: "es2020",
    // Swagger UI alone is about 1.5 MB, loaded by the API reference only.
    chunkSizeWarningLimit: 2000,
    rollupOptions: {
      input: { main: "index.html", reference: "api.html" },
    },
  },
  server: {
    proxy: {
      "/api": { target: "http://127.0.0.1:8080", ws: true },
      "/files": "http://127.0.0.1:8080",
      "/vod": "http://127.0.0.1:8080",
      "/live": "http://127.0.0.1:8080",
      "/time": "http://127.0.0.1:8080",
    },
  },
});
