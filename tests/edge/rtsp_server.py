"""A loopback RTSP server for the edge capture tests (GStreamer's gst-rtsp-server).

Run with the *system* Python, which has PyGObject and the GStreamer typelibs from Debian
(`scripts/rtsp-test-server.sh` installs them); not with the project's venv:

    /usr/bin/python3 tests/edge/rtsp_server.py --port 8554 --codec h264

Serves `rtsp://127.0.0.1:<port>/test`: a live `videotestsrc` pattern (320x240 at --fps)
encoded as H.264 (openh264) or MJPEG. Prints `READY <port>` on stdout once it listens and
`CLIENT` whenever a client connects; runs until killed. `--check` only verifies that every
element is available (exit 0) or names what is missing (exit 3).
"""

import argparse
import sys


def say(line: str) -> None:
    """One status line for the test fixture, which reads our stdout."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


try:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer
except (ImportError, ValueError) as exc:
    say(f"MISSING PyGObject/GStreamer RTSP typelibs: {exc}")
    sys.exit(3)

ENCODERS = {
    # A key frame every second, SPS/PPS with each, so a (re)connecting client starts fast.
    "h264": (
        "openh264enc",
        "rtph264pay",
        "openh264enc gop-size={gop} ! rtph264pay config-interval=-1",
    ),
    "mjpeg": ("jpegenc", "rtpjpegpay", "jpegenc quality=70 ! rtpjpegpay"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8554)
    parser.add_argument("--codec", choices=sorted(ENCODERS), default="h264")
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--path", default="/test")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()

    Gst.init(None)
    encoder, payloader, chain = ENCODERS[args.codec]
    needed = ("videotestsrc", "videoconvert", encoder, payloader)
    missing = [name for name in needed if Gst.ElementFactory.find(name) is None]
    if missing:
        say(f"MISSING GStreamer elements: {' '.join(missing)}")
        return 3
    if args.check:
        say("OK")
        return 0

    launch = (
        f"( videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,"
        f"framerate={args.fps}/1 ! videoconvert ! video/x-raw,format=I420 ! "
        f"{chain.format(gop=args.fps)} name=pay0 pt=96 )"
    )
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(True)
    server.get_mount_points().add_factory(args.path, factory)
    server.connect("client-connected", lambda *_: say("CLIENT"))
    if server.attach(None) == 0:
        say(f"FAILED cannot listen on 127.0.0.1:{args.port}")
        return 4
    say(f"READY {server.get_bound_port()}")
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
