# SPDX-License-Identifier: GPL-2.0
#
# erofs_rs: out-of-tree build of erofs_rs.ko plus the rig around it.
#
#   make            build erofs_rs.ko against the test kernel (build that first: make kernel)
#   make check      install what is missing, build everything, run all tests in a VM
#   make check-full the same with the slow test variants
#   make demo       build, boot the VM, mount an image on demand through our daemon
#   make fuzz       fuzz the format layer, FUZZ_SECONDS (default 300) per target
#   make fuzz-vm    mutant images mounted in the VM (12_mutant_images.sh): N mutants (default
#                   500) of seed SEED (default: the time), or only mutant MUTANT of SEED
#   make stress     13_stress.sh for STRESS_SECONDS (default 600)
#   make bench      erofs_rs vs in-tree erofs in the VM: bench/results/latest.{md,json,png}
#                   (BENCH_QUICK=1: smaller trees; see Documentation/benchmarks.md)
#   make kernel     build (or reuse) the test kernel in ~/.cache/erofs_rs
#   make deps       install the toolchain and tools (Debian 12, idempotent)
#
# Kbuild (the file next to this one) describes the module itself.

ifneq ($(KERNELRELEASE),)
include $(src)/Kbuild
else

REPO   := $(CURDIR)
KDIR   ?= $(shell $(REPO)/tools/vm/kernel-dir 2>/dev/null)
EROFS_RS_CACHE ?= $(HOME)/.cache/erofs_rs
TOOLS  ?= $(EROFS_RS_CACHE)/tools
KMAKE  := $(MAKE) -C $(KDIR) M=$(REPO) LLVM=-22 RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
          BINDGEN=$(TOOLS)/bin/bindgen CLIPPY_DRIVER=/usr/bin/clippy-driver
export LIBCLANG_PATH ?= /usr/lib/llvm-22/lib
CARGO_CRATES := tools/ondemandd tools/format-tests tools/fuzz

.PHONY: all modules kernel deps clippy cargo-test daemon check check-full demo fuzz fuzz-vm stress \
        bench clean

all: modules

modules:
	@test -f $(KDIR)/.erofs-rs-built || { echo "no test kernel at $(KDIR): run 'make kernel' first"; exit 1; }
	$(KMAKE) KRUSTFLAGS=-Dwarnings KCFLAGS=-Werror modules

# Same build through clippy-driver (the module is small: it simply rebuilds).
clippy:
	@test -f $(KDIR)/.erofs-rs-built || { echo "no test kernel at $(KDIR): run 'make kernel' first"; exit 1; }
	$(KMAKE) CLIPPY=1 KRUSTFLAGS=-Dwarnings KCFLAGS=-Werror modules

deps:
	tools/vm/install-deps

kernel:
	tools/vm/build-kernel >/dev/null

daemon:
	cd tools/ondemandd && cargo build --release --locked --quiet

cargo-test:
	@for c in $(CARGO_CRATES); do \
	  echo "== cargo test: $$c"; \
	  (cd $$c && cargo test --locked --quiet) || exit 1; \
	done

check:
	tools/check

# make check plus the slow variants (every corpus layout, a 10000-entry directory): ~20 min warm
check-full:
	EROFS_RS_FULL=1 tools/check

demo:
	tools/demo

# The format-layer fuzz targets (tools/fuzz) for as long as asked: FUZZ_SECONDS per target,
# FUZZ_TARGETS="inode dirent ...", FUZZ_ENGINE=libfuzzer|driver|both. `make check` runs a
# bounded version (tools/fuzz/run check, about a minute).
fuzz:
	tools/fuzz/run fuzz

# The mutant images test with more mutants than make check's 30 (seed 1). The test runs directly
# (no per-test time limit); tools/vm/run still fails on any kernel problem. Under TCG a mutant
# takes a few seconds. A failure prints the seed and index: rerun it with SEED=... MUTANT=...
N ?= 500
SEED ?= $(shell date +%s)
MUTANT ?=
fuzz-vm:
	EROFS_RS_VM_TIMEOUT=$$(( 600 + $(N) * 30 )) tools/vm/run -- env EROFS_RS_MUTANTS=$(N) \
	  EROFS_RS_MUTANT_SEED=$(SEED) EROFS_RS_MUTANT_ONLY=$(MUTANT) \
	  tools/testing/selftests/erofs_rs/12_mutant_images.sh

# 13_stress.sh for longer than make check's 60 s.
STRESS_SECONDS ?= 600
stress:
	EROFS_RS_VM_TIMEOUT=$$(( 900 + $(STRESS_SECONDS) * 2 )) tools/vm/run -- \
	  env EROFS_RS_STRESS_SECONDS=$(STRESS_SECONDS) tools/testing/selftests/erofs_rs/13_stress.sh

# Not part of check: ~35 min under TCG (BENCH_QUICK=1: ~10 min).
bench:
	bench/run

clean:
	$(KMAKE) clean 2>/dev/null || true
	rm -rf build

endif
