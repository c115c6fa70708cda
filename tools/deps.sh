#!/bin/sh
# Checks the packages (Debian names) that `make`, `make check` and `make bench`
# use. When one is missing: installs with apt-get if we are root on
# Debian/Ubuntu, otherwise prints the exact command and fails.
#   build: a C compiler and make, pkg-config, the headers of Lua 5.4, libcurl,
#          OpenSSL, expat and libmicrohttpd; lua-cjson (loaded by the Lua library)
#   check: /usr/bin/python3 with boto3 and the AWS CLI (real clients against the
#          simulator), valgrind (the C tests), clang-format (tools/check_c_style.sh)
#          python3-jsonschema (the --log-format json events against docs/events.schema.json),
#          chromium (headless: the HTML report's page), luarocks (team libraries as rocks),
#          lua-check (`ecsplay lint` runs luacheck), lua-busted/lua-luassert (`ecsplay test`),
#          tmux (the terminal-output test)
#   bench: the lua5.4 interpreter (start-up baseline); callgrind_annotate comes
#          with valgrind
BUILD_PKGS="build-essential pkg-config liblua5.4-dev libcurl4-openssl-dev libssl-dev libexpat1-dev libmicrohttpd-dev lua-cjson"
TEST_PKGS="python3 python3-boto3 python3-jsonschema awscli valgrind clang-format chromium luarocks lua-check lua-busted lua-luassert tmux"
BENCH_PKGS="lua5.4"
missing=""
for p in $BUILD_PKGS $TEST_PKGS $BENCH_PKGS; do
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
