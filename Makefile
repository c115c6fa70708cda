# ecsplay — build, test, install. `make help` lists the targets.
PREFIX    ?= /usr/local
CC        ?= cc
PKGS      := lua5.4 libcurl openssl expat libmicrohttpd
# libcurl and libmicrohttpd are dlopen'ed on first use (runtime/netlib.c): their
# headers are needed to compile, but nothing links them, so a run that makes no
# HTTP call never maps them and their ~30 dependencies.
LINK_PKGS := lua5.4 libcrypto expat
STDLIBDIR := $(PREFIX)/share/ecsplay/lua
WARN      := -Wall -Wextra -Werror
BASECFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(WARN) -fPIC \
              -Iinclude -Iruntime -DECSPLAY_STDLIB_DIR='"$(STDLIBDIR)"'
OPT       ?= -O2 -g
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(LINK_PKGS) 2>/dev/null)
# dlopen/dladdr: in libc since glibc 2.34 (and in musl); older glibc needs -ldl.
LIBDL     := $(shell printf '\043include <dlfcn.h>\nint main(void){return dlopen("x",0)!=0;}\n' | \
               $(CC) -x c - -o /dev/null 2>/dev/null || echo -ldl)
CFLAGS_ALL = $(BASECFLAGS) $(OPT) $(PKG_CFLAGS) $(EXTRA_CFLAGS)
LDLIBS_ALL = $(PKG_LIBS) -lm $(LIBDL) $(EXTRA_LDFLAGS)

