#!/usr/bin/python3
# An RTSP camera for tests: GStreamer's RTSP server (Debian's
# gir1.2-gst-rtsp-server-1.0) serving an MP4 file's H.264 and AAC at
# rtsp://127.0.0.1:PORT/cam, paced in real time. Each client gets the file
# from the start; when it ends the session ends, as a camera that reboots.
#
#   /usr/bin/python3 rtsp_server.py FILE
#
# Binds port 0 and prints the port on the first line of stdout, then runs
# until killed.
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

Gst.init(None)
path = sys.argv[1]
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service("0")
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    f"( filesrc location={path} ! qtdemux name=d "
    "d.video_0 ! queue ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1 "
    "d.audio_0 ! queue ! aacparse ! rtpmp4gpay name=pay1 pt=97 )"
)
factory.set_shared(False)
server.get_mount_points().add_factory("/cam", factory)
server.attach(None)
print(server.get_bound_port(), flush=True)
GLib.MainLoop().run()
