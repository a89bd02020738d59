#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# TIMEOUT: 300
# erofs-ondemandd over TLS: `--source https://...` with `--ca-file`, against rangeserver.py
# serving HTTPS on loopback (Python's ssl module) with a throwaway CA and server certificate made
# here with the openssl CLI (for 127.0.0.1 and localhost). Without the kernel first: `fetch`
# gets a blob over https and through an http -> https redirect of a plain "registry" (oci://,
# digest verified), and refuses the server when trusting another CA (or the system bundle) or
# given a missing --ca-file. Then erofs_rs and in-tree erofs read the same tree over https. A
# daemon that does not trust the server's CA: a data blob whose OPEN goes to the https server
# fails (erofs_rs readers get EIO), and READs redirected from a plain registry to it fail (EIO
# for both); nothing hangs, and the daemon logs the certificate verification failure.
. "$(dirname "$0")/lib.sh"
setup_work
command -v openssl >/dev/null || skip "openssl is not installed (tools/vm/install-deps installs it)"
load_module
load_reference

make_tree "$W/tree"
build_image "$W/tree" "$W/blobs"
for n in rs ref noca_rs noca_ref redir_rs redir_ref; do ln -s meta "$W/blobs/meta_$n"; done
BLOB=$(sha256sum "$W/blobs/blob1"); BLOB=${BLOB%% *}
# The "registry" (plain http) answers HEADs of blob sha256:<hex> itself and redirects its GETs
# to the https server, which has the blob under the same name.
mkdir -p "$W/oci"
ln -s "$W/blobs/blob1" "$W/oci/sha256:$BLOB"
ln -s blob1 "$W/blobs/sha256:$BLOB"
setup_cache

# Certificates: a CA, a server certificate it signs (127.0.0.1 and localhost, EC P-256), and
# another CA that signed nothing the server has.
cat > "$W/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
ossl() { openssl "$@" >>"$W/openssl.log" 2>&1 || { cat "$W/openssl.log"; die "openssl $1 failed"; }; }
EC=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
for ca in ca other; do
  ossl req -config "$W/openssl.cnf" -x509 -new "${EC[@]}" -keyout "$W/$ca.key" -out "$W/$ca.pem" \
    -days 2 -subj "/CN=erofs_rs selftest $ca" -extensions ca_ext
done
ossl req -config "$W/openssl.cnf" -new "${EC[@]}" -keyout "$W/server.key" -out "$W/server.csr" \
  -subj "/CN=localhost"
ossl x509 -req -in "$W/server.csr" -CA "$W/ca.pem" -CAkey "$W/ca.key" -set_serial $(( (RANDOM << 15 | RANDOM) + 1 )) \
  -days 2 -extfile "$W/openssl.cnf" -extensions server_ext -out "$W/server.pem"
verify_cert() { openssl verify -CAfile "$W/ca.pem" "$W/server.pem" >>"$W/openssl.log" 2>&1; }
check "the server certificate verifies against the CA (openssl)" verify_cert
log "certificates made: $(openssl x509 -in "$W/server.pem" -noout -subject -ext subjectAltName 2>/dev/null | tr '\n' ' ')"

