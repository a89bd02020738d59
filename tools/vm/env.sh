# Shared settings for the rig (sourced by build-kernel, run, the Makefile's helpers).
# Everything built from the kernel source lives outside the repository, in $EROFS_RS_CACHE.
EROFS_RS_CACHE=${EROFS_RS_CACHE:-$HOME/.cache/erofs_rs}
EROFS_RS_TOOLS=${EROFS_RS_TOOLS:-$EROFS_RS_CACHE/tools}
KSRC_TARBALL=${KSRC_TARBALL:-/usr/src/linux-source-6.12.tar.xz}
export LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm-22/lib}
KMAKE_VARS=(LLVM=-22 RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
            "BINDGEN=$EROFS_RS_TOOLS/bin/bindgen" CLIPPY_DRIVER=/usr/bin/clippy-driver)
_rig_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Which kernel: `test` (default; tools/vm/kernel.config: KASAN, lockdep, kmemleak, ... for make
# check) or `bench` (the same fragment, then tools/vm/kernel-bench.config, which turns the
# debugging off, for make bench: profiles and ratios of a production-like kernel).
EROFS_RS_KERNEL=${EROFS_RS_KERNEL:-test}
kernel_fragments() {
  case $EROFS_RS_KERNEL in
    test) echo "$_rig_dir/kernel.config" ;;
    bench) echo "$_rig_dir/kernel.config"; echo "$_rig_dir/kernel-bench.config" ;;
    *) echo "EROFS_RS_KERNEL must be test or bench, not '$EROFS_RS_KERNEL'" >&2; return 1 ;;
  esac
}

# The cache key: everything that changes the kernel build.
kernel_key() {
  local frags
  frags=$(kernel_fragments) || return 1
  {
    dpkg-query -W -f='${Version}\n' linux-source-6.12
    # shellcheck disable=SC2086 # one path per line, no spaces
    sha256sum $frags "$_rig_dir/build-kernel" | cut -d' ' -f1
    /usr/bin/rustc --version
    clang-22 --version | head -n1
    "$EROFS_RS_TOOLS/bin/bindgen" --version
  } | sha256sum | cut -c1-16
}
# The test kernel keeps the name it always had (kernel-<key>); the bench kernel is
# benchkernel-<key>, so that build-kernel's pruning of old kernels keeps one of each.
kernel_dir() {
  local key
  key=$(kernel_key) || return 1
  case $EROFS_RS_KERNEL in
    test) echo "$EROFS_RS_CACHE/kernel-$key" ;;
    *) echo "$EROFS_RS_CACHE/${EROFS_RS_KERNEL}kernel-$key" ;;
  esac
}
