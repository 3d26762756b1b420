#!/usr/bin/env bash
# Debian's prometheus package, for `promtool check rules` on the generated SLO alert rules
# (tests/hub/observability). `make test` runs this first.
exec "$(dirname "$0")/apt-ensure.sh" promtool prometheus
