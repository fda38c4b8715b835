#!/usr/bin/env python3
"""TEST SCAFFOLDING, not part of the kit: stands in for configurable-http-proxy on 127.0.0.1:8000.

Every request is answered by this marker backend, so a test can tell nginx's own answers (static
files) from proxied ones. Plain requests get a JSON body naming the marker, the path and the
headers the backend received. A websocket upgrade gets `101 Switching Protocols` with the
received headers in X-Seen, then the first bytes sent over the tunnel are echoed back.
"""

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MARKER = "fake-chp"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        seen = {k.lower(): v for k, v in self.headers.items()}
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if seen.get("upgrade", "").lower() == "websocket":
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("X-Fake-CHP", MARKER)
            self.send_header("X-Seen", json.dumps(seen))
            self.end_headers()
            self.wfile.flush()
            data = self.rfile.read1(65536)
            self.wfile.write(data)
            self.wfile.flush()
            self.close_connection = True
            return
        body = json.dumps({"marker": MARKER, "path": self.path, "headers": seen}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Fake-CHP", MARKER)
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", 8000), Handler).serve_forever()
