"""A crowd run: visitors arriving over ``--arrival``, a sample of sockets and descriptors every
second (with the live progress line), a hard overall deadline, then the report and its files."""

from __future__ import annotations

import asyncio
import resource
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from tmpnb.crowd.fds import Sampler, SamplerError
from tmpnb.crowd.options import OptionError, Options
from tmpnb.crowd.record import Clock, Tally, Visitor
from tmpnb.crowd.report import Report
from tmpnb.crowd.visitor import BROWSER_CONNECTIONS, run_visitor

SPARE_FDS = 64


def arrivals(visitors: int, spread: float) -> list[float]:
    """Evenly spaced arrival times over [0, spread]; all at 0 when spread is 0."""
    if visitors == 1 or spread == 0:
        return [0.0] * visitors
    return [round(i * spread / (visitors - 1), 3) for i in range(visitors)]


def ensure_nofile(opts: Options) -> int:
    """Raise this process's open-files soft limit to what the crowd needs (each visitor holds its
    websockets plus a browser's connections); OptionError when even the hard limit is too low."""
    need = opts.visitors * (opts.kernels * opts.sockets_per_kernel + BROWSER_CONNECTIONS + 2) + SPARE_FDS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return soft
    if hard != resource.RLIM_INFINITY and hard < need:
        raise OptionError(
            f"{opts.visitors} visitors with {opts.kernels * opts.sockets_per_kernel} websockets each need"
            f" about {need} open files here, but this machine's hard limit is {hard} (ulimit -Hn):"
            " fewer --visitors, or raise the limit"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    return need


class Progress:
    """The live line on stderr: refreshed in place on a terminal, a line every 5 s in a log."""

    def __init__(self, stream: TextIO, enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled
        self.tty = stream.isatty()
        self.count = 0

    def show(self, tally: Tally, total: int, final: bool = False) -> None:
        if not self.enabled:
            return
        self.count += 1
        line = (
            f"[{tally.clock.now():6.1f} s] arrived {tally.arrived}/{total}  in notebooks {tally.in_notebook}"
            f"  sockets open {tally.sockets}  errors {tally.errors}  left {tally.left}"
        )
        if self.tty:
            self.stream.write("\r" + line + "\x1b[K" + ("\n" if final else ""))
        elif final or self.count % 5 == 1:
            self.stream.write(line + "\n")
        self.stream.flush()


async def _sample_forever(
    opts: Options, tally: Tally, report: Report, sampler: Sampler, progress: Progress
) -> None:
    while True:
        await _sample(tally, report, sampler)
        progress.show(tally, opts.visitors)
        await asyncio.sleep(opts.sample_interval)


async def _sample(tally: Tally, report: Report, sampler: Sampler) -> None:
    sample: dict[str, Any] = {
        "t": tally.clock.now(),
        "arrived": tally.arrived,
        "in_notebook": tally.in_notebook,
        "sockets": tally.sockets,
        "errors": tally.errors,
    }
    if sampler.enabled and not report.sampler_error:
        try:
            fds = await sampler.sample()
        except (SamplerError, OSError) as exc:
            report.sampler_error = str(exc)
        else:
            if fds is not None:
                sample["fds"] = fds.fds
                sample["processes"] = fds.processes
    report.samples.append(sample)


async def crowd(opts: Options, stream: TextIO = sys.stderr) -> Report:
    """Run the crowd; never raises for a visitor's failure (it is in the report). Raises
    OptionError or SamplerError before any traffic when the run cannot be done as asked."""
    ensure_nofile(opts)
    sampler = Sampler(opts)
    await sampler.check()
    report = Report(opts, started_at=datetime.now(UTC).isoformat(timespec="seconds"))
    tally = Tally(Clock())
    report.visitors = [Visitor(i, t) for i, t in enumerate(arrivals(opts.visitors, opts.arrival))]
    progress = Progress(stream, opts.progress)
    sampling = asyncio.create_task(_sample_forever(opts, tally, report, sampler, progress))
    tasks = [asyncio.create_task(run_visitor(v, opts, tally)) for v in report.visitors]
    try:
        _, pending = await asyncio.wait(tasks, timeout=opts.deadline)
        if pending:
            report.deadline_hit = True
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
    finally:
        sampling.cancel()
        await asyncio.gather(sampling, return_exceptions=True)
    for v in report.visitors:
        if not v.done:
            v.errors.append(
                {"t": tally.clock.now(), "step": "deadline", "kind": "timeout",
                 "message": f"still busy at the overall deadline ({opts.deadline} s, --timeout)"}
            )  # fmt: skip
    await _sample(tally, report, sampler)
    progress.show(tally, opts.visitors, final=True)
    report.duration = tally.clock.now()
    report.peak_sockets = tally.peak_sockets
    return report


def run(opts: Options, stream: TextIO = sys.stderr) -> Report:
    """The Python entry point: validate, run the crowd, write ``opts.json`` and ``opts.chart``."""
    from tmpnb.crowd.chart import write_chart
    from tmpnb.crowd.options import validate

    validate(opts)
    report = asyncio.run(crowd(opts, stream))
    if opts.json is not None:
        report.write_json(opts.json)
    if opts.chart is not None:
        write_chart(report, opts.chart)
    return report
