#!/bin/sh
# Fails when C code uses a function STYLE.md bans (curl's list): unbounded
# copies and conversions that cannot report errors. Use snprintf, memcpy,
# strtol/strtoull instead. Also flags exit() in the library (errors go back to
# Lua or the caller, never out of the process).
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
[ $status -eq 0 ] && echo "C style: 1 passed, 0 failed" || echo "C style: 0 passed, 1 failed"
exit $status
