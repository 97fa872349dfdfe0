#!/usr/bin/env bash
# Make sure Debian's Chromium (and its driver) is installed for the browser tests.
# The tests drive /usr/bin/chromium with Playwright; no browser is ever downloaded
# by Playwright itself. Installs with apt-get when it is missing (root, or sudo).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "chromium.sh: /usr/bin/chromium is missing and this is not root: apt-get install chromium chromium-driver" >&2
    exit 1
  fi
fi
apt_install() {
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver
}
echo "chromium.sh: installing Debian's chromium and chromium-driver" >&2
log="$(mktemp)"
if ! apt_install >"$log" 2>&1; then
  $SUDO apt-get update -q >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
  apt_install >"$log" 2>&1 || { cat "$log" >&2; echo "chromium.sh: apt-get install failed" >&2; rm -f "$log"; exit 1; }
fi
rm -f "$log"
/usr/bin/chromium --version >&2
