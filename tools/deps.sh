#!/bin/sh
# Checks ecsplay's build and test dependencies (Debian package names). When one
# is missing: installs with apt-get if we are root on Debian/Ubuntu, otherwise
# prints the exact command and fails.
BUILD_PKGS="liblua5.4-dev libcurl4-openssl-dev libssl-dev libexpat1-dev libmicrohttpd-dev pkg-config lua-cjson"
TEST_PKGS="python3-boto3 awscli valgrind"
missing=""
for p in $BUILD_PKGS $TEST_PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ecsplay: installing missing packages:$missing"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null || {
    echo "ecsplay: apt-get failed; install by hand: apt-get install$missing" >&2; exit 1; }
  exit 0
fi
echo "ecsplay: missing packages:$missing" >&2
echo "install them with: sudo apt-get install$missing" >&2
exit 1
