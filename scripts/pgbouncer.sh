#!/usr/bin/env bash
# Debian's pgbouncer, for the tests that run the hub through a private PgBouncer in
# transaction mode (tests/hub/kit/test_pgbouncer*.py). `make test` runs this first.
exec "$(dirname "$0")/apt-ensure.sh" pgbouncer pgbouncer
