#!/usr/bin/env bash
# Prepares Debian's redis-server for patching from its own source (examples/redis/README.md, RedisRealProgramTest):
# installs redis-server and redis-tools when missing (as root), fetches the redis source package at the installed
# version (adding deb-src lines for bookworm, bookworm-updates and bookworm-security: a security update's source is
# only there), installs what compiling one of its files needs, and works out the flags Debian's build compiles
# src/*.c with (dpkg-buildflags as debian/rules sets them, then the Makefile's own, from `make -n`).
#   Usage: fetch-redis.sh OUTDIR  -> prints two lines: the source tree's src/ directory, then the flags
#   (include paths made absolute, so the flags work from any directory).
# Exit status 3: something cannot be fetched or installed here (not root, or no network): the caller skips.
set -euo pipefail
out=$1
mkdir -p "$out"
cd "$out"
out=$PWD

as_root() { [ "$(id -u)" = 0 ]; }
install() {  # install PACKAGE... when missing; exit 3 when it cannot be done
  local missing=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} = 0 ] && return 0
  as_root || { echo "fetch-redis.sh: missing ${missing[*]}; as root: apt-get install -y ${missing[*]}" >&2; exit 3; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" > "$out/apt-install.log" 2>&1 \
    || { apt-get update > "$out/apt-update.log" 2>&1 \
         && DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" > "$out/apt-install.log" 2>&1; } \
    || { echo "fetch-redis.sh: apt-get install ${missing[*]} failed:" >&2; tail -3 "$out/apt-install.log" >&2; exit 3; }
}

if ! dpkg -s redis-server >/dev/null 2>&1; then
  install redis-server redis-tools
  # The package starts its service on port 6379; hpvm's test runs its own server on a port of its own.
  (service redis-server stop || systemctl stop redis-server) > /dev/null 2>&1 || true
fi
install redis-tools dpkg-dev libsystemd-dev libjemalloc-dev liblzf-dev libssl-dev pkg-config

version=$(dpkg-query -W -f='${Version}' redis-server)  # 5:7.0.15-1~deb12u10
upstream=${version#*:}
upstream=${upstream%%-*}
if [ "$(cat version 2>/dev/null)" != "$version" ] || [ ! -d "redis-$upstream/src" ]; then
  rm -rf "redis-$upstream" version
  if ! apt-cache showsrc redis 2>/dev/null | grep -qx "Version: $version"; then
    as_root || { echo "fetch-redis.sh: apt knows no source of redis $version (it needs deb-src lines for bookworm" \
      "and bookworm-security); as root this script adds them" >&2; exit 3; }
    cat > /etc/apt/sources.list.d/hpvm-deb-src-redis.sources <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    apt-get update > apt-update.log 2>&1 || { echo "fetch-redis.sh: apt-get update failed" >&2; exit 3; }
  fi
  apt-get source "redis=$version" > apt-source.log 2>&1 || { echo "fetch-redis.sh: apt-get source redis=$version" \
    "failed:" >&2; tail -3 apt-source.log >&2; exit 3; }
  echo "$version" > version
fi

src="$out/redis-$upstream/src"
cd "$src"
# As debian/rules: hardening on, liblzf's headers, the build's own make variables.
export DEB_BUILD_MAINT_OPTIONS=hardening=+all DEB_CFLAGS_MAINT_APPEND=-I/usr/include/liblzf
eval "$(dpkg-buildflags --export=sh)"
line=$(make -n V=1 USE_SYSTEM_JEMALLOC=yes USE_SYSTEMD=yes USE_JEMALLOC=yes BUILD_TLS=yes server.o 2>/dev/null \
  | grep -E '(^| )-c server\.c$' | tail -1)
[ -n "$line" ] || { echo "fetch-redis.sh: cannot find how the Makefile compiles server.c" >&2; exit 1; }
# "cc FLAGS -MMD -o server.o -c server.c" -> FLAGS; the shell quoting of REDIS_STATIC='' dropped (hpvm splits
# flags on spaces), -I../x made absolute.
flags=$(sed -e 's/^[^ ]* //' -e 's/ -MMD .*//' -e "s/-DREDIS_STATIC=''/-DREDIS_STATIC=/" \
  -e "s# -I\.\./# -I$src/../#g" <<<"$line")
echo "$src"
echo "$flags"
