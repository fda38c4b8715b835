"""Debian's nginx binary as one foreground process of a test (no master, no workers to drop
privileges: it reads the test's files as the test's user) with a minimal configuration of its own
under a scratch directory: the caller gives the inside of one `server {}` on a loopback port."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path

BINARY = shutil.which("nginx") or "/usr/sbin/nginx"
TEMP_KINDS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def available() -> bool:
    return Path(BINARY).exists()


class ForegroundNginx:
    def __init__(self, workdir: Path, server: str, http: str = "access_log off;") -> None:
        self.dir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        temp = " ".join(f"{kind}_temp_path {workdir}/{kind};" for kind in TEMP_KINDS)
        (workdir / "nginx.conf").write_text(
            f"daemon off; master_process off; pid {workdir}/nginx.pid; error_log {workdir}/error.log;\n"
            f"events {{}}\nhttp {{ {http} {temp}\n"
            f"  server {{ listen 127.0.0.1:{self.port};\n{server}\n  }}\n}}\n"
        )
        conf, errors = workdir / "nginx.conf", workdir / "error.log"
        self.args = [BINARY, "-p", str(workdir), "-c", str(conf), "-e", str(errors)]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20) -> None:
        """`nginx -t` first (an AssertionError with nginx's words), then run until it listens."""
        check = subprocess.run([*self.args, "-t", "-q"], capture_output=True, text=True, check=False)
        assert check.returncode == 0, f"nginx -t refused {self.dir / 'nginx.conf'}: {check.stderr}"
        self.proc = subprocess.Popen(self.args)
        deadline = time.monotonic() + timeout
        while True:  # until it listens (or has died)
            assert self.proc.poll() is None, (self.dir / "error.log").read_text()
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return
            assert time.monotonic() < deadline, f"nginx did not listen on :{self.port} within {timeout}s"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
