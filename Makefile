# SPDX-License-Identifier: GPL-2.0
#
# erofs_rs: out-of-tree build of erofs_rs.ko plus the rig around it.
#
#   make            build erofs_rs.ko against the test kernel (build that first: make kernel)
#   make check      install what is missing, build everything, run all tests in a VM
#   make check-full the same with the slow test variants
#   make demo       build, boot the VM, mount an image on demand through our daemon
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
CARGO_CRATES := tools/ondemandd tools/format-tests

.PHONY: all modules kernel deps clippy cargo-test daemon check check-full demo clean

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

clean:
	$(KMAKE) clean 2>/dev/null || true
	rm -rf build

endif
