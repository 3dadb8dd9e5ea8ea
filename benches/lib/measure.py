#!/usr/bin/env python3
"""Measurements for the benches/ comparison scripts.

  measure.py run CMD...            run CMD; print wall s, CPU s, peak RSS MiB of
                                   its process tree (sampled every 200 ms)
  measure.py cpu PID               CPU seconds of PID and its reaped children
  measure.py watch PID OUT         sample PID's tree RSS until SIGTERM, then
                                   write the peak (MiB) to OUT
  measure.py quality SRC RUNG W H  SSIM (all planes) and PSNR (average) of RUNG
                                   (a file or URL: an HLS rung) against SRC
                                   scaled to WxH, and RUNG's video bitrate
"""
import json
import os
import re
import signal
import subprocess
import sys
import time

PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


def children() -> dict:
    """Parent pid -> child pids, for every process."""
    tree = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def tree_rss(pid: int) -> int:
    """Resident bytes of `pid` and all its descendants."""
    tree, total, todo = children(), 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * PAGE
        except OSError:
            pass
        todo.extend(tree.get(p, []))
    return total


def cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime, stime, cutime, cstime are fields 14-17 (1-based, pid first).
    return sum(int(x) for x in fields[11:15]) / TICK


def run(cmd: list) -> None:
    start = time.monotonic()
    before = os.times()
    child = subprocess.Popen(cmd)
    peak = 0
    while child.poll() is None:
        peak = max(peak, tree_rss(child.pid))
        time.sleep(0.2)
    wall = time.monotonic() - start
    after = os.times()
    if child.returncode != 0:
        sys.exit(f"measure: {cmd[0]} exited with {child.returncode}")
    used = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    print(f"{wall:.2f} {used:.2f} {peak / 2**20:.0f}")


def watch(pid: int, out: str) -> None:
    peak = 0
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    while not stop and os.path.exists(f"/proc/{pid}"):
        peak = max(peak, tree_rss(pid))
        time.sleep(0.2)
    with open(out, "w") as f:
        f.write(f"{peak / 2**20:.0f}\n")


def quality(source: str, rung: str, width: int, height: int) -> None:
    graph = (
        f"[0:v]setpts=PTS-STARTPTS,split[d0][d1];"
        f"[1:v]scale={width}:{height}:flags=bicubic,setpts=PTS-STARTPTS,split[r0][r1];"
        f"[d0][r0]ssim;[d1][r1]psnr"
    )
    out = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-i", rung, "-i", source,
         "-lavfi", graph, "-f", "null", "-"],
        capture_output=True, text=True,
    )
    if out.returncode != 0:
        sys.exit(f"measure: ffmpeg could not compare {rung}: {out.stderr[-500:]}")
    ssim = re.search(r"SSIM .*All:([0-9.]+)", out.stderr)
    psnr = re.search(r"PSNR .*average:([0-9.inf]+)", out.stderr)
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "packet=size,pts_time,duration_time", "-of", "json", rung],
        capture_output=True, text=True, check=True,
    )
    packets = json.loads(probe.stdout)["packets"]
    size = sum(int(p["size"]) for p in packets)
    times = [float(p["pts_time"]) for p in packets if p.get("pts_time")]
    last = max(packets, key=lambda p: float(p.get("pts_time", 0)))
    duration = max(times) - min(times) + float(last.get("duration_time", 0))
    kbps = size * 8 / duration / 1000
    print(f"{float(ssim.group(1)):.4f} {float(psnr.group(1)):.2f} {kbps:.0f}")


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    verb = sys.argv[1]
    if verb == "run":
        run(sys.argv[2:])
    elif verb == "cpu":
        print(f"{cpu(int(sys.argv[2])):.2f}")
    elif verb == "watch":
        watch(int(sys.argv[2]), sys.argv[3])
    elif verb == "quality":
        quality(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
