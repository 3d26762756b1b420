#!/usr/bin/env bash
# Debian's Chromium for the console's end-to-end test (tests/console/test_browser.py).
# `make test` runs this first.
exec "$(dirname "$0")/apt-ensure.sh" chromium chromium
