#!/bin/sh
# The C style check (tests/run.sh's `style` group, so `make check`):
#  1. none of the functions curl bans (its banned.h list): unbounded copies and conversions
#     that cannot report errors. Use snprintf, memcpy, strtol/strtoull instead.
#     Also flags exit() in the library (errors go back to Lua or the caller,
#     never out of the process).
#  2. every C file is formatted as .clang-format says (clang-format --dry-run
#     -Werror); a file that is not is named. `make format` fixes them. Skipped,
#     with a message, when clang-format is not installed (`make` installs it);
#     CLANG_FORMAT=path picks the binary (the style was set with clang-format 14).
cd "$(dirname "$0")/.." || exit 1
passed=0; failed=0; skipped=0

bad=$(grep -nE '(^|[^_[:alnum:]])(sprintf|vsprintf|strcpy|strcat|strtok|atoi|atol|gets)[[:space:]]*\(' \
  runtime/*.c tests/c/*.c bench/*.c 2>/dev/null)
lib_exit=$(grep -nE '(^|[^_[:alnum:]])exit[[:space:]]*\(' runtime/*.c 2>/dev/null | grep -v 'runtime/main.c')
status=0
if [ -n "$bad" ]; then
  echo "banned C functions (use snprintf, memcpy, strtol):"; echo "$bad"; status=1
fi
if [ -n "$lib_exit" ]; then
  echo "exit() in the library (raise a Lua error or return a code instead):"; echo "$lib_exit"; status=1
fi
if [ $status -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi

files=$(ls runtime/*.c runtime/*.h include/*.h tests/c/*.c tests/c/*.h bench/*.c 2>/dev/null)
cf=${CLANG_FORMAT:-}
if [ -z "$cf" ]; then
  for c in clang-format-14 clang-format; do
    if command -v "$c" >/dev/null 2>&1; then cf=$c; break; fi
  done
fi
if [ -z "$cf" ] || ! command -v "$cf" >/dev/null 2>&1; then
  echo "C format: SKIPPED, clang-format is not installed (apt-get install clang-format; make does)"
  skipped=$((skipped + 1))
else
  unformatted=""
  for f in $files; do
    if "$cf" --style=file --dry-run -Werror "$f" >/dev/null 2>&1; then
      passed=$((passed + 1))
    else
      failed=$((failed + 1)); unformatted="$unformatted $f"
    fi
  done
  if [ -n "$unformatted" ]; then
    echo "C files not formatted as .clang-format says ($($cf --version | head -n 1)):"
    for f in $unformatted; do echo "  $f"; done
    echo "fix with: make format   (or: $cf -i FILE); first differences:"
    for f in $unformatted; do "$cf" --style=file --dry-run "$f" 2>&1 | head -n 6; done
  fi
fi
echo "C style: $passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
