#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Push files as blobs to an OCI distribution registry over plain HTTP (standard library only).

usage: ocipush.py [--chunked] [--chunk-size N] [--wait SECS] HOST:PORT REPO FILE...

Each FILE is uploaded (POST /v2/REPO/blobs/uploads/, then a monolithic PUT ?digest=..., or
with --chunked PATCHes of --chunk-size bytes and a closing PUT) and checked with a HEAD of
/v2/REPO/blobs/DIGEST. Prints one line per file: "sha256:<hex> <size> <file>".
--wait SECS: first wait up to SECS for the registry to answer GET /v2/ (it may be starting).
No authentication, no TLS (a registry on loopback for tests).
"""
import hashlib
import http.client
import sys
import time
import urllib.parse


def request(conn, method, target, body=None, headers=None):
    conn.request(method, target, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    return r, data


def location(host, r):
    loc = r.getheader("Location")
    if not loc:
        raise SystemExit(f"ocipush: {r.status} without a Location")
    u = urllib.parse.urlsplit(loc)
    if u.scheme and u.netloc != host:
        raise SystemExit(f"ocipush: upload location on another host: {loc}")
    return urllib.parse.urlunsplit(("", "", u.path, u.query, ""))


def with_query(target, **q):
    sep = "&" if "?" in target else "?"
    return target + sep + urllib.parse.urlencode(q)


def push(conn, host, repo, path, chunked, chunk_size):
    with open(path, "rb") as f:
        data = f.read()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r, body = request(conn, "POST", f"/v2/{repo}/blobs/uploads/", b"",
                      {"Content-Length": "0"})
    if r.status != 202:
        raise SystemExit(f"ocipush: POST uploads: {r.status} {body[:200]!r}")
    target = location(host, r)
    if chunked:
        off = 0
        while off < len(data):
            piece = data[off:off + chunk_size]
            r, body = request(conn, "PATCH", target, piece, {
                "Content-Type": "application/octet-stream",
                "Content-Length": str(len(piece)),
                "Content-Range": f"{off}-{off + len(piece) - 1}",
            })
            if r.status != 202:
                raise SystemExit(f"ocipush: PATCH at {off}: {r.status} {body[:200]!r}")
            target = location(host, r)
            off += len(piece)
        r, body = request(conn, "PUT", with_query(target, digest=digest), b"",
                          {"Content-Length": "0"})
    else:
        r, body = request(conn, "PUT", with_query(target, digest=digest), data, {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(len(data)),
        })
    if r.status != 201:
        raise SystemExit(f"ocipush: PUT {digest}: {r.status} {body[:200]!r}")
    r, _ = request(conn, "HEAD", f"/v2/{repo}/blobs/{digest}")
    if r.status != 200 or r.getheader("Content-Length") != str(len(data)):
        raise SystemExit(f"ocipush: HEAD {digest} after the push: {r.status}")
    print(f"{digest} {len(data)} {path}", flush=True)


def main(argv):
    chunked, chunk_size, wait = False, 1 << 20, 0.0
    args = argv[1:]
    while args and args[0].startswith("--"):
        a = args.pop(0)
        if a == "--chunked":
            chunked = True
        elif a == "--chunk-size":
            chunk_size = int(args.pop(0))
        elif a == "--wait":
            wait = float(args.pop(0))
        else:
            raise SystemExit(f"ocipush: unknown option {a}")
    if len(args) < 3:
        raise SystemExit(__doc__)
    host, repo, files = args[0], args[1], args[2:]
    deadline = time.monotonic() + wait
    while True:
        try:
            conn = http.client.HTTPConnection(host, timeout=30)
            r, _ = request(conn, "GET", "/v2/")
            if r.status in (200, 401):
                break
            raise OSError(f"GET /v2/: {r.status}")
        except OSError as e:
            if time.monotonic() >= deadline:
                raise SystemExit(f"ocipush: registry at {host} not answering: {e}")
            time.sleep(0.2)
    for path in files:
        push(conn, host, repo, path, chunked, chunk_size)


if __name__ == "__main__":
    main(sys.argv)
