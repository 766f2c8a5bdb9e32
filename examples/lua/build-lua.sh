#!/usr/bin/env bash
# Builds the Lua 5.4 interpreter from Debian's source package with symbols (gcc -O2 -g), for hpvm's real-program
# test. Usage: build-lua.sh OUTDIR  -> prints OUTDIR/lua; OUTDIR/src is the source tree used.
# Exit status 3: the source package cannot be fetched here (no deb-src line and not root, or no network).
set -euo pipefail
out="$1"
mkdir -p "$out"
cd "$out"
if ! ls -d lua5.4-*/src >/dev/null 2>&1; then
  if ! grep -rqs '^Types: deb-src\|^deb-src ' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    if [ "$(id -u)" != 0 ]; then
      echo "build-lua.sh: no deb-src line in /etc/apt; as root, add one (see this script) to fetch lua5.4" >&2
      exit 3
    fi
    cat > /etc/apt/sources.list.d/hpvm-deb-src.sources <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    apt-get update > apt-update.log 2>&1 || { echo "build-lua.sh: apt-get update failed" >&2; exit 3; }
  fi
  if ! command -v dpkg-source >/dev/null; then
    [ "$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y dpkg-dev > apt-install.log 2>&1 \
      || { echo "build-lua.sh: dpkg-dev (dpkg-source) is needed" >&2; exit 3; }
  fi
  apt-get source lua5.4 > apt-source.log 2>&1 || { echo "build-lua.sh: apt-get source lua5.4 failed:" >&2;
    tail -3 apt-source.log >&2; exit 3; }
fi
src=$(ls -d lua5.4-*/src | head -1)
ln -sfn "$src" src
mkdir -p inc
# Debian's patches include a header that its build generates.
echo '#define DEB_HOST_MULTIARCH "x86_64-linux-gnu"' > inc/lua5.4-deb-multiarch.h
if [ ! -x lua ] || [ "$src/lstrlib.c" -nt lua ]; then
  gcc -O2 -g -DLUA_COMPAT_5_3 -DLUA_USE_LINUX -Iinc -o lua $(ls "$src"/*.c | grep -v '/luac\.c$') -lm -ldl
fi
echo "$out/lua"
