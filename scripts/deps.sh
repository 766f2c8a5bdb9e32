# Sourced by demo.sh, test.sh and bench/run.sh: checks (and, as root, installs) what hpvm needs on Debian 12 besides the JDK,
# Maven and gcc. Never installs silently as a non-root user: prints the exact command instead.
# Arguments: extra COMMAND:PACKAGE pairs a caller needs (the tests need g++:g++ for their C++ workers).
hpvm_need() {
  local missing=() pair
  command -v java >/dev/null || { echo "hpvm: java (JDK 17+) is required: apt-get install -y openjdk-17-jdk-headless" >&2; return 1; }
  command -v mvn  >/dev/null || { echo "hpvm: Maven is required: apt-get install -y maven" >&2; return 1; }
  command -v gcc  >/dev/null || { echo "hpvm: gcc is required: apt-get install -y gcc" >&2; return 1; }
  if ! ldconfig -p 2>/dev/null | grep -q 'libcapstone\.so\.4' && [ ! -e /usr/lib/x86_64-linux-gnu/libcapstone.so.4 ]; then
    missing+=(libcapstone4)
  fi
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "hpvm: installing ${missing[*]}" >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >/dev/null 2>&1 \
        || { apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >/dev/null; } \
        || { echo "hpvm: could not install ${missing[*]}" >&2; return 1; }
    else
      echo "hpvm: missing ${missing[*]}; install with: sudo apt-get install -y ${missing[*]}" >&2
      return 1
    fi
  fi
}

# Builds every module quietly (no tests); shows Maven's output only when the build fails.
hpvm_build() {
  local log
  log=$(mktemp)
  mvn -B -ntp -q -Dstyle.color=never -DskipTests install > "$log" 2>&1 || { cat "$log"; rm -f "$log"; return 1; }
  rm -f "$log"
}
