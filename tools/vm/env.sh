# Shared settings for the rig (sourced by build-kernel, run, the Makefile's helpers).
# Everything built from the kernel source lives outside the repository, in $EROFS_RS_CACHE.
EROFS_RS_CACHE=${EROFS_RS_CACHE:-$HOME/.cache/erofs_rs}
EROFS_RS_TOOLS=${EROFS_RS_TOOLS:-$EROFS_RS_CACHE/tools}
KSRC_TARBALL=${KSRC_TARBALL:-/usr/src/linux-source-6.12.tar.xz}
export LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm-22/lib}
KMAKE_VARS=(LLVM=-22 RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
            "BINDGEN=$EROFS_RS_TOOLS/bin/bindgen" CLIPPY_DRIVER=/usr/bin/clippy-driver)
_rig_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# The cache key: everything that changes the kernel build.
kernel_key() {
  {
    dpkg-query -W -f='${Version}\n' linux-source-6.12
    sha256sum "$_rig_dir/kernel.config" "$_rig_dir/build-kernel" | cut -d' ' -f1
    /usr/bin/rustc --version
    clang-22 --version | head -n1
    "$EROFS_RS_TOOLS/bin/bindgen" --version
  } | sha256sum | cut -c1-16
}
kernel_dir() { echo "$EROFS_RS_CACHE/kernel-$(kernel_key)"; }
