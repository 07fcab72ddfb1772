# ebb -- build, install, test.  `make help` lists the targets.

CC       ?= cc
PREFIX   ?= /usr/local
LIBDIR   ?= $(PREFIX)/lib
INCDIR   ?= $(PREFIX)/include
DATADIR  ?= $(PREFIX)/share
B        ?= build

WARN     := -Wall -Wextra -Werror
BASE     := -std=c11 $(WARN) -Isrc -fPIC -fvisibility=hidden -fno-semantic-interposition -g
OPT      ?= -O2
# ARCHFLAGS go to every compile and link, the library's and the tests' (e.g.
# -m32, as check-m32 does); empty for the native build.
ARCHFLAGS ?=
BASE     += $(ARCHFLAGS)
LIBFLAGS := $(BASE) $(OPT) $(EXTRA_CFLAGS)
# tests/include: the helpers the C tests share (child processes, API and
# unit test support, the size-class rule).
TEST_INC := $(wildcard tests/include/*.h)
TESTFLAGS := -std=c11 $(WARN) -g -O1 -Iinclude -Isrc -Itests/include $(ARCHFLAGS) $(EXTRA_CFLAGS)
# API tests export their own functions (-rdynamic), so that a report's
# frames name them (test_report, test_sample).
API_LINK := -rdynamic
VERSION  := $(shell sed -n 's/^\#define EBB_VERSION_STRING "\(.*\)"/\1/p' include/ebb.h)

VIEWER_H := $(B)/gen/ebb_viewer.h
SRC      := $(wildcard src/*.c src/*/*.c) $(wildcard src/*.h src/*/*.h) include/ebb.h $(VIEWER_H)

.PHONY: all lib tool python bench-python check-python check-python-versions install uninstall clean help check check-debug check-install check-unit check-api check-stress \
        check-preload check-sanitizers check-asan check-ubsan check-tsan check-m32 check-layers check-map fuzz peer bench bench-python demo

all: lib tool
lib: $(B)/libebb.so $(B)/libebb.a $(B)/ebb.pc
tool: $(B)/ebb

help:
	@echo "make               build $(B)/libebb.so, $(B)/libebb.a, $(B)/ebb.pc"
	@echo "make install PREFIX=/usr/local"
	@echo "make check         unit, API, stress and LD_PRELOAD tests (what scripts/test.sh runs first)"
	@echo "make check-sanitizers   API tests under ASan and UBSan"
	@echo "make check-tsan    stress, races and signal tests under ThreadSanitizer (clang): no report"
	@echo "make check-layers  no lower layer of src/ calls an upper one (and the check's own test)"
	@echo "make check-map     ebb map on live 64- and 32-bit processes, ebb map -- program, its errors"
	@echo "make check-m32     unit, API, stress and LD_PRELOAD tests as a 32-bit (gcc -m32) program, in $(B)/m32"
	@echo "                   (needs gcc-multilib and libcmocka-dev:i386: scripts/deps.sh m32)"
	@echo "make B=build/m32 ARCHFLAGS=-m32 build/m32/libebb.so"
	@echo "                   a 32-bit libebb.so, to run a -m32 program on ebb with"
	@echo "                   LD_PRELOAD=\$$PWD/build/m32/libebb.so prog"
	@echo "make fuzz          libFuzzer run (FUZZ_SECONDS=60)"
	@echo "make peer          CPython, sqlite3, git, gcc, C++ under LD_PRELOAD"
	@echo "make bench         benchmark table against glibc, mimalloc, jemalloc, tcmalloc"
	@echo "make bench-python  Python workloads: ebb run, ebb.install() against pymalloc and the peers"

