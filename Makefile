# ctrickle: one Makefile, out-of-tree build/. Sources are found by directory, so
# adding a file never needs an edit here:
#   proto/*.c common/*.c          -> $(BUILD)/libctcommon.a (gateway, worker, tools)
#   common/*_cuda.c               -> only when CUDA is on
#   gateway/*.c (but main.c)      -> $(BUILD)/libctgateway.a, + main.c -> $(BUILD)/gateway
#   worker/*.c (but main.c)       -> $(BUILD)/libctworker.a,  + main.c -> $(BUILD)/worker
#   trickle-server/*.c            -> $(BUILD)/libcttserver.a, + main.c -> $(BUILD)/trickle-server
#   worker/plugins/*.c tests/plugins/*.c -> $(BUILD)/plugins/NAME.so (one exported symbol)
#   worker/plugins/*.cu           -> $(BUILD)/plugins/NAME.so when nvcc is found
#   tests/unit/*_test.c           -> $(BUILD)/tests/NAME_test (+ tests/unit/harness.c)
#   tests/helpers/*.c             -> $(BUILD)/tests/helpers/NAME
#   bench/*.c                     -> $(BUILD)/bench/NAME
#   tests/fuzz/*_fuzz.c           -> build/fuzz/NAME (clang, libFuzzer; `make fuzz`)
# Variables: CUDA=auto|0|1, CUDA_HOME, SAN=1 (ASan+UBSan), V=1 (echo commands).

BUILD     ?= build
CUDA      ?= auto
CUDA_HOME ?= $(if $(wildcard /usr/local/cuda/include/cuda_runtime.h),/usr/local/cuda,)
PREFIX    ?= /usr/local
SAN       ?= 0
FUZZ      ?= 0

ifeq ($(CUDA),auto)
  ifneq ($(wildcard $(CUDA_HOME)/include/cuda_runtime.h),)
    CUDA := 1
  else
    CUDA := 0
  endif
endif
NVCC := $(if $(wildcard $(CUDA_HOME)/bin/nvcc),$(CUDA_HOME)/bin/nvcc,)

ifeq ($(V),1)
  Q :=
else
  Q := @
endif

PKGS     := libavformat libavcodec libavutil libswscale libswresample libevent libevent_pthreads libcurl jansson libmicrohttpd msgpack
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lnng -lpthread -ldl -lm

CSTD     := -std=gnu11
WARN     := -Wall -Wextra -Wstrict-prototypes -Wno-unused-parameter -Werror
CFLAGS   ?= -O2 -g
CPPFLAGS += -I. -Iproto -Icommon -D_GNU_SOURCE $(PKG_CFLAGS) -DCT_CUDA=$(CUDA)
DEPFLAGS  = -MMD -MP
LDLIBS   += $(PKG_LIBS)

ifeq ($(CUDA),1)
  CPPFLAGS += -I$(CUDA_HOME)/include
  LDLIBS   += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart
endif
SANFLAGS :=
ifeq ($(SAN),1)
  SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
  LDFLAGS += -fsanitize=address,undefined
endif
ifeq ($(FUZZ),1)
  CC       = clang
  SANFLAGS := -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
  LDFLAGS += -fsanitize=address,undefined
  CPPFLAGS += -DCT_FUZZ=1
endif

ALLCFLAGS = $(CSTD) $(WARN) $(CFLAGS) $(SANFLAGS) $(CPPFLAGS)

