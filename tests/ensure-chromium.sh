#!/bin/sh
# `make test` opens the situation report in a real headless browser (tests/test_report_browser.py):
# Debian's chromium and chromium-driver. When the machine lacks them, install them as root (or
# through sudo); otherwise say so once: that test then skips with one line and the rest run.
set -eu
have_browser() {
    command -v chromedriver >/dev/null 2>&1 || [ -x /usr/bin/chromedriver ] || return 1
    command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || return 1
}
have_browser && exit 0
if [ "$(id -u)" -eq 0 ]; then
    as_root=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root="sudo -n"
else
    echo "no chromium here: the report's browser test will skip (install chromium and chromium-driver)" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "no chromium here: the report's browser test will skip (install chromium and chromedriver)" >&2
    exit 0
fi
echo "installing Chromium for the report's browser test (apt-get install chromium chromium-driver)"
export DEBIAN_FRONTEND=noninteractive
$as_root apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null 2>&1 || {
    $as_root apt-get update -q >/dev/null
    $as_root apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null
}
have_browser || { echo "the chromium packages installed no chromedriver" >&2; exit 1; }
