#!/usr/bin/env bash
# Debian packages for the loopback RTSP server of tests/edge/test_rtsp.py (gst-rtsp-server,
# driven by the system /usr/bin/python3 through PyGObject). `make test` runs this first.
# Installs what is missing when we are root and have apt-get (quiet, non-interactive);
# otherwise it only says so: the RTSP tests then skip with the reason. Never fails the build.
set -uo pipefail

PACKAGES=(
    python3-gi                  # PyGObject for /usr/bin/python3
    gir1.2-gst-rtsp-server-1.0  # GstRtspServer typelib (pulls libgstrtspserver, GStreamer)
    gstreamer1.0-plugins-base   # videotestsrc, videoconvert
    gstreamer1.0-plugins-good   # jpegenc, rtpjpegpay, rtph264pay
    gstreamer1.0-plugins-bad    # openh264enc
)

missing=()
for package in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$package" 2>/dev/null || true)
    [[ $status == ii* ]] || missing+=("$package")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
    echo "rtsp-test-server: not root or no apt-get; missing ${missing[*]} (RTSP tests will skip)" >&2
    exit 0
fi

echo "rtsp-test-server: installing ${missing[*]}" >&2
started=$SECONDS
log=$(mktemp -t rtsp-test-server.XXXXXX.log)
export DEBIAN_FRONTEND=noninteractive
apt_install() {
    apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 \
        -o DPkg::Lock::Timeout=120 "${missing[@]}" >>"$log" 2>&1
}
# A fresh image may have no package lists yet: update only if the first try fails.
if ! apt_install; then
    apt-get update -qq -o DPkg::Lock::Timeout=120 >>"$log" 2>&1
    if ! apt_install; then
        echo "rtsp-test-server: apt-get failed (RTSP tests will skip); see $log:" >&2
        tail -n 5 "$log" >&2
        exit 0
    fi
fi
echo "rtsp-test-server: installed in $((SECONDS - started)) s" >&2
rm -f "$log"
