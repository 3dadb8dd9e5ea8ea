"""An HTTP source for the import tests: serves one file with byte ranges,
slowly, and drops the first connection part-way through.

    python3 import_source.py FILE   prints "port N" once it listens on 127.0.0.1

GET /clip.mp4?rate=B&drop_at=N   the file at B bytes/s (default: no limit);
                                 the first request without a Range header
                                 gets the full Content-Length but only N
                                 bytes before the connection is closed.
                                 Range: bytes=N- answers 206 (If-Range must
                                 match the strong ETag, else 200 and the
                                 whole file).
GET /redirect?to=URL             302 to URL
GET /page.html?src=URL           an HTML page titled "A talk" with <video src=URL>
                                 (no video without src)
GET /requests                    every request so far (path, Range), as JSON
anything else                    404
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

ETAG = '"clip-v1"'
lock = threading.Lock()
requests = []
dropped = set()
data = b""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_plain(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/requests":
            with lock:
                body = json.dumps(requests).encode()
            return self.send_plain(200, body, [("content-type", "application/json")])
        with lock:
            requests.append({"path": self.path, "range": self.headers.get("range")})
        if url.path == "/redirect":
            return self.send_plain(302, headers=[("location", query["to"])])
        if url.path == "/page.html":
            video = f'<video src="{query["src"]}" controls></video>' if "src" in query else "<p>Nothing to see.</p>"
            body = f"<!doctype html><html><head><title>A talk</title></head><body>{video}</body></html>"
            return self.send_plain(200, body.encode(), [("content-type", "text/html; charset=utf-8")])
        if url.path != "/clip.mp4":
            return self.send_plain(404, b"no such file")
        rate = int(query.get("rate", "0"))
        start = 0
        status = 200
        wanted = self.headers.get("range")
        if_range = self.headers.get("if-range")
        if wanted and (if_range is None or if_range == ETAG):
            start = int(wanted.removeprefix("bytes=").split("-")[0])
            status = 206
        drop_at = None
        if "drop_at" in query and not wanted:
            with lock:
                if self.path not in dropped:
                    dropped.add(self.path)
                    drop_at = int(query["drop_at"])
        self.send_response(status)
        self.send_header("content-type", "video/mp4")
        self.send_header("etag", ETAG)
        self.send_header("accept-ranges", "bytes")
        self.send_header("content-length", str(len(data) - start))
        if status == 206:
            self.send_header("content-range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        position = start
        chunk = 8192
        began = time.monotonic()
        while position < len(data):
            if drop_at is not None and position >= drop_at:
                # Gone mid-body: the client has fewer bytes than announced.
                self.close_connection = True
                self.connection.shutdown(2)
                return
            end = min(position + chunk, len(data))
            if drop_at is not None:
                end = min(end, max(drop_at, position + 1))
            self.wfile.write(data[position:end])
            self.wfile.flush()
            position = end
            if rate:
                due = (position - start) / rate
                ahead = due - (time.monotonic() - began)
                if ahead > 0:
                    time.sleep(ahead)


def main():
    global data
    with open(sys.argv[1], "rb") as f:
        data = f.read()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"port {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
