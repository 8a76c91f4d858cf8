#!/usr/bin/env bash
# Installs everything the project needs on a Debian/Ubuntu machine: system packages (with apt-get,
# only where missing), a virtual environment in .venv, and the project with its test dependencies.
# Safe to run again: it does only what is still missing.
set -euo pipefail

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

# On a fresh machine unattended upgrades often hold the package manager's lock for minutes; apt-get then
# fails at once (exit 100). So every apt-get waits for the lock: apt's own DPkg::Lock::Timeout (apt >= 1.9.11)
# and, before it (older apt; apt-get update's lists lock), a wait loop with a message.
APT_LOCK_TIMEOUT_S=${FE_APT_LOCK_TIMEOUT_S:-600}
APT_LOCK_POLL_S=${FE_APT_LOCK_POLL_S:-5}
read -r -a DPKG_LOCK_FILES <<< "${FE_DPKG_LOCK_FILES:-/var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock}"

# Whether a process holds one of the lock files. apt and dpkg take fcntl (POSIX) locks, which flock(1)
# cannot see; /proc/locks lists them by inode (read-only: probing by taking the lock could make a
# concurrent dpkg fail). Without /proc, fuser tells whether any process has the file open.
dpkg_lock_held() {
  local f inode
  for f in "${DPKG_LOCK_FILES[@]}"; do
    [ -e "$f" ] || continue
    if [ -r /proc/locks ]; then
      inode=$(stat -c %i "$f") || continue
      awk -v inode="$inode" '{ n = split($6, id, ":"); if (id[n] == inode) found = 1 } END { exit !found }' /proc/locks && return 0
    elif command -v fuser >/dev/null 2>&1; then
      "${sudo_cmd[@]}" fuser -s "$f" 2>/dev/null && return 0
    fi
  done
  return 1
}

wait_for_dpkg_lock() {
  local deadline=$((SECONDS + APT_LOCK_TIMEOUT_S)) said=0
  while dpkg_lock_held; do
    if [ "$said" -eq 0 ]; then
      echo "setup: another package manager is running (unattended upgrades?); waiting up to ${APT_LOCK_TIMEOUT_S}s for its lock"
      said=1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "setup: the package manager's lock is still held after ${APT_LOCK_TIMEOUT_S}s; try again later (FE_APT_LOCK_TIMEOUT_S waits longer)" >&2
      return 1
    fi
    sleep "$APT_LOCK_POLL_S"
  done
  if [ "$said" -eq 1 ]; then echo "setup: the lock is free, going on"; fi
}

apt_get() {
  wait_for_dpkg_lock
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get -o DPkg::Lock::Timeout="$APT_LOCK_TIMEOUT_S" "$@"
}

# Sourced (by the tests of this script): the functions only.
if [ "${BASH_SOURCE[0]}" != "$0" ]; then return 0; fi
cd "$(dirname "$0")/.."

missing=()
[ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null 2>&1 || missing+=(mosquitto)
# grep without -q reads all of ldconfig's output: with -q, ldconfig could die of SIGPIPE and pipefail
# would report the library missing (and run apt-get on every set-up).
ldconfig -p 2>/dev/null | grep 'libzbar\.so\.0' >/dev/null || missing+=(libzbar0)
command -v sqlite3 >/dev/null 2>&1 || missing+=(sqlite3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
# A CJK font, so the enterprise's name prints under its QR code in PNG, and the supervision letters in PDF.
[ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || missing+=(fonts-wqy-microhei)
# pdftotext and pdftoppm, with which the tests read the supervision letters' PDFs back (text and QR code).
command -v pdftotext >/dev/null 2>&1 && command -v pdftoppm >/dev/null 2>&1 || missing+=(poppler-utils)
# Debian's Chromium for the real-browser tests (Playwright drives /usr/bin/chromium; no browser download).
[ -x /usr/bin/chromium ] || missing+=(chromium)
# PostgreSQL's server binaries (/usr/lib/postgresql/<version>/bin) for the tests' private clusters
# (tests/support/postgres.py; as root they run as the package's `postgres` user). The package also starts
# the machine's own cluster on 5432, which the tests never use.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}"
  apt_get update -qq
  apt_get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
stamp=.venv/.fe-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing Python packages into .venv (log: .venv/setup.log)"
  if ! { .venv/bin/python -m pip install --upgrade pip && .venv/bin/python -m pip install -e '.[test]'; } > .venv/setup.log 2>&1; then
    tail -40 .venv/setup.log >&2
    echo "setup: pip failed; the whole log is in .venv/setup.log" >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi
