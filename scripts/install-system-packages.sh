#!/usr/bin/env bash
# Debian packages the tests need beyond Python: WeasyPrint's libraries (PDF reports), fonts, and
# Chromium for the browser tests (Playwright drives /usr/bin/chromium; never `playwright install`).
# `chromium` brings the libraries its headless mode needs through its own dependencies; its
# recommendations (upower, udev, a notification daemon, printer set-up...) are for a desktop and
# are left out. fonts-liberation gives pages the usual Arial/Helvetica/Times metrics in screenshots.
# Installs only what is missing; needs root or sudo when something is.
set -euo pipefail
packages=(
  libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core  # WeasyPrint
  chromium fonts-liberation                                                # browser tests
  poppler-utils                                   # pdftoppm: the briefing pack's pages as PNG (CI artifacts)
)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "Installing Debian packages: ${missing[*]}"
run() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
run apt-get update -qq
run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
