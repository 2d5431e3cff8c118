#!/usr/bin/env bash
# Headless Chromium for the UI tests (tests/services/test_ui.py): Debian's `chromium` and `chromium-driver`,
# installed only when missing, so re-running costs a `dpkg -s`. Needs root or sudo for apt-get.
set -euo pipefail
missing=()
for package in chromium chromium-driver; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-browser: chromium and chromium-driver already installed"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-browser: installing ${missing[*]} (apt-get)"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
chromium --version
