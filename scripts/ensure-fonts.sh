#!/usr/bin/env bash
# Make sure a Chinese (CJK) font is installed: the periodic review's PDF embeds it
# (server/accountability/pdf.py) and the charts measure their Chinese labels with it
# (server/stats/charts.py). As root: Debian's fonts-noto-cjk when fontconfig knows no Chinese font.
set -euo pipefail

if command -v fc-list >/dev/null 2>&1 && fc-list :lang=zh file | grep -qi "NotoSansCJK\|wqy"; then
    echo "ensure-fonts: a Chinese font is installed"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-fonts: no Chinese font is installed and we are not root;" >&2
    echo "ensure-fonts: as root run: apt-get install fonts-noto-cjk" >&2
    exit 1
fi

echo "ensure-fonts: installing fonts-noto-cjk"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-noto-cjk fontconfig >/dev/null
fc-list :lang=zh file | grep -qi "NotoSansCJK" || { echo "ensure-fonts: fonts-noto-cjk did not install a Chinese font" >&2; exit 1; }
echo "ensure-fonts: fonts-noto-cjk installed"