# The HTML report's viewer (src/insight/viewer/: the page, its CSS and JS) as
# a C header in the build directory, which the library and the tool write
# pages from (scripts/embed_viewer.sh).  Every build of src/ebb.c below gets
# it through VIEWER_FLAGS; one without it writes a page that shows the JSON.
VIEWER_SRC   := $(wildcard src/insight/viewer/*)
VIEWER_FLAGS := -I$(B)/gen -DEBB_HAVE_VIEWER=1
$(VIEWER_H): $(VIEWER_SRC) scripts/embed_viewer.sh
	@mkdir -p $(@D)
	sh scripts/embed_viewer.sh src/insight/viewer $@

# ------------------------------------------------------------------ library
$(B)/ebb.o: $(SRC)
	@mkdir -p $(@D)
	$(CC) $(LIBFLAGS) $(VIEWER_FLAGS) -c src/ebb.c -o $@

$(B)/libebb.so: $(B)/ebb.o
	$(CC) $(ARCHFLAGS) -shared -Wl,-soname,libebb.so -Wl,-z,now -o $@ $< $(LDFLAGS)

$(B)/libebb.a: $(B)/ebb.o
	rm -f $@
	ar rcs $@ $<

# The command-line tool: an ordinary program on the C library's malloc.
# `ebb map` compiles the library's address-space analysis and /proc reader
# in as they are (pure, and OS-only: src/insight/addrspace.c says why).
CLI_SRC := $(wildcard cli/*.c) cli/cli.h include/ebb.h src/base/size.h src/base/options_table.h src/insight/blackbox.h \
           src/insight/addrspace.c src/insight/addrspace_out.c src/insight/addrspace.h src/os/linux_maps.c \
           src/os/os.h src/config.h src/insight/status.h \
           $(VIEWER_H)
$(B)/ebb: $(CLI_SRC)
	@mkdir -p $(@D)
	$(CC) -std=c11 $(WARN) -g $(OPT) $(ARCHFLAGS) $(EXTRA_CFLAGS) -I$(B)/gen $(filter %.c,$(CLI_SRC)) -o $@

# The Python package (setup.py): built for $(PYTHON) into $(B)/python, the
# directory to put on PYTHONPATH.  Debian's interpreter by default, the one
# CI runs; PYTHON=python3.X builds for another (needs its setuptools).
# build_ext --force: setuptools looks only at the files setup.py names, not
# at the ebb sources src/ebb.c includes.  EBB_BUILD_TEST_HOOKS=1: this build
# is the one the tests use, so it has the module's test-only functions
# (python/test_hooks.c), which `pip install .` leaves out.
PYTHON   ?= /usr/bin/python3
PY_SRC   := setup.py $(wildcard python/*.c python/*.h python/ebb/*) $(SRC)
$(B)/python/.built-$(notdir $(PYTHON)): $(PY_SRC)
	@mkdir -p $(@D)
	cd $(CURDIR) && EBB_BUILD_TEST_HOOKS=1 $(PYTHON) setup.py -q \
	  build_py --build-lib $(abspath $(B)/python) build_ext --force --build-lib $(abspath $(B)/python) \
	  --build-temp $(abspath $(B)/python/tmp-$(notdir $(PYTHON)))
	@touch $@
python: $(B)/python/.built-$(notdir $(PYTHON))

# The Python tests with Debian's interpreter and pytest (module, launcher,
# pip install .), then with every other CPython 3.8-3.13 found (unittest).
check-python: lib tool python
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/python
check-python-versions: lib tool
	tests/python/versions.sh

PC_SED = sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCDIR@|$(INCDIR)|' \
	     -e 's|@VERSION@|$(VERSION)|'
$(B)/ebb.pc: ebb.pc.in include/ebb.h
	@mkdir -p $(@D)
	$(PC_SED) $< > $@

BINDIR   ?= $(PREFIX)/bin
install: lib tool
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR)/ebb
	install -m 755 $(B)/ebb $(DESTDIR)$(BINDIR)/ebb
	install -m 644 schema/ebb.report-1.json $(DESTDIR)$(DATADIR)/ebb/ebb.report-1.json
	install -m 644 schema/ebb.map-1.json $(DESTDIR)$(DATADIR)/ebb/ebb.map-1.json
	install -m 644 include/ebb.h $(DESTDIR)$(INCDIR)/ebb.h
	install -m 755 $(B)/libebb.so $(DESTDIR)$(LIBDIR)/libebb.so
	install -m 644 $(B)/libebb.a $(DESTDIR)$(LIBDIR)/libebb.a
	$(PC_SED) ebb.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/ebb.pc

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/ebb $(DESTDIR)$(INCDIR)/ebb.h $(DESTDIR)$(LIBDIR)/libebb.so $(DESTDIR)$(LIBDIR)/libebb.a \
	      $(DESTDIR)$(LIBDIR)/pkgconfig/ebb.pc $(DESTDIR)$(DATADIR)/ebb/ebb.report-1.json \
	      $(DESTDIR)$(DATADIR)/ebb/ebb.map-1.json
	-rmdir $(DESTDIR)$(DATADIR)/ebb

clean:
	rm -rf build bench/build

# ------------------------------------------------------------------ tests
# Unit tests (white box, one per layer) link a debug build with internal
# assertions on; API tests link the release library as users do.
DBG := $(B)/debug
$(DBG)/libebb.a: $(SRC)
	@mkdir -p $(@D)
	$(CC) $(BASE) $(VIEWER_FLAGS) -O1 -DEBB_DEBUG=1 -fvisibility=default -c src/ebb.c -o $(DBG)/ebb.o
	rm -f $@ && ar rcs $@ $(DBG)/ebb.o

# Every test run is recorded in the tally (tests/tally/tally.sh: one record
# per test in $TEST_TALLY, which scripts/test.sh reads); a loop over test
# programs runs them all and fails at the end if any failed.
TALLY    := tests/tally/tally.sh

UNIT_SRC := $(wildcard tests/unit/test_*.c)
API_SRC  := $(wildcard tests/api/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(B)/tests/unit/%,$(UNIT_SRC))
API_BIN  := $(patsubst tests/api/%.c,$(B)/tests/api/%,$(API_SRC))

$(B)/tests/unit/%: tests/unit/%.c $(TEST_INC) $(DBG)/libebb.a
	@mkdir -p $(@D)
	$(CC) $(TESTFLAGS) -DEBB_DEBUG=1 $< $(DBG)/libebb.a -lcmocka -lpthread -o $@

$(B)/tests/api/%: tests/api/%.c $(TEST_INC) $(B)/libebb.a
	@mkdir -p $(@D)
	$(CC) $(TESTFLAGS) $(API_LINK) $< $(B)/libebb.a -lcmocka -lpthread -o $@

# test_unwind dlopens two builds of one library beside its executable: the
# same code with frames of different sizes (test_unwind.c says why).
%/libcallback_a.so: tests/api/callback_lib.c
	@mkdir -p $(@D)
	$(CC) $(TESTFLAGS) -fPIC -shared -DFRAME=256 $< -o $@
%/libcallback_b.so: tests/api/callback_lib.c
	@mkdir -p $(@D)
	$(CC) $(TESTFLAGS) -fPIC -shared -DFRAME=4096 $< -o $@
CALLBACK_LIBS = $(1)/libcallback_a.so $(1)/libcallback_b.so
$(B)/tests/api/test_unwind: $(call CALLBACK_LIBS,$(B)/tests/api)

check-unit: $(UNIT_BIN)
	@rc=0; for t in $(UNIT_BIN); do echo "== $$t"; $(TALLY) cmocka $$t || rc=1; done; exit $$rc

check-api: $(API_BIN)
	@rc=0; for t in $(API_BIN); do echo "== $$t"; $(TALLY) cmocka $$t || rc=1; done; exit $$rc

STRESS_SCALE ?= 1
$(B)/tests/stress: tests/stress/stress.c $(B)/libebb.a
	@mkdir -p $(@D)
	$(CC) $(TESTFLAGS) $< $(B)/libebb.a -lpthread -o $@
$(B)/tests/stress-libc: tests/stress/stress.c
	@mkdir -p $(@D)
	$(CC) $(TESTFLAGS) -DSTRESS_USE_LIBC $< -lpthread -o $@

# The stress test under random OS faults: the debug library, whose requests
# to the OS for memory and threads fail at random (EBB__FAULT_ONE_IN).
$(B)/tests/stress-faults: tests/stress/stress.c $(DBG)/libebb.a
	@mkdir -p $(@D)
	$(CC) $(TESTFLAGS) -DSTRESS_FAULTS $< $(DBG)/libebb.a -lpthread -o $@

check-stress: $(B)/tests/stress $(B)/tests/stress-libc $(B)/tests/stress-faults $(B)/libebb.so
	EBB_STRESS_SCALE=$(STRESS_SCALE) $(TALLY) run "$(B)/tests/stress" $(B)/tests/stress
	EBB_STRESS_SCALE=$(STRESS_SCALE) LD_PRELOAD=$(abspath $(B)/libebb.so) \
	  $(TALLY) run "$(B)/tests/stress-libc under LD_PRELOAD" $(B)/tests/stress-libc
	@echo "stress: again with the purger running every millisecond (and no sampling: every"
	@echo "        large block must be gone at the end), then purging at once"
	EBB_STRESS_SCALE=$(STRESS_SCALE) EBB_PURGE_DELAY_MS=1 EBB_SAMPLE_RATE=0 \
	  $(TALLY) run "$(B)/tests/stress (EBB_PURGE_DELAY_MS=1, no sampling)" $(B)/tests/stress
	EBB_STRESS_SCALE=$(STRESS_SCALE) EBB_PURGE_DELAY_MS=0 LD_PRELOAD=$(abspath $(B)/libebb.so) \
	  $(TALLY) run "$(B)/tests/stress-libc under LD_PRELOAD (EBB_PURGE_DELAY_MS=0)" $(B)/tests/stress-libc
	@echo "stress: under random OS faults, 1 request in 40, then 1 in 3 (every failure a clean ENOMEM)"
	EBB_STRESS_SCALE=$(STRESS_SCALE) EBB__FAULT_ONE_IN=40 EBB__FAULT_SEED=1 \
	  $(TALLY) run "$(B)/tests/stress-faults (1 in 40)" $(B)/tests/stress-faults
	EBB_STRESS_SCALE=$(STRESS_SCALE) EBB__FAULT_ONE_IN=3 EBB__FAULT_SEED=2 EBB_PURGE_DELAY_MS=1 \
	  $(TALLY) run "$(B)/tests/stress-faults (1 in 3)" $(B)/tests/stress-faults

$(B)/tests/preload_smoke: tests/preload/preload_smoke.c
	@mkdir -p $(@D)
	$(CC) $(TESTFLAGS) -D_GNU_SOURCE $< -ldl -o $@

check-preload: $(B)/tests/preload_smoke $(B)/libebb.so
	LD_PRELOAD=$(abspath $(B)/libebb.so) $(TALLY) run "$(B)/tests/preload_smoke" $(B)/tests/preload_smoke

# ebb in a statically linked program (libebb.a, -static): no loader among
# a free's callers to tell that glibc holds its thread-stack lock, so ebb
# reads that lock's word (os/linux_stack.c).  Without it, the join in
# tests/static/join.c deadlocked every time, with every signal blocked.
$(B)/tests/static_join: tests/static/join.c $(TEST_INC) $(B)/libebb.a
	@mkdir -p $(@D)
	$(CC) $(TESTFLAGS) -static $< $(B)/libebb.a -lpthread -o $@

check-static: $(B)/tests/static_join
	EBB_PURGE_DELAY_MS=50 $(TALLY) run "$(B)/tests/static_join: a static program joins threads as the purger must restart" \
	  timeout -s KILL 60 $(B)/tests/static_join

check: check-unit check-api check-stress check-preload check-static check-install

check-install: lib
	$(TALLY) run "make install, then a program built with pkg-config" tests/install/check.sh

# `ebb map` on live processes (tests/map/test_map_live.py): 64-bit, on ebb,
# 32-bit (the test builds its 32-bit probe with $(CC) -m32, and skips by
# name without gcc-multilib), `ebb map -- program`, and the errors.  The
# analysis itself is unit-tested on fixtures (tests/unit/test_addrspace.c).
$(B)/map/probe64: tests/map/probe.c
	@mkdir -p $(@D)
	$(CC) -std=c11 $(WARN) -g -O1 $(EXTRA_CFLAGS) $< -lpthread -o $@

check-map: tool lib $(B)/map/probe64
	EBB_TOOL=$(abspath $(B)/ebb) EBB_LIB=$(abspath $(B)/libebb.so) EBB_MAP_PROBES=$(abspath $(B)/map) \
	  CC="$(CC)" python3 tests/tally/tally.py tests/map/test_map_live.py

# The layering of src/ (src/internal.h draws it): every file compiled on its
# own, no symbol of an upper layer referred to by a lower one, no cycle of
# more than three files; then the check's own test, which breaks a copy of
# the tree and expects the check to say so.
check-layers:
	$(TALLY) run "tests/layers/check_layers.py" python3 tests/layers/check_layers.py
	python3 tests/tally/tally.py tests/layers/test_check_layers.py

# The API tests against a library that walks every structure (ebb_check) on
# each slow path: slow, thorough.
check-debug: $(SRC) $(call CALLBACK_LIBS,$(B)/debug2/tests)
	@mkdir -p $(B)/debug2/tests
	$(CC) $(BASE) $(VIEWER_FLAGS) -O1 -DEBB_DEBUG=2 -c src/ebb.c -o $(B)/debug2/ebb.o
	rm -f $(B)/debug2/libebb.a && ar rcs $(B)/debug2/libebb.a $(B)/debug2/ebb.o
	@rc=0; for src in $(API_SRC); do t=$(B)/debug2/tests/$$(basename $$src .c); \
	  $(CC) $(TESTFLAGS) $(API_LINK) $$src $(B)/debug2/libebb.a -lcmocka -lpthread -o $$t || exit 1; \
	  echo "== $$t (EBB_DEBUG=2)"; EBB_TEST_MB=16 $(TALLY) cmocka $$t || rc=1; done; exit $$rc

# Sanitizer builds: the sanitizer runtime owns malloc, so the library is
# built without its malloc exports and the tests use the ebb_* API.
SAN_asan  := -fsanitize=address -fno-omit-frame-pointer
SAN_ubsan := -fsanitize=undefined -fno-sanitize-recover=all
$(B)/%/libebb-san.a: $(SRC)
	@mkdir -p $(@D)
	$(CC) $(BASE) $(VIEWER_FLAGS) -O1 -DEBB_DEBUG=1 -DEBB_NO_OVERRIDE $(SAN_$*) -c src/ebb.c -o $(@D)/ebb.o
	rm -f $@ && ar rcs $@ $(@D)/ebb.o

# test_fork is left out of the ASan run: forking a multi-threaded process
# under ASan deadlocks or trips CHECKs inside ASan's own runtime (its locks
# and thread records survive fork; google/sanitizers#774, #47), seen here as
# a child stuck in ASan or "CHECK failed: asan_thread.cpp:371".  It runs in
# every other build (release, clang, UBSan, EBB_DEBUG=2).
SAN_SKIP_asan := tests/api/test_fork.c
SAN_SKIP_WHY_asan := fork of a multi-threaded process deadlocks in ASan's runtime (google/sanitizers 774); it runs in every other build
check-asan: $(call CALLBACK_LIBS,$(B)/asan/tests)
check-ubsan: $(call CALLBACK_LIBS,$(B)/ubsan/tests)
check-asan check-ubsan: check-%: $(B)/%/libebb-san.a
	@rc=0; mkdir -p $(B)/$*/tests; \
	for src in $(SAN_SKIP_$*); do \
	  $(TALLY) record skip "$(B)/$*/tests/$$(basename $$src .c)" "$(SAN_SKIP_WHY_$*)"; done; \
	for src in $(filter-out $(SAN_SKIP_$*),$(API_SRC)) tests/stress/stress.c; do \
	  t=$(B)/$*/tests/$$(basename $$src .c); \
	  $(CC) $(TESTFLAGS) $(API_LINK) $(SAN_$*) $$src $(B)/$*/libebb-san.a -lcmocka -lpthread -o $$t || exit 1; \
	  echo "== $$t ($*)"; kind=cmocka; [ $$src = tests/stress/stress.c ] && kind="run $$t"; \
	  ASAN_OPTIONS=detect_leaks=0 EBB_STRESS_SCALE=1 $(TALLY) $$kind $$t || rc=1; done; exit $$rc

check-sanitizers: check-asan check-ubsan

# ThreadSanitizer (clang's): the stress test, and the tests of what runs
# beside the churn (introspection, fork, signal storms, the status page and
# JSON reports read while the purger writes them, the purger taking the
# cached blocks of threads that pause).  Any report fails
# the stage (halt_on_error, exitcode); die_after_fork=0 because a fork child
# starts its own purger thread, which TSan otherwise refuses after a
# multi-threaded fork.  About a minute on two cores.
SAN_tsan := -fsanitize=thread
TSAN_SRC := tests/api/test_races.c tests/api/test_signals.c tests/api/test_top.c tests/api/test_unwind.c \
            tests/unit/test_tcache.c \
            tests/stress/stress.c
TSAN_OPTS := halt_on_error=1 exitcode=66 die_after_fork=0 second_deadlock_stack=1
check-tsan: CC = clang
check-tsan: $(B)/tsan/libebb-san.a $(call CALLBACK_LIBS,$(B)/tsan/tests)
	@set -e; mkdir -p $(B)/tsan/tests; \
	for src in $(TSAN_SRC); do \
	  t=$(B)/tsan/tests/$$(basename $$src .c); \
	  $(CC) $(TESTFLAGS) $(API_LINK) $(SAN_tsan) $$src $(B)/tsan/libebb-san.a -lcmocka -lpthread -o $$t; \
	  echo "== $$t (tsan)"; kind=cmocka; [ $$src = tests/stress/stress.c ] && kind="run $$t"; \
	  TSAN_OPTIONS="$(TSAN_OPTS)" EBB_STRESS_SCALE=1 $(TALLY) $$kind $$t; done

# The unit, API, stress and LD_PRELOAD tests built and run as 32-bit
# programs, in their own build directory (Debian: gcc-multilib,
# libcmocka-dev:i386).
check-m32:
	@echo 'int main(void) { return 0; }' | $(CC) -m32 -x c - -lcmocka -o /dev/null 2>/dev/null || \
	  { echo "check-m32 needs gcc-multilib and libcmocka-dev:i386 (scripts/deps.sh m32)" >&2; exit 1; }
	$(MAKE) --no-print-directory B=$(B)/m32 ARCHFLAGS=-m32 check-unit check-api check-stress check-preload check-static

FUZZ_SECONDS ?= 60
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) $(TALLY) run "libFuzzer, $(FUZZ_SECONDS) s" tests/fuzz/run.sh

peer: lib tool python
	EBB_LIB=$(abspath $(B)/libebb.so) tests/peer/run-all.sh

bench: lib
	python3 bench/run.py --ebb $(abspath $(B)/libebb.so)

# The Python workloads need all three ways in: the library, the `ebb run`
# tool and the package for ebb.install().  BENCH_ARGS passes options on
# (e.g. BENCH_ARGS='--reps 2 --scale 0.3 --markdown').
bench-python: lib tool python
	python3 bench/python/run.py --build $(abspath $(B)) --python $(PYTHON) $(BENCH_ARGS)

demo: lib tool
	python3 scripts/demo.py --tool $(abspath $(B)/ebb)
