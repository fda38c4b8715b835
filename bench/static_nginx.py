"""Debian's nginx as a foreground process of a bench (bench/static.py), serving the site rendered
from roles/nginx_static's own template with the role's defaults and the bench's paths and ports,
wrapped in a minimal nginx.conf like Debian's; `nginx -t` checks it before it starts."""

from __future__ import annotations

import resource
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jinja2
import yaml

from bench.record import ROOT, Proc
from testsupport.stack import NOTEBOOK_IMAGE, free_port, stop_process, wait_for

ROLE = ROOT / "roles" / "nginx_static"
SITE_TEMPLATE = ROLE / "templates" / "etc" / "nginx" / "conf.d" / "tmpnb.conf.j2"

MAIN_CONF = """# nginx.conf for bench/static.py: Debian's defaults that matter here, paths under the bench's
# directory, the site below rendered from roles/nginx_static's template.
daemon off;
worker_processes auto;
worker_rlimit_nofile {nofile};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{
    worker_connections {connections};
}}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;
    access_log {dir}/access.log;
    gzip on;
    # No effect while no .gz sits next to a file (extract_static.py writes none): the bench's last
    # side adds one, to measure serving it precompressed instead of compressing on every request.
    gzip_static on;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    include {dir}/tmpnb.conf;
}}
"""


def render_site(
    static_dir: Path,
    http_port: int,
    upstream: str,
    trees: list[dict[str, str]] | None = None,
    access_log: Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> str:
    """roles/nginx_static's site template with the role's defaults and this bench's paths/ports.
    TREES: the role's placed trees ({prefix, name, dest}, reverse order of prefix, as
    tasks/main.yml sets them); default its one tree static/ in STATIC_DIR (linked as
    STATIC_DIR/images/<key>/static by the extractor's --images-dir)."""
    values: dict[str, Any] = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    values.update(
        nginx_static_image=NOTEBOOK_IMAGE,
        nginx_static_dir=str(static_dir),
        # The role's placement of its default one tree (tasks/main.yml).
        __nginx_static_locations=trees or [{"prefix": "static/", "name": "static", "dest": str(static_dir)}],
        nginx_static_http_port=http_port,
        nginx_static_access_log=str(access_log or static_dir.parent / "access.log"),
        nginx_static_upstream=upstream,
        ansible_managed="rendered by bench/static.py from roles/nginx_static",
        __nginx_static_ipv6={"stat": {"exists": False}},
    )
    values.update(overrides or {})
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True
    )  # nginx config, not HTML
    env.filters["comment"] = lambda text: "\n".join(f"# {line}" for line in str(text).splitlines())
    return env.from_string(SITE_TEMPLATE.read_text()).render(**values)


class Nginx:
    """Debian's nginx binary as a foreground process of this bench."""

    def __init__(
        self,
        workdir: Path,
        static_dir: Path,
        upstream: str,
        trees: list[dict[str, str]] | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        self.dir = workdir / "nginx"
        (self.dir / "tmp").mkdir(parents=True)
        self.port = free_port()
        nofile = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 1048576)
        (self.dir / "tmpnb.conf").write_text(
            render_site(static_dir, self.port, upstream, trees, self.dir / "access.log", overrides)
        )
        (self.dir / "nginx.conf").write_text(
            MAIN_CONF.format(dir=self.dir, nofile=nofile, connections=min(16384, nofile // 2))
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def args(self) -> list[str]:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        return [
            binary,
            "-e",
            str(self.dir / "error.log"),
            "-p",
            str(self.dir),
            "-c",
            str(self.dir / "nginx.conf"),
        ]

    def check(self) -> None:
        """`nginx -t` on the rendered configuration; a RuntimeError with nginx's words if refused."""
        check = subprocess.run([*self.args(), "-t", "-q"], capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t refused the rendered config: {check.stderr.strip()}")

    def start(self) -> None:
        self.check()
        self.proc = subprocess.Popen(self.args(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_for(lambda: (self.dir / "nginx.pid").exists() and self.workers(), 20, "nginx workers")

    def workers(self) -> list[int]:
        assert self.proc is not None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(p) for p in children.read_text().split()] if children.exists() else []

    def fds(self) -> int:
        assert self.proc is not None
        return sum(Proc(pid).fds() for pid in [self.proc.pid, *self.workers()])

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
