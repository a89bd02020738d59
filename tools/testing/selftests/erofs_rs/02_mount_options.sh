#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Bad mount options are refused with EINVAL and a kernel log line naming the option; a valid
# fsid with no cachefiles daemon bound fails promptly instead of hanging.
. "$(dirname "$0")/lib.sh"
setup_work
load_module
mkdir -p "$W/mnt"

# expect_refused OPTIONS EXPECTED_LOG_TEXT
expect_refused() {
  local opts=$1 text=$2 err
  kmsg "options $opts"
  if err=$(timeout 60 mount -t erofs_rs -o "$opts" none "$W/mnt" 2>&1); then
    umount "$W/mnt"
    fail "mount -o '$opts' succeeded"
    return
  fi
  case "$err" in
    *"Invalid argument"*|*"wrong fs type"*|*"bad option"*) ;;
    *) fail "mount -o '$opts': unexpected error: $err"; return ;;
  esac
  if kmsg_since "options $opts" | grep -qF -- "$text"; then
    log "ok: -o '$opts' refused, kernel log says: $text"
  else
    fail "-o '$opts': kernel log lacks '$text'"; kmsg_since "options $opts" | sed 's/^/#   /'
  fi
}

expect_refused "bogus=1" "unknown mount option: 'bogus=1'"
expect_refused "fsid=x,cache_strategy=bogus" "invalid or too long value for mount option: 'cache_strategy=bogus'"
expect_refused "fsid=x,acl=1" "invalid or too long value for mount option: 'acl=1'"
expect_refused "fsid=x,dax=inode" "invalid or too long value for mount option: 'dax=inode'"
expect_refused "fsid=x,dax" "dax options not supported"   # test kernel: no CONFIG_FS_DAX, as C
expect_refused "domain_id=d" "fsid= is required"
expect_refused "fsid=" "missing, empty, invalid or too long value for mount option: 'fsid='"
expect_refused "fsid" "missing, empty, invalid or too long value for mount option: 'fsid'"
long=$(printf 'x%.0s' $(seq 1 300))
expect_refused "fsid=$long" "missing, empty, invalid or too long value for mount option"
expect_refused "" "fsid= is required"

# No cache bound: the volume cannot be used. Must fail (not hang) with a clear message.
kmsg "no daemon"
start=$(date +%s)
if timeout 60 mount -t erofs_rs -o fsid=nodaemon none "$W/mnt" 2>"$W/err"; then
  umount "$W/mnt"
  fail "mount without a bound cache succeeded"
else
  rc=$?
  [ "$rc" = 124 ] && fail "mount without a bound cache hung (killed after 60 s)"
  log "mount without daemon: $(cat "$W/err") (after $(( $(date +%s) - start )) s)"
  kmsg_since "no daemon" | grep -qE 'erofs_rs: .*(cachefiles|superblock|volume|cookie)' ||
    fail "no kernel log line explains the failed mount without daemon"
  kmsg_since "no daemon" | sed 's/^/#   /'
fi
# Only privileged mounts: the type has no FS_USERNS_MOUNT, so root of a user namespace (which
# owns its mount namespace) gets EPERM from mount(2), before any option or cache is looked at.
# mount(2) is called directly (ctypes), so the errno is the kernel's, not mount(8)'s guess.
userns_mount() {
  unshare --user --map-root-user --mount $PY -c '
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
r = libc.mount(b"none", sys.argv[1].encode(), sys.argv[2].encode(), 0, b"fsid=userns")
print("mounted" if r == 0 else os.strerror(ctypes.get_errno()))' "$W/mnt" "$1" 2>&1
}
if unshare --user --map-root-user --mount true 2>/dev/null; then
  for t in erofs_rs; do
    got=$(userns_mount "$t")
    check "$t: a mount from a user namespace is refused with EPERM (got: $got)" \
      test "$got" = "Operation not permitted"
  done
else
  log "user namespaces are not available here: the unprivileged-mount check did not run"
fi
finish
