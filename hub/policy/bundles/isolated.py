"""Child-process side of `check_isolated`: read a bundle's files (msgpack) on stdin, check
it, write the `RegoTestSummary` as JSON on stdout.

Run only as `python -m hub.policy.bundles.isolated`. Anything the compiler prints goes to
stderr, so stdout carries the report alone.
"""

import os
import sys

import msgspec


def main() -> int:
    """Check the bundle on stdin; exit status 0 whenever a report was written."""
    files = msgspec.msgpack.decode(sys.stdin.buffer.read(), type=dict[str, bytes])
    report_fd = os.dup(1)
    os.dup2(2, 1)  # the compiler's own output must not corrupt the report
    from hub.policy.bundles.testing import check_files

    summary = check_files(files)
    with os.fdopen(report_fd, "wb") as report:
        report.write(msgspec.json.encode(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
