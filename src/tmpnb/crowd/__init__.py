"""tmpnb-crowd: a simulated crowd of browsers put through a tmpnb site (issue 7).

Python use::

    from tmpnb.crowd import Options, run
    report = run(Options("http://127.0.0.1:8080/", visitors=3, kernels=1, sockets_per_kernel=2, stay=5))
    assert report.ok, report.text()

``report.to_json()`` is the document ``--json`` writes (format ``tmpnb-crowd/1``, see docs/testing.md).
"""

from tmpnb.crowd.options import OptionError, Options, validate
from tmpnb.crowd.report import FORMAT, Report
from tmpnb.crowd.runner import crowd, run

__all__ = ["FORMAT", "OptionError", "Options", "Report", "crowd", "run", "validate"]
