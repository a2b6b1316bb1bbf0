#!/usr/bin/env bash
# Makes sure a nats-server binary exists before the tests start one: the tests
# run against a real server and never mock NATS. Installs Debian's package when
# it can, and otherwise says exactly what to do.
set -euo pipefail

found() {
  if [ -n "${NATS_SERVER_BIN:-}" ]; then [ -x "$NATS_SERVER_BIN" ] && return 0; return 1; fi
  command -v nats-server >/dev/null 2>&1 && return 0
  for d in /usr/sbin /usr/local/bin /usr/local/sbin; do [ -x "$d/nats-server" ] && return 0; done
  return 1
}

if found; then exit 0; fi
if [ -n "${NATS_SERVER_BIN:-}" ]; then
  echo "NATS_SERVER_BIN=$NATS_SERVER_BIN is not an executable file." >&2
  exit 1
fi

echo "nats-server not found: installing Debian's package (apt-get install nats-server)." >&2
if ! command -v apt-get >/dev/null 2>&1; then
  echo "Cannot install nats-server here: no apt-get. Install nats-server 2.9.10 or newer from the NATS project's releases, put it on PATH or set NATS_SERVER_BIN, and run the tests again." >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo"
  else
    echo "Cannot install nats-server: not root and no password-less sudo. Run 'sudo apt-get install nats-server' (or set NATS_SERVER_BIN) and run the tests again." >&2
    exit 1
  fi
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nats-server >/dev/null
found || { echo "apt-get finished but no nats-server binary was found." >&2; exit 1; }
echo "installed: $(nats-server --version 2>/dev/null || /usr/sbin/nats-server --version)" >&2
