"""A run's result: the summary (latency percentiles, errors by kind, peaks), the JSON document
(format ``tmpnb-crowd/1``, described in docs/testing.md) and the text printed at the end."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tmpnb.crowd.options import Options
from tmpnb.crowd.record import Visitor
from tmpnb.crowd.stats import format_summary, summarize

FORMAT = "tmpnb-crowd/1"


@dataclass
class Report:
    options: Options
    started_at: str  # ISO 8601, UTC
    duration: float = 0.0
    visitors: list[Visitor] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    peak_sockets: int = 0
    deadline_hit: bool = False
    sampler_error: str = ""

    @property
    def failed(self) -> int:
        return sum(v.failed for v in self.visitors)

    @property
    def ok(self) -> bool:
        """True when every visitor got its notebook, its cells ran and it left cleanly."""
        return self.failed == 0 and not self.deadline_hit

    def errors_by_kind(self) -> dict[str, int]:
        return dict(Counter(e["kind"] for v in self.visitors for e in v.errors).most_common())

    def peak_fds(self) -> dict[str, int]:
        peaks: dict[str, int] = {}
        for s in self.samples:
            for kind, n in s.get("fds", {}).items():
                peaks[kind] = max(peaks.get(kind, 0), n)
        return peaks

    def summary(self) -> dict[str, Any]:
        v = self.visitors
        return {
            "visitors": len(v),
            "ok": len(v) - self.failed,
            "failed": self.failed,
            "duration": round(self.duration, 3),
            "deadline_hit": self.deadline_hit,
            "time_to_notebook": summarize(x.time_to_notebook for x in v if x.time_to_notebook is not None),
            "time_to_first_result": summarize(
                x.time_to_first_result for x in v if x.time_to_first_result is not None
            ),
            "cell_latency": summarize(lat for x in v for _, lat in x.cells),
            "cells": sum(len(x.cells) for x in v),
            "errors": self.errors_by_kind(),
            "peak_sockets": self.peak_sockets,
            "peak_fds": self.peak_fds(),
            "sampler_error": self.sampler_error,
        }

    def to_json(self) -> dict[str, Any]:
        o = self.options
        return {
            "format": FORMAT,
            "url": o.url,
            "started_at": self.started_at,
            "options": {
                "visitors": o.visitors,
                "arrival": o.arrival,
                "kernels": o.kernels,
                "sockets_per_kernel": o.sockets_per_kernel,
                "stay": o.stay,
                "think": o.think,
                "timeout": o.deadline,
                "step_timeout": o.step_timeout,
                "delete_kernels": o.delete_kernels,
                "host_container": o.host_container,
                "local": o.local,
                "pids": list(o.pids),
            },
            "summary": self.summary(),
            "visitors": [x.to_json() for x in self.visitors],
            "samples": self.samples,
        }

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")

    def text(self) -> str:
        s = self.summary()
        lines = [
            f"tmpnb-crowd {self.options.url}: {s['ok']}/{s['visitors']} visitors ok, {s['failed']} failed,"
            f" {s['cells']} cells in {s['duration']:.1f} s"
            + (" (overall deadline hit)" if self.deadline_hit else ""),
            format_summary("time to notebook", s["time_to_notebook"]),
            format_summary("time to first result", s["time_to_first_result"]),
            format_summary("cell latency", s["cell_latency"]),
            f"peak websockets       {s['peak_sockets']}",
        ]
        if s["peak_fds"]:
            lines.append("peak descriptors      " + ", ".join(f"{k} {n}" for k, n in s["peak_fds"].items()))
        if self.sampler_error:
            lines.append(f"descriptor sampling stopped: {self.sampler_error}")
        errors = s["errors"]
        lines.append("errors                " + (", ".join(f"{k}: {n}" for k, n in errors.items()) or "none"))
        for visitor in self.visitors:
            for e in visitor.errors[:1]:
                lines.append(
                    f"  visitor {visitor.id} at {e['step']} ({e['t']:.1f} s): {e['kind']}: {e['message']}"
                )
                break
        return "\n".join(lines[:60])
