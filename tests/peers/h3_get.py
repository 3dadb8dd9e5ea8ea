#!/usr/bin/env python3
"""Fetch URLs over HTTP/3 with aioquic (an implementation independent of ours).

Usage: h3_get.py --cafile CERT [--concurrent] HOST PORT PATH [PATH ...] [--header NAME:VALUE ...]
Prints one JSON object per request: {"path", "status", "headers", "body_sha256", "body_len"}.
With --concurrent every request is sent at once, each on its own stream of
the one connection; the lines come in request order.
"""
import argparse
import asyncio
import hashlib
import json
import ssl

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration


class Client(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.http = H3Connection(self._quic)
        self.pending = {}

    async def get(self, authority, path, headers):
        stream_id = self._quic.get_next_available_stream_id()
        request = [
            (b":method", b"GET"),
            (b":scheme", b"https"),
            (b":authority", authority.encode()),
            (b":path", path.encode()),
        ] + [(k.lower().encode(), v.encode()) for k, v in headers]
        self.http.send_headers(stream_id=stream_id, headers=request, end_stream=True)
        done = asyncio.get_running_loop().create_future()
        self.pending[stream_id] = {"headers": [], "body": bytearray(), "done": done}
        self.transmit()
        return await asyncio.wait_for(done, 60)

    def quic_event_received(self, event):
        for h3_event in self.http.handle_event(event):
            state = self.pending.get(getattr(h3_event, "stream_id", None))
            if state is None:
                continue
            if isinstance(h3_event, HeadersReceived):
                state["headers"].extend(h3_event.headers)
            elif isinstance(h3_event, DataReceived):
                state["body"].extend(h3_event.data)
            if getattr(h3_event, "stream_ended", False) and not state["done"].done():
                state["done"].set_result(state)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cafile", required=True)
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--concurrent", action="store_true")
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("paths", nargs="+")
    args = parser.parse_args()
    headers = [tuple(h.split(":", 1)) for h in args.header]

    configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
    configuration.verify_mode = ssl.CERT_REQUIRED
    configuration.load_verify_locations(args.cafile)
    async with connect(args.host, args.port, configuration=configuration,
                       create_protocol=Client) as client:
        authority = f"{args.host}:{args.port}"
        if args.concurrent:
            states = await asyncio.gather(
                *(client.get(authority, path, headers) for path in args.paths))
        else:
            states = [await client.get(authority, path, headers) for path in args.paths]
        for path, state in zip(args.paths, states):
            response_headers = {k.decode(): v.decode() for k, v in state["headers"]}
            print(json.dumps({
                "path": path,
                "status": int(response_headers.pop(":status")),
                "headers": response_headers,
                "body_len": len(state["body"]),
                "body_sha256": hashlib.sha256(state["body"]).hexdigest(),
            }), flush=True)

if __name__ == "__main__":
    asyncio.run(main())
