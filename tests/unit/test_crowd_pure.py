"""tmpnb-crowd's pure parts: percentiles, option checks, the static-asset parser."""

from __future__ import annotations

import pytest

from tmpnb.crowd.assets import static_assets
from tmpnb.crowd.options import OptionError, Options, validate
from tmpnb.crowd.stats import percentile, summarize


def test_nearest_rank_percentiles_are_measured_values():
    assert percentile([4, 1, 3, 2], 50) == 2
    assert percentile(list(range(1, 11)), 99) == 10
    assert percentile(list(range(1, 101)), 95) == 95
    assert percentile([], 50) is None
    with pytest.raises(ValueError, match="percentile"):
        percentile([1], 0)


def test_summary_counts_and_rounds_to_the_millisecond():
    assert summarize([0.1234, 0.2]) == {"count": 2, "p50": 0.123, "p95": 0.2, "p99": 0.2, "max": 0.2}
    assert summarize([]) == {"count": 0, "p50": None, "p95": None, "p99": None, "max": None}


@pytest.mark.parametrize(
    ("changes", "names"),
    [
        ({"url": "ftp://127.0.0.1/"}, "URL"),
        ({"url": "http://127.0.0.1:8080/user/x"}, "site's root"),
        ({"url": "http://127.0.0.1:99999/"}, "bad port"),
        ({"visitors": 0}, "--visitors"),
        ({"sockets_per_kernel": 0}, "--sockets-per-kernel"),
        ({"think": 0}, "--think"),
        ({"timeout": 5, "stay": 10}, "--timeout"),
        ({"user_prefix": "user/"}, "--user-prefix"),
        ({"local": True, "host_container": "tmpnb-demo"}, "one of"),
    ],
)
def test_bad_options_fail_naming_the_option(changes, names):
    with pytest.raises(OptionError, match=names):
        validate(Options(url=changes.pop("url", "http://127.0.0.1:8080/"), **changes))


def test_good_options_pass_and_give_the_sites_origin():
    opts = validate(Options(url="http://127.0.0.1:8080/", visitors=3, kernels=2, sockets_per_kernel=2))
    assert opts.origin == "http://127.0.0.1:8080"
    assert opts.sockets == 12


def test_static_assets_stay_on_the_site_and_under_the_user_path():
    page = """
    <link rel="stylesheet" href="/user/abc/static/style.css?v=1">
    <script src="static/main.js"></script>
    <script src="/user/abc/static/main.js"></script>
    <script src="https://cdn.example.org/user/abc/x.js"></script>
    <script src="/other/y.js"></script>
    <script>inline()</script>
    """
    got = static_assets(page, "http://127.0.0.1:8080/user/abc/tree", "/user/abc/")
    assert got == [
        "http://127.0.0.1:8080/user/abc/static/style.css?v=1",
        "http://127.0.0.1:8080/user/abc/static/main.js",
    ]
    assert len(static_assets(page, "http://127.0.0.1:8080/user/abc/tree", "/user/abc/", limit=1)) == 1
