"""bench/: the parts that decide what a benchmark measures (its /proc readings, the runner's answer
to a bad name, the nginx site rendered from roles/nginx_static). The benchmarks themselves run with
`make bench`, not here."""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.__main__ import main as bench_main  # noqa: E402 - after the repo root is importable
from bench.record import Proc  # noqa: E402
from bench.static_nginx import render_site  # noqa: E402


def test_unknown_benchmark_is_refused_naming_it_and_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main(["spwan"]) == 2
    err = capsys.readouterr().err
    assert "'spwan'" in err
    assert "spawn, static, cost" in err


def test_proc_reads_cpu_memory_and_descriptors_of_a_process(tmp_path: Path) -> None:
    me = Proc(os.getpid())
    sum(i * i for i in range(300_000))  # some CPU of our own
    times = os.times()
    assert abs(me.cpu_s() - (times.user + times.system)) < 0.05  # utime + stime, not other fields
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert 1 < me.rss_mb() <= peak_mb + 1
    before = me.fds()
    with open(tmp_path / "f", "w"):
        assert me.fds() == before + 1


def test_nginx_site_is_the_roles_template_serving_the_copy_and_proxying_the_rest(tmp_path: Path) -> None:
    site = render_site(tmp_path / "static", 8123, "127.0.0.1:8999")
    # the copy of the visitor's own image, chosen by the key in front of the user id
    assert f"root {tmp_path}/static/images/$tmpnb_key/static;" in site
    keyed = r"^/user/(?<tmpnb_key>[0-9a-f]{12})-[A-Za-z0-9_-]{16}/static/(?<tmpnb_rest>.*)$"
    assert f'location ~ "{keyed}"' in site
    assert "try_files /$tmpnb_rest @chp;" in site  # a file missing from the copy goes on to CHP
    assert "server 127.0.0.1:8999;" in site
    assert "listen 8123 default_server;" in site
    assert "rendered by bench/static.py" in site.splitlines()[0]


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["cost", "--slots", "0"], "--slots: expected a whole number above 0, got '0'"),
        (["cost", "--slots", "10", "--pooled", "11"], "--pooled: expected 0 to --slots (10), got 11"),
        (["static", "--duration", "-1"], "--duration: expected a number above 0, got '-1'"),
        (["spawn", "--visitors", "many"], "--visitors: expected a whole number above 0, got 'many'"),
    ],
)
def test_bad_options_are_refused_before_anything_starts(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        bench_main(argv)
    assert exited.value.code == 2
    assert named in capsys.readouterr().err