BUILD     ?= build
# Where the command and the static library go; the sanitizer build points these
# into its own folder so a normal ./ecsplay is never replaced by it.
BIN       ?= ecsplay
LIBA      ?= libecsplay.a
LIB_SRC   := $(filter-out runtime/main.c,$(wildcard runtime/*.c))
LIB_OBJ   := $(patsubst runtime/%.c,$(BUILD)/%.o,$(LIB_SRC))
TEST_SRC  := $(wildcard tests/c/test_*.c)
TEST_BIN  := $(patsubst tests/c/%.c,$(BUILD)/tests/%,$(TEST_SRC))
HEADERS   := $(wildcard runtime/*.h) include/ecsplay.h

.PHONY: all deps check check-asan check-valgrind clean-objs test-c demo example-report bench install uninstall models clean help format sweep fuzz

all: deps $(BIN) $(LIBA) libecsplay.so

help:
	@echo "make            build ecsplay, libecsplay.a, libecsplay.so (installs missing Debian packages)"
	@echo "make demo       rehearse playbooks/canary.lua on the built-in simulator"
	@echo "make example-report  regenerate docs/example-report.html (the --report page of that rehearsal)"
	@echo "make check      every test (C under valgrind if installed, Lua, the AWS CLI and boto3 against the simulator)"
	@echo "make check-asan the C and Lua tests under AddressSanitizer + UndefinedBehaviorSanitizer"
	@echo "make bench      benchmarks, written to docs/benchmarks.md"
	@echo "make format     reformat every C file in the style of .clang-format (make check checks it)"
	@echo "make models     regenerate stdlib-lua/ecsplay/aws/models from vendor/aws-models"
	@echo "make install PREFIX=/usr/local"

# Checks the build dependencies once per make; installs them with apt when
# possible (root on Debian/Ubuntu), otherwise names the exact command.
deps:
	@sh tools/deps.sh

$(BUILD)/%.o: runtime/%.c $(HEADERS) | $(BUILD)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

# host.c compiles in where `make install` puts the Lua library: rebuild it
# whenever PREFIX differs from the last build's.
# The stamp is rewritten (at parse time) only when the folder changes.
$(shell mkdir -p $(BUILD)/tests; echo '$(STDLIBDIR)' | cmp -s - $(BUILD)/prefix.stamp || echo '$(STDLIBDIR)' > $(BUILD)/prefix.stamp)
$(BUILD)/host.o: $(BUILD)/prefix.stamp

$(BUILD):
	@mkdir -p $(BUILD)/tests

$(LIBA): $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

libecsplay.so: $(LIB_OBJ)
	$(CC) -shared -o $@ $^ $(LDLIBS_ALL)

$(BIN): $(BUILD)/main.o $(LIBA)
	$(CC) -o $@ $(BUILD)/main.o $(LIBA) $(LDLIBS_ALL) -Wl,-E

$(BUILD)/tests/%: tests/c/%.c $(LIBA) $(HEADERS) | $(BUILD)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(LIBA) $(LDLIBS_ALL)

test-c: $(TEST_BIN)

# The C test programs run under valgrind (memcheck; an error or a definite leak
# fails the test) when valgrind is installed: about 15 s more. `make check
# VALGRIND=` runs them natively.
VALGRIND ?= $(shell command -v valgrind >/dev/null 2>&1 && echo 1)
check: all test-c
	@VALGRIND="$(VALGRIND)" sh tests/run.sh

# Sanitizer build in its own folder (build-asan/ecsplay, build-asan/libecsplay.a):
# ./ecsplay and ./libecsplay.a are left alone. The C tests and the Lua tests
# (through build-asan/ecsplay, via ECSPLAY_BIN) run under ASan + UBSan with
# LeakSanitizer on: the Lua state is closed at exit, so any leak is a bug.
# The Python tests are skipped here: they exercise `sim serve` over HTTP, which
# the Lua and C tests already cover, and would triple the run time under ASan.
# The folder is removed after a clean run and kept after a failing one.
ASAN_DIR  := build-asan
ASAN_OPT  := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
check-asan:
	rm -rf $(ASAN_DIR)
	$(MAKE) --no-print-directory $(ASAN_DIR)/ecsplay test-c BUILD=$(ASAN_DIR) \
	  BIN=$(ASAN_DIR)/ecsplay LIBA=$(ASAN_DIR)/libecsplay.a \
	  OPT="$(ASAN_OPT)" EXTRA_LDFLAGS="-fsanitize=address,undefined"
	ln -sfn ../stdlib-lua $(ASAN_DIR)/stdlib-lua
	@# reports go to files, so those of child processes (sim serve, playbooks a
	@# test starts) count too, even when the test ignores their exit code
	ASAN_OPTIONS=detect_leaks=1:detect_stack_use_after_return=1:log_path=$(CURDIR)/$(ASAN_DIR)/san \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$(CURDIR)/$(ASAN_DIR)/san \
	  BUILD=$(ASAN_DIR) ECSPLAY_BIN=$(ASAN_DIR)/ecsplay sh tests/run.sh c lua; rc=$$?; \
	if ls $(ASAN_DIR)/san.* >/dev/null 2>&1; then cat $(ASAN_DIR)/san.*; \
	  echo "check-asan: sanitizer reports above (kept in $(ASAN_DIR)/)"; rc=1; fi; exit $$rc
	rm -rf $(ASAN_DIR)

# The C tests under valgrind only (make check does this too when valgrind is installed).
check-valgrind: all test-c
	@VALGRIND=1 sh tests/run.sh c

# The rollback sweep (tests/sweep/, issue 12): every shipped playbook through sim serve,
# killed after each journal line then rolled back or resumed, interrupted, and faulted on
# each operation at each step, with the invariants checked after each case (make check runs
# a sample: tests/py/test_sweep_sample.py). About 25 minutes on 2 cores with 4 cases at a time
# (they mostly wait on the simulator's clock); SWEEP_JOBS=N.
sweep: all
	/usr/bin/python3 tests/sweep/sweep.py --all --jobs $${SWEEP_JOBS:-4}

# The bounded fuzzers (tests/fuzz/) at FUZZ_CASES (3000) cases each (make check runs 300
# through tests/lua/test_fuzz_sample.lua); ECSPLAY_BIN=build-asan/ecsplay after make check-asan.
fuzz: all
	FUZZ_CASES=$${FUZZ_CASES:-3000} /usr/bin/python3 tests/fuzz/fuzz.py

# The one C style (.clang-format); tools/check_c_style.sh fails on a file not in it.
C_FILES   = $(wildcard runtime/*.c runtime/*.h include/*.h tests/c/*.c tests/c/*.h bench/*.c)
format:
	clang-format -i $(C_FILES)

clean-objs:
	rm -f $(BIN) $(LIBA) libecsplay.so
	rm -rf $(BUILD)

demo: all
	./ecsplay --simulate playbooks/canary.lua

# docs/example-report.html, the --report page of the rehearsed canary (linked from README.md)
example-report: all
	sh tools/example_report.sh

bench: all
	sh bench/run.sh

models:
	/usr/bin/python3 tools/gen_models.py vendor/aws-models stdlib-lua/ecsplay/aws/models

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(STDLIBDIR)
	install -m 755 ecsplay $(DESTDIR)$(PREFIX)/bin/ecsplay
	install -m 644 libecsplay.a $(DESTDIR)$(PREFIX)/lib/libecsplay.a
	install -m 755 libecsplay.so $(DESTDIR)$(PREFIX)/lib/libecsplay.so
	install -m 644 include/ecsplay.h $(DESTDIR)$(PREFIX)/include/ecsplay.h
	cd stdlib-lua && find . -name '*.lua' -exec install -D -m 644 {} $(DESTDIR)$(STDLIBDIR)/{} \;
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(shell sed -n 's/#define ECSPLAY_VERSION "\(.*\)"/\1/p' include/ecsplay.h)|' \
	  tools/ecsplay.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/ecsplay.pc

uninstall:
	rm -rf $(DESTDIR)$(PREFIX)/bin/ecsplay $(DESTDIR)$(PREFIX)/lib/libecsplay.* \
	  $(DESTDIR)$(PREFIX)/include/ecsplay.h $(DESTDIR)$(PREFIX)/lib/pkgconfig/ecsplay.pc \
	  $(DESTDIR)$(PREFIX)/share/ecsplay

clean: clean-objs
	rm -rf build-asan .ecsplay
