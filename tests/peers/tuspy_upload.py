#!/usr/bin/env python3
"""Upload a file with tuspy, stopping part-way and resuming, as a flaky
client would.

Usage: tuspy_upload.py ENDPOINT FILE [--stop-after-chunks N] [--resume-url URL] [--chunk-size N]
Prints one JSON line: {"url": ..., "offset": n, "done": bool}.
"""
import argparse
import json
import os

from tusclient import client


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("endpoint")
    parser.add_argument("file")
    parser.add_argument("--stop-after-chunks", type=int, default=0)
    parser.add_argument("--resume-url")
    parser.add_argument("--chunk-size", type=int, default=256 * 1024)
    args = parser.parse_args()

    tus = client.TusClient(args.endpoint)
    uploader = tus.uploader(
        args.file,
        url=args.resume_url,
        chunk_size=args.chunk_size,
        metadata={"filename": os.path.basename(args.file), "filetype": "video/mp4"},
        upload_checksum=True,
    )
    size = os.path.getsize(args.file)
    chunks = 0
    while uploader.offset < size:
        uploader.upload_chunk()
        chunks += 1
        if args.stop_after_chunks and chunks >= args.stop_after_chunks:
            break
    print(json.dumps({"url": uploader.url, "offset": uploader.offset,
                      "done": uploader.offset == size}), flush=True)


if __name__ == "__main__":
    main()
