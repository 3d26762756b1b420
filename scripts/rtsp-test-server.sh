#!/usr/bin/env bash
# Debian packages for the loopback RTSP server of tests/edge/test_rtsp.py (gst-rtsp-server,
# driven by the system /usr/bin/python3 through PyGObject). `make test` runs this first.
exec "$(dirname "$0")/apt-ensure.sh" rtsp-test-server \
    python3-gi                  `# PyGObject for /usr/bin/python3` \
    gir1.2-gst-rtsp-server-1.0  `# GstRtspServer typelib (pulls libgstrtspserver, GStreamer)` \
    gstreamer1.0-plugins-base   `# videotestsrc, videoconvert` \
    gstreamer1.0-plugins-good   `# jpegenc, rtpjpegpay, rtph264pay` \
    gstreamer1.0-plugins-bad    `# openh264enc`
