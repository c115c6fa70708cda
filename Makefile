# ecsplay — build, test, install. `make help` lists the targets.
PREFIX    ?= /usr/local
CC        ?= cc
PKGS      := lua5.4 libcurl openssl expat libmicrohttpd
STDLIBDIR := $(PREFIX)/share/ecsplay/lua
WARN      := -Wall -Wextra -Werror
BASECFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(WARN) -fPIC \
              -Iinclude -Iruntime -DECSPLAY_STDLIB_DIR='"$(STDLIBDIR)"'
OPT       ?= -O2 -g
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS_ALL = $(BASECFLAGS) $(OPT) $(PKG_CFLAGS) $(EXTRA_CFLAGS)
LDLIBS_ALL = $(PKG_LIBS) -lm $(EXTRA_LDFLAGS)

BUILD     ?= build
LIB_SRC   := $(filter-out runtime/main.c,$(wildcard runtime/*.c))
LIB_OBJ   := $(patsubst runtime/%.c,$(BUILD)/%.o,$(LIB_SRC))
TEST_SRC  := $(wildcard tests/c/test_*.c)
TEST_BIN  := $(patsubst tests/c/%.c,$(BUILD)/tests/%,$(TEST_SRC))
HEADERS   := $(wildcard runtime/*.h) include/ecsplay.h

.PHONY: all deps check check-asan check-valgrind test-c demo bench install uninstall models clean help

all: deps ecsplay libecsplay.a libecsplay.so

help:
	@echo "make            build ecsplay, libecsplay.a, libecsplay.so (installs missing Debian packages)"
	@echo "make demo       rehearse playbooks/canary.lua on the built-in simulator"
	@echo "make check      every test (C, Lua, the AWS CLI and boto3 against the simulator)"
	@echo "make check-asan the C and Lua tests under AddressSanitizer + UndefinedBehaviorSanitizer"
	@echo "make bench      benchmarks, written to docs/benchmarks.md"
	@echo "make models     regenerate stdlib-lua/ecsplay/models from ../shared/models"
	@echo "make install PREFIX=/usr/local"

# Checks the build dependencies once per make; installs them with apt when
# possible (root on Debian/Ubuntu), otherwise names the exact command.
deps:
	@sh tools/deps.sh

$(BUILD)/%.o: runtime/%.c $(HEADERS) | $(BUILD)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD):
	@mkdir -p $(BUILD)/tests

libecsplay.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

libecsplay.so: $(LIB_OBJ)
	$(CC) -shared -o $@ $^ $(LDLIBS_ALL)

ecsplay: $(BUILD)/main.o libecsplay.a
	$(CC) -o $@ $(BUILD)/main.o libecsplay.a $(LDLIBS_ALL) -Wl,-E

$(BUILD)/tests/%: tests/c/%.c libecsplay.a $(HEADERS) | $(BUILD)
	$(CC) $(CFLAGS_ALL) -o $@ $< libecsplay.a $(LDLIBS_ALL)

test-c: $(TEST_BIN)

check: all test-c
	@sh tests/run.sh

# Sanitizer build in its own folder; Lua tests run through the sanitized binary.
check-asan:
	$(MAKE) clean-objs BUILD=build-asan
	$(MAKE) ecsplay test-c BUILD=build-asan \
	  OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	  EXTRA_LDFLAGS="-fsanitize=address,undefined"
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 BUILD=build-asan sh tests/run.sh
	$(MAKE) clean-objs BUILD=build-asan

check-valgrind: all test-c
	@VALGRIND=1 sh tests/run.sh c

clean-objs:
	rm -f ecsplay libecsplay.a libecsplay.so
	rm -rf $(BUILD)

demo: all
	./ecsplay --simulate playbooks/canary.lua

bench: all
	sh bench/run.sh

models:
	/usr/bin/python3 tools/gen_models.py ../shared/models stdlib-lua/ecsplay/models

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