loopback_up
SRVS=()
stop_servers() { local p; for p in "${SRVS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; }
trap 'stop_servers; cleanup' EXIT
# start_server NAME DIR PREFIX [OPTIONS...]: rangeserver.py in the background, serving DIR at
# PREFIX, logging to $W/NAME.log; waits for its port in $W/NAME.port. Python's http.server (and
# ssl) import dozens of modules over the guest's 9p root: under TCG that alone can take tens of
# seconds.
start_server() {
  local name=$1 dir=$2 prefix=$3 t pid
  shift 3
  t=$(now_ms)
  : > "$W/$name.log"
  $PY "$SELFTEST_DIR/rangeserver.py" "$@" "$dir" "$W/$name.port" "$W/$name.log" "$prefix" \
    2> "$W/$name.err" &
  pid=$!
  SRVS+=("$pid")
  wait_until 120 test -s "$W/$name.port" ||
    die "$name: the range server did not start in 120 s: $(tail -n 5 "$W/$name.err")"
  log "$name: range server up in $(( $(now_ms) - t )) ms on port $(cat "$W/$name.port")"
}
start_server https "$W/blobs" /blobs --tls "$W/server.pem" "$W/server.key"
URL="https://127.0.0.1:$(cat "$W/https.port")/blobs"
start_server registry "$W/oci" /v2/erofs/test/blobs --redirect-get "$URL"
REG="oci://127.0.0.1:$(cat "$W/registry.port")/erofs/test"

# 0. Without the kernel: erofs-ondemandd fetch.
check "fetch over https with --ca-file" \
  "$DAEMON" fetch --source "$URL" blob1 --ca-file "$W/ca.pem" --out "$W/fetched"
check "fetch: the bytes are the blob's" cmp -s "$W/fetched" "$W/blobs/blob1"
"$DAEMON" fetch --source "$REG" "sha256:$BLOB" --ca-file "$W/ca.pem" > "$W/fetch.redir" 2>&1
check "fetch through an http -> https redirect, digest verified" grep -q "verified" "$W/fetch.redir"
grep -q "^GET sha256:$BLOB .* 307$" "$W/registry.log" || fail "the registry did not redirect: $(tail -n 3 "$W/registry.log")"
timeout 60 "$DAEMON" fetch --source "$URL" blob1 --ca-file "$W/other.pem" > "$W/fetch.other" 2>&1; rc=$?
log "fetch trusting another CA: rc $rc: $(tail -n 1 "$W/fetch.other")"
check "fetch trusting another CA fails (exit 1)" test "$rc" = 1
check "fetch trusting another CA: says the verification failed" \
  grep -q "certificate verification failed: UnknownIssuer" "$W/fetch.other"
if [ -r /etc/ssl/certs/ca-certificates.crt ]; then
  timeout 60 "$DAEMON" fetch --source "$URL" blob1 > "$W/fetch.system" 2>&1; rc=$?
  log "fetch trusting the system bundle: rc $rc: $(tail -n 1 "$W/fetch.system")"
  check "fetch trusting the system bundle fails: it does not know the test CA" \
    grep -q "certificate verification failed: UnknownIssuer" "$W/fetch.system"
else
  log "no /etc/ssl/certs/ca-certificates.crt: the system bundle case is not checked"
fi
"$DAEMON" fetch --source "$URL" blob1 --ca-file "$W/nonexistent.pem" > "$W/fetch.noca" 2>&1; rc=$?
check "fetch with a missing --ca-file: usage error (exit 2)" test "$rc" = 2
check "fetch with a missing --ca-file: names the file" grep -q "ca-file $W/nonexistent.pem: No such file" "$W/fetch.noca"
grep -q "TLS-ERROR" "$W/https.log" && log "the server saw the refused handshakes: $(grep -m1 TLS-ERROR "$W/https.log")"

# 1. The whole tree over https through both filesystems.
mark=$(grep -c . "$W/https.log")
since_mark() { tail -n "+$(( mark + 1 ))" "$W/https.log"; }
start_daemon "" --source "$URL" --ca-file "$W/ca.pem" --http-timeout 10
# (logged just after the pid file is written)
check "the daemon says what it trusts" \
  wait_until 10 grep -q "TLS, trusting 1 CA certificate from $W/ca.pem" "$W/daemon.log"
t0=$(now_ms)
mount_fs erofs_rs fsid=meta_rs,device=blob1 "$W/rs" || { cat "$W/daemon.log"; die "mount -t erofs_rs over https failed"; }
mount_fs erofs fsid=meta_ref,device=blob1 "$W/ref" || { tail -n 20 "$W/daemon.log"; die "mount -t erofs over https failed"; }
tree_manifests "$W/rs" "$W/rs.manifest" "$W/ref" "$W/ref.manifest" || fail "walking the mounts failed"
log "both trees read over https in $(( $(now_ms) - t0 )) ms"
check "erofs_rs over https shows what in-tree erofs shows" cmp -s "$W/rs.manifest" "$W/ref.manifest"
check "random.bin over https (erofs_rs)" test "$(read_file "$W/rs/random.bin" random.bin)" = "correct data"
check "random.bin over https (erofs)" test "$(read_file "$W/ref/random.bin" random.bin)" = "correct data"
heads=$(since_mark | grep -c "^HEAD meta_r.* 200$")
ranges=$(since_mark | grep -c "^GET [^ ]* bytes=[0-9]*-[0-9]* 206$")
log "https server: $heads HEADs of the mounts' metadata, $ranges Range GETs, $(since_mark | grep -c .) requests in all"
check "OPENs asked for the blob sizes over https (HEAD)" test "$heads" -ge 2
check "data came in Range GETs over https" test "$ranges" -ge 4
check "no GET without a Range" test "$(since_mark | grep -c "^GET [^ ]* - ")" = 0
check "no daemon error" test "$(stat_value errors)" = 0
check "umount (erofs_rs)" umount_fs "$W/rs"
check "umount (erofs)" umount_fs "$W/ref"
log "daemon: $(tr '\n' ' ' < "$W/stats" | sed 's/read_len[^ ]* [0-9]* //g')"

# 2. A daemon that does not trust the server's CA (each url source trusts the other CA only).
# Metadata comes from the blob directory, so the mounts work; the data blob blob1 from the https
# server (its OPEN fails), sha256:<hex> from the plain registry (its OPEN works, its READs are
# redirected to the https server and fail).
cat > "$W/noca.toml" <<EOF
[[source]]
blobs = ["meta_noca_rs", "meta_noca_ref", "meta_redir_rs", "meta_redir_ref"]
dir = "$W/blobs"

[[source]]
blobs = ["blob1"]
url = "$URL"
ca_file = "$W/other.pem"

[[source]]
url = "$REG"
ca_file = "$W/other.pem"
EOF
redirects=$(grep -c " 307$" "$W/registry.log")
reset_cache "" --config "$W/noca.toml" --http-timeout 10
for t in erofs_rs erofs; do
  case $t in erofs_rs) s=rs ;; *) s=ref ;; esac
  if mount_fs $t "fsid=meta_noca_$s,device=blob1" "$W/noca_$s"; then
    tread=$(now_ms)
    r=$(read_file "$W/noca_$s/random.bin" random.bin)
    log "$t, data blob OPEN over untrusted https: read: $r after $(( $(now_ms) - tread )) ms"
    if [ $t = erofs_rs ]; then
      check "$t: untrusted server, failed OPEN: the reader gets EIO" test "$r" = "Input/output error"
    else
      # in-tree erofs gives fscache's ENOBUFS for a data blob whose OPEN failed (see test 09)
      check "$t: untrusted server, failed OPEN: the reader gets an error, no data, no hang" \
        test "$r" != "correct data" -a "$r" != "WRONG DATA" -a "${r#HUNG}" = "$r"
    fi
    check "$t: umount (failed OPEN)" umount_fs "$W/noca_$s"
  else
    fail "$t: mount with an untrusted data blob source failed: $(tail -n 5 "$W/daemon.log")"
  fi
  if mount_fs $t "fsid=meta_redir_$s,device=sha256:$BLOB" "$W/redir_$s"; then
    tread=$(now_ms)
    r=$(read_file "$W/redir_$s/random.bin" random.bin)
    log "$t, READs redirected to the untrusted https server: read: $r after $(( $(now_ms) - tread )) ms"
    check "$t: untrusted redirect target: the reader gets EIO" test "$r" = "Input/output error"
    check "$t: umount (failed READs)" umount_fs "$W/redir_$s"
  else
    fail "$t: mount with the registry as data blob source failed: $(tail -n 5 "$W/daemon.log")"
  fi
done
check "the daemon logs the verification failure (OPEN)" \
  grep -q "OPEN .*blob1.*certificate verification failed: UnknownIssuer" "$W/daemon.log"
check "the daemon logs the verification failure (fetch after a redirect)" \
  grep -q "fetch of oci://.*sha256:$BLOB.*certificate verification failed: UnknownIssuer" "$W/daemon.log"
check "the registry redirected the READs' GETs" test "$(grep -c " 307$" "$W/registry.log")" -gt "$redirects"
check "the daemon is still running" alive "$DAEMON_PID"
log "daemon: $(tr '\n' ' ' < "$W/stats" | sed 's/read_len[^ ]* [0-9]* //g')"
log "https server: $(grep -c TLS-ERROR "$W/https.log") refused handshakes"
log "total: $(( $(now_ms) - t0 )) ms"
finish
