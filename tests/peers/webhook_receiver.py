"""A webhook receiver for the tests: verifies each delivery with the
`standardwebhooks` package (the specification's own Python library, an
implementation independent of ours) and answers as the test tells it.

    python3 webhook_receiver.py   prints "port N" once it listens on 127.0.0.1

POST /hooks/<name>  a delivery: verified, recorded, answered with the next
                    planned status for <name> (204 when none is planned)
POST /plan/<name>   {"secret": "whsec_…", "answers": [500, 500], "always": 503}
                    sets <name>'s secret, the statuses of its next answers,
                    and (optionally) the status of every answer after them
GET  /received      every delivery so far, in arrival order, as JSON
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook, WebhookVerificationError

lock = threading.Lock()
plans = {}
received = []


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def body(self):
        length = int(self.headers.get("content-length", "0"))
        return self.rfile.read(length)

    def answer(self, status, body=b""):
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        if body:
            self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path != "/received":
            return self.answer(404)
        with lock:
            body = json.dumps(received).encode()
        self.answer(200, body)

    def do_POST(self):
        data = self.body()
        kind, _, name = self.path.strip("/").partition("/")
        if kind == "plan":
            plan = json.loads(data)
            with lock:
                plans[name] = {
                    "secret": plan["secret"],
                    "answers": list(plan.get("answers", [])),
                    "always": plan.get("always"),
                }
            return self.answer(204)
        if kind != "hooks":
            return self.answer(404)
        with lock:
            plan = plans.get(name)
        record = {
            "endpoint": name,
            "id": self.headers.get("webhook-id"),
            "timestamp": self.headers.get("webhook-timestamp"),
            "content_type": self.headers.get("content-type"),
            "verified": False,
            "error": None,
            "type": None,
            "payload": None,
        }
        if plan is None:
            record["error"] = "no plan for this endpoint"
        else:
            try:
                payload = Webhook(plan["secret"]).verify(data, dict(self.headers))
                record["verified"] = True
                record["type"] = payload.get("type")
                record["payload"] = payload
            except WebhookVerificationError as err:
                record["error"] = str(err)
        with lock:
            if plan is None:
                status = 400
            elif plan["answers"]:
                status = plan["answers"].pop(0)
            elif plan["always"]:
                status = plan["always"]
            else:
                status = 204
            record["answered"] = status
            received.append(record)
        if status == 204:
            self.answer(204)
        else:
            self.answer(status, json.dumps({"answered": status}).encode())


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"port {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
