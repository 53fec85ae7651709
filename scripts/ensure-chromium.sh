#!/usr/bin/env bash
# Make sure a Chromium for the Playwright browser tests exists, with CJK fonts for Chinese pages.
# As root: Debian's chromium and fonts-noto-cjk. Otherwise: Playwright's own download, if reachable.
set -euo pipefail

cd "$(dirname "$0")/.."

have_cjk_fonts() {
    if command -v fc-list >/dev/null 2>&1; then
        fc-list :lang=zh 2>/dev/null | grep -q .
    else
        [ -d /usr/share/fonts/opentype/noto ] && ls /usr/share/fonts/opentype/noto | grep -qi cjk
    fi
}

packages=()
[ -x /usr/bin/chromium ] || packages+=(chromium)
have_cjk_fonts || packages+=(fonts-noto-cjk)

if [ "${#packages[@]}" -eq 0 ]; then
    echo "ensure-chromium: /usr/bin/chromium and CJK fonts are present"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    echo "ensure-chromium: installing ${packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${packages[@]}" >/dev/null
    exit 0
fi

if [ -x /usr/bin/chromium ]; then
    echo "ensure-chromium: CJK fonts are missing and we are not root;" \
        "Chinese text in screenshots will show as boxes (apt-get install fonts-noto-cjk)" >&2
    exit 0
fi

echo "ensure-chromium: /usr/bin/chromium is missing and we are not root; trying Playwright's Chromium"
if ! .venv/bin/python -m playwright install chromium; then
    echo "ensure-chromium: could not install a Chromium (offline?)." >&2
    echo "ensure-chromium: as root run: apt-get install chromium fonts-noto-cjk" >&2
    exit 1
fi
