"""A tiny stand-in for a notebook server: answers HTTP at its base path (like Jupyter's base_url).

Usage: tinynb.py --base-url=/user/<id>/ --port=8888
GET <base>...      200 with a small page naming the base path (so a test can tell users apart)
anything else      404
"""

import argparse
import http.server
import os


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", default="/")
    parser.add_argument("--port", type=int, default=8888)
    args = parser.parse_args()
    base = args.base_url if args.base_url.endswith("/") else args.base_url + "/"

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if self.path == base[:-1] or self.path.startswith(base):
                body = f"tinynb at {base} pid={os.getpid()} uid={os.getuid()} path={self.path}\n".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
            else:
                body = b"not found\n"
                self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    http.server.ThreadingHTTPServer(("0.0.0.0", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
