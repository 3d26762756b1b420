#!/usr/bin/env bash
# apt-ensure.sh WHAT PACKAGE...: make sure Debian packages that some tests need are installed.
# Installs what is missing when we are root and have apt-get (quiet, non-interactive);
# otherwise it only says so, and the tests that need them skip with the reason. Never fails
# the build. WHAT names the purpose in messages.
set -uo pipefail

what=$1
shift
missing=()
for package in "$@"; do
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$package" 2>/dev/null || true)
    [[ $status == ii* ]] || missing+=("$package")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
    echo "$what: not root or no apt-get; missing ${missing[*]} (its tests will skip)" >&2
    exit 0
fi

echo "$what: installing ${missing[*]}" >&2
started=$SECONDS
log=$(mktemp -t apt-ensure.XXXXXX.log)
export DEBIAN_FRONTEND=noninteractive
apt_install() {
    apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 \
        -o DPkg::Lock::Timeout=120 "${missing[@]}" >>"$log" 2>&1
}
# A fresh image may have no package lists yet: update only if the first try fails.
if ! apt_install; then
    apt-get update -qq -o DPkg::Lock::Timeout=120 >>"$log" 2>&1
    if ! apt_install; then
        echo "$what: apt-get failed (its tests will skip); see $log:" >&2
        tail -n 5 "$log" >&2
        exit 0
    fi
fi
echo "$what: installed in $((SECONDS - started)) s" >&2
rm -f "$log"
