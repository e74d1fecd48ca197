#!/bin/sh
# `make test` starts a throwaway PostgreSQL server (tests/pg_server.py) and needs its programs,
# initdb and pg_ctl. When the machine lacks them, install Debian's server package (as root or
# through sudo); otherwise say what to install. Runs in well under a second when they are there.
set -eu
have_server() {
    command -v initdb >/dev/null 2>&1 && return 0
    for found in /usr/lib/postgresql/*/bin/initdb; do
        [ -x "$found" ] && return 0
    done
    return 1
}
have_server && exit 0
if [ "$(id -u)" -eq 0 ]; then
    as_root=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root="sudo -n"
else
    echo "make test needs the PostgreSQL server (initdb, pg_ctl): install the postgresql package" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "make test needs the PostgreSQL server (initdb, pg_ctl): install it with your package manager" >&2
    exit 1
fi
echo "installing the PostgreSQL server for the tests (apt-get install postgresql)"
export DEBIAN_FRONTEND=noninteractive
$as_root apt-get install -y -q --no-install-recommends postgresql >/dev/null 2>&1 || {
    $as_root apt-get update -q >/dev/null
    $as_root apt-get install -y -q --no-install-recommends postgresql >/dev/null
}
have_server || { echo "the postgresql package installed no initdb" >&2; exit 1; }
