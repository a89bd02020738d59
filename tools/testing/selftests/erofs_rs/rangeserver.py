# SPDX-License-Identifier: GPL-2.0
"""A tiny HTTP/1.1 blob server with Range support, for erofs-ondemandd --source tests.

    rangeserver.py [--tls CERT KEY] [--redirect-get BASE] DIR PORTFILE LOG [PREFIX]

Serves the files of DIR (symlinks followed) at PREFIX/<name> (default /blobs) on 127.0.0.1,
on a free port written to PORTFILE once listening. HEAD gives the size; GET honours
`Range: bytes=A-B` with 206, else sends the whole file. Connections are kept alive. Each request
is appended to LOG as "METHOD NAME RANGE STATUS". Failure injection by blob name: a name
starting with `broken` answers GETs with 500 (HEAD works); `short` sends half the body and
closes the connection. Standard library only.

--tls CERT KEY: HTTPS (Python's ssl module) with the PEM certificate chain CERT and its key
KEY; the handshake runs in the connection's thread, and one that fails (a client refusing the
certificate) is logged as "TLS-ERROR <reason>".
--redirect-get BASE: GETs of a blob DIR has are answered 307 with `Location: BASE/<name>`
(as registries send blob downloads to their storage); HEADs are answered here.
"""
import http.server
import os
import re
import socketserver
import sys
import threading
import urllib.parse

TLS = None
REDIRECT = None
args = sys.argv[1:]
while args and args[0].startswith("--"):
    if args[0] == "--tls" and len(args) >= 3:
        TLS, args = (args[1], args[2]), args[3:]
    elif args[0] == "--redirect-get" and len(args) >= 2:
        REDIRECT, args = args[1].rstrip("/"), args[2:]
    else:
        sys.exit("rangeserver.py: bad option %r" % args[0])
if len(args) not in (3, 4):
    sys.exit(__doc__)
DIR, PORTFILE, LOG = args[:3]
PREFIX = args[3] if len(args) > 3 else "/blobs"
log_lock = threading.Lock()


def note(line):
    with log_lock, open(LOG, "a") as f:
        f.write(line + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def setup(self):
        if TLS:
            # The handshake here, not in the accepting thread: a client that stalls or refuses
            # the certificate holds up its own connection only. A failure raises: see
            # Server.handle_error.
            self.request.settimeout(30)
            self.request.do_handshake()
            self.request.settimeout(None)
        super().setup()

    def blob(self):
        path = urllib.parse.unquote(self.path)
        if not path.startswith(PREFIX + "/"):
            return None, None
        name = path[len(PREFIX) + 1:]
        p = os.path.join(DIR, name)
        if "/" in name or name in ("", ".", "..") or not os.path.isfile(p):
            return name, None
        return name, p

    def reply(self, status, length, headers=()):
        self.send_response(status)
        self.send_header("Content-Length", str(length))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()

    def do_HEAD(self):
        name, p = self.blob()
        if p is None:
            note("HEAD %s - 404" % name)
            self.reply(404, 0)
            return
        note("HEAD %s - 200" % name)
        self.reply(200, os.path.getsize(p))

    def do_GET(self):
        name, p = self.blob()
        rng = self.headers.get("Range", "-")
        if p is None:
            note("GET %s %s 404" % (name, rng))
            self.reply(404, 0)
            return
        if REDIRECT:
            note("GET %s %s 307" % (name, rng))
            self.reply(307, 0, [("Location", "%s/%s" % (REDIRECT, urllib.parse.quote(name, safe=":@")))])
            return
        if name.startswith("broken"):
            note("GET %s %s 500" % (name, rng))
            self.reply(500, 0)
            return
        size = os.path.getsize(p)
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng)
        if m:
            a = int(m.group(1))
            b = min(int(m.group(2)) if m.group(2) else size - 1, size - 1)
            if a >= size or b < a:
                note("GET %s %s 416" % (name, rng))
                self.reply(416, 0, [("Content-Range", "bytes */%d" % size)])
                return
            status, hdrs = 206, [("Content-Range", "bytes %d-%d/%d" % (a, b, size))]
        else:
            a, b, status, hdrs = 0, size - 1, 200, []
        with open(p, "rb") as f:
            f.seek(a)
            data = f.read(b - a + 1)
        note("GET %s %s %d" % (name, rng, status))
        self.reply(status, len(data), hdrs)
        if name.startswith("short"):
            self.wfile.write(data[:len(data) // 2])
            self.close_connection = True
            return
        self.wfile.write(data)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def server_bind(self):
        # HTTPServer.server_bind() looks the address up with socket.getfqdn(): in the test VM,
        # without networking, that is a DNS timeout of tens of seconds. Skip it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        # A failed TLS handshake (or a connection reset): one line in the log, no traceback.
        e = sys.exc_info()[1]
        if TLS and isinstance(e, OSError):
            note("TLS-ERROR %s" % (getattr(e, "reason", None) or e))
        else:
            super().handle_error(request, client_address)


srv = Server(("127.0.0.1", 0), Handler)
if TLS:
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(TLS[0], TLS[1])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
with open(PORTFILE + ".tmp", "w") as f:
    f.write("%d\n" % srv.server_address[1])
os.rename(PORTFILE + ".tmp", PORTFILE)
srv.serve_forever()