# ---- sources -------------------------------------------------------------
CUDA_C      := $(wildcard common/*_cuda.c)
COMMON_SRC  := $(wildcard proto/*.c) $(filter-out $(if $(filter 1,$(CUDA)),,$(CUDA_C)),$(wildcard common/*.c))
GATEWAY_SRC := $(filter-out gateway/main.c,$(wildcard gateway/*.c))
WORKER_SRC  := $(filter-out worker/main.c,$(wildcard worker/*.c))
TSERVER_SRC := $(filter-out trickle-server/main.c,$(wildcard trickle-server/*.c))
PLUGIN_SRC  := $(wildcard worker/plugins/*.c) $(wildcard tests/plugins/*.c)
PLUGIN_CU   := $(if $(and $(NVCC),$(filter 1,$(CUDA))),$(wildcard worker/plugins/*.cu),)
TEST_SRC    := $(wildcard tests/unit/*_test.c)
HELPER_SRC  := $(wildcard tests/helpers/*.c)
BENCH_SRC   := $(wildcard bench/*.c)
FUZZ_SRC    := $(wildcard tests/fuzz/*_fuzz.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIBCOMMON  := $(BUILD)/libctcommon.a
LIBGATEWAY := $(BUILD)/libctgateway.a
LIBWORKER  := $(BUILD)/libctworker.a
LIBTSERVER := $(BUILD)/libcttserver.a
ALLLIBS    := $(LIBGATEWAY) $(LIBWORKER) $(LIBTSERVER) $(LIBCOMMON)

PROGRAMS := $(BUILD)/gateway $(BUILD)/worker $(BUILD)/trickle-server
PLUGINS  := $(patsubst %.c,$(BUILD)/plugins/%.so,$(notdir $(PLUGIN_SRC))) \
            $(patsubst %.cu,$(BUILD)/plugins/%.so,$(notdir $(PLUGIN_CU)))
TESTS    := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(TEST_SRC))
HELPERS  := $(patsubst tests/helpers/%.c,$(BUILD)/tests/helpers/%,$(HELPER_SRC))
BENCHES  := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))

.PHONY: all deps test san fuzz test-gpu demo soak bench bench-gpu install clean tests-build
.DEFAULT_GOAL := all
.SECONDARY:

all: deps $(PROGRAMS) $(PLUGINS) $(TESTS) $(HELPERS) $(BENCHES)

# Installs missing Debian packages (scripts/install-deps.sh: a quick no-op
# when everything is there; needs root or sudo when something is missing).
deps:
	$(Q)scripts/install-deps.sh --check >/dev/null 2>&1 || scripts/install-deps.sh

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALLCFLAGS) $(DEPFLAGS) -c $< -o $@

# python.so embeds CPython: Debian's python3-config (not a pyenv shim on PATH),
# its headers as system headers, linked with --embed; docs/python.md.
PY_CONFIG ?= /usr/bin/python3-config
$(BUILD)/obj/plugins/python.o: worker/plugins/python.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALLCFLAGS) $(patsubst -I%,-isystem %,$(shell $(PY_CONFIG) --includes)) \
		-DCT_PY_SRCDIR='"$(CURDIR)/python"' -DCT_PY_PREFIX='"$(shell $(PY_CONFIG) --prefix)"' \
		-fPIC -fvisibility=hidden $(DEPFLAGS) -c $< -o $@
$(BUILD)/plugins/python.so: $(BUILD)/obj/plugins/python.o
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -shared $(LDFLAGS) $< -o $@ $(shell $(PY_CONFIG) --ldflags --embed)

$(BUILD)/obj/plugins/%.o: worker/plugins/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALLCFLAGS) -fPIC -fvisibility=hidden $(DEPFLAGS) -c $< -o $@

$(BUILD)/obj/plugins/%.o: tests/plugins/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALLCFLAGS) -fPIC -fvisibility=hidden $(DEPFLAGS) -c $< -o $@

$(BUILD)/plugins/%.so: $(BUILD)/obj/plugins/%.o
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -shared $(LDFLAGS) $< -o $@ -lm

$(BUILD)/plugins/%.so: worker/plugins/%.cu
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  NVCC    $<")
	$(Q)$(NVCC) -O2 -Xcompiler -fPIC,-fvisibility=hidden -shared -Iproto $< -o $@

$(LIBCOMMON): $(call obj,$(COMMON_SRC))
$(LIBGATEWAY): $(call obj,$(GATEWAY_SRC))
$(LIBWORKER): $(call obj,$(WORKER_SRC))
$(LIBTSERVER): $(call obj,$(TSERVER_SRC))
$(ALLLIBS):
	@mkdir -p $(dir $@)
	@rm -f $@
	$(Q)ar rcs $@ $^ $(if $^,,$(BUILD)/obj/empty.o)

$(BUILD)/obj/empty.o:
	@mkdir -p $(dir $@)
	$(Q)echo 'typedef int ct_empty_unit;' | $(CC) -x c -c - -o $@
$(ALLLIBS): | $(BUILD)/obj/empty.o

$(BUILD)/gateway: $(call obj,gateway/main.c) $(LIBGATEWAY) $(LIBCOMMON)
$(BUILD)/worker: $(call obj,worker/main.c) $(LIBWORKER) $(LIBCOMMON)
$(BUILD)/trickle-server: $(call obj,trickle-server/main.c) $(LIBTSERVER) $(LIBCOMMON)
$(PROGRAMS):
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%_test: $(call obj,tests/unit/%_test.c) $(call obj,tests/unit/harness.c) $(ALLLIBS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/helpers/%: $(call obj,tests/helpers/%.c) $(ALLLIBS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/bench/%: $(call obj,bench/%.c) $(ALLLIBS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

tests-build: deps $(PROGRAMS) $(PLUGINS) $(TESTS) $(HELPERS)

# README's test command. Unit tests (each case forked) + integration scripts,
# then a short fuzz run of every target. Ends with "N passed, N failed".
test: tests-build
	$(Q)tests/run.sh $(BUILD)

# The same suite under AddressSanitizer + UndefinedBehaviorSanitizer, leaks checked.
san: SANBUILD ?= $(BUILD)/san
san:
	$(Q)$(MAKE) --no-print-directory BUILD=$(SANBUILD) SAN=1 CFLAGS="-O1 -g" tests-build
	$(Q)CT_SAN=1 tests/run.sh $(SANBUILD)

# libFuzzer targets; FUZZ_SECONDS per target (default 60; CI uses a few seconds).
FUZZ_SECONDS ?= 60
FUZZBUILD ?= build/fuzz
FUZZERS := $(patsubst tests/fuzz/%.c,$(FUZZBUILD)/bin/%,$(FUZZ_SRC))
fuzz:
	$(Q)$(MAKE) --no-print-directory BUILD=$(FUZZBUILD) FUZZBUILD=$(FUZZBUILD) FUZZ=1 CUDA=0 CFLAGS="-O1 -g" fuzzers
	$(Q)tests/fuzz/run.sh $(FUZZBUILD) $(FUZZ_SECONDS)
fuzzers: $(FUZZERS)
$(FUZZBUILD)/bin/%_fuzz: $(call obj,tests/fuzz/%_fuzz.c) $(ALLLIBS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -fsanitize=fuzzer $^ -o $@ $(LDLIBS)

test-gpu: tests-build $(BENCHES)
	$(Q)tests/run-gpu.sh $(BUILD)

demo:
	$(Q)scripts/demo.sh

soak:
	$(Q)bench/soak

bench: all
	$(Q)bench/run-all.sh

bench-gpu: all
	$(Q)bench/run-all.sh --gpu

install: $(PROGRAMS) $(PLUGINS)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/ctrickle/plugins \
		$(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 $(PROGRAMS) $(DESTDIR)$(PREFIX)/bin/
	install -m 755 $(filter-out $(BUILD)/plugins/fixture_%,$(PLUGINS)) $(DESTDIR)$(PREFIX)/lib/ctrickle/plugins/
	install -m 644 proto/frame_processor.h $(DESTDIR)$(PREFIX)/include/
	install -d $(DESTDIR)$(PREFIX)/lib/ctrickle/python
	cp -r python/ctrickle_py python/pytrickle $(DESTDIR)$(PREFIX)/lib/ctrickle/python/
	sed 's|@PREFIX@|$(PREFIX)|' scripts/ctrickle.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/ctrickle.pc

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
