"""The PNG of a run (matplotlib, Agg backend, no display): latency over time above, open
websockets and descriptors over time below."""

from __future__ import annotations

from pathlib import Path

from tmpnb.crowd.report import Report


def write_chart(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    try:
        ready = [(v.arrival + (v.time_to_notebook or 0), v.time_to_notebook) for v in report.visitors]
        ready = [(t, lat) for t, lat in ready if lat is not None]
        first = [
            (v.arrival + v.time_to_first_result, v.time_to_first_result)
            for v in report.visitors
            if v.time_to_first_result is not None
        ]
        cells = [c for v in report.visitors for c in v.cells]
        for points, label, marker in (
            (cells, "cell latency", "."),
            (ready, "time to notebook", "o"),
            (first, "time to first result", "x"),
        ):
            if points:
                top.scatter([p[0] for p in points], [p[1] for p in points], label=label, marker=marker, s=14)
        failures = [e["t"] for v in report.visitors for e in v.errors]
        for t in failures[:200]:
            top.axvline(t, color="red", alpha=0.3, linewidth=0.8)
        top.set_ylabel("seconds")
        top.set_title(
            f"tmpnb-crowd {report.options.url}: {report.options.visitors} visitors, {report.failed} failed"
        )
        top.legend(loc="upper right", fontsize="small")
        top.grid(alpha=0.3)

        t = [s["t"] for s in report.samples]
        bottom.plot(t, [s["sockets"] for s in report.samples], label="open websockets (this tool)")
        bottom.plot(t, [s["in_notebook"] for s in report.samples], label="visitors in a notebook")
        kinds = sorted({k for s in report.samples for k in s.get("fds", {})})
        for kind in kinds:
            bottom.plot(t, [s.get("fds", {}).get(kind) for s in report.samples], label=f"{kind} descriptors")
        bottom.set_xlabel("seconds since start")
        bottom.set_ylabel("count")
        bottom.legend(loc="upper right", fontsize="small")
        bottom.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, format="png", dpi=100)
    finally:
        plt.close(fig)
