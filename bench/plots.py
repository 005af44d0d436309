"""Plots of a run's concurrency sweep: `python -m bench.plots bench/results/<name>.json`.

Two PNGs beside the results: `<name>-throughput.png` (ops/s by concurrency, service and
ceiling, one panel per scenario) and `<name>-latency.png` (p50, p95 and p99 by
concurrency, service solid and ceiling dashed). `python -m bench --concurrency-sweep ...`
draws them at the end of its run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

PERCENTILES = (("p50", "tab:blue"), ("p95", "tab:orange"), ("p99", "tab:red"))


def draw(report: dict[str, Any], directory: Path) -> list[Path]:
    """Draw `report["sweep"]` into `directory`; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    sweep: dict[str, list[dict[str, Any]]] = report.get("sweep", {})
    if not sweep:
        return []
    names = list(sweep)
    columns = min(3, len(names))
    rows = (len(names) + columns - 1) // columns
    caption = (
        f"run {report['name']}: {report['workers']} worker(s), "
        f"{report.get('sweep_duration_seconds')} s per point and side, "
        f"{report['machine']['cpus']} CPUs shared with PostgreSQL and the load generator"
    )
    written = []
    for kind in ("throughput", "latency"):
        figure, axes = pyplot.subplots(
            rows, columns, figsize=(5 * columns, 3.8 * rows), squeeze=False
        )
        for position, name in enumerate(names):
            axis = axes[position // columns][position % columns]
            points = sweep[name]
            clients = [point["concurrency"] for point in points]
            if kind == "throughput":
                for side, style in (("service", "-o"), ("ceiling", "--s")):
                    axis.plot(
                        clients,
                        [point[side]["ops_per_second"] for point in points],
                        style,
                        label=side,
                    )
                axis.set_ylabel("operations per second")
                axis.set_ylim(bottom=0)
            else:
                for percentile, colour in PERCENTILES:
                    for side, style in (("service", "-o"), ("ceiling", "--s")):
                        axis.plot(
                            clients,
                            [point[side]["latency_ms"][percentile] for point in points],
                            style,
                            color=colour,
                            label=f"{side} {percentile}",
                        )
                axis.set_ylabel("latency (ms)")
                axis.set_yscale("log")
            axis.set_xscale("log", base=2)
            axis.set_xticks(clients, [str(each) for each in clients])
            axis.set_xlabel("concurrent clients")
            axis.set_title(name)
            axis.grid(True, which="both", alpha=0.3)
            axis.legend(fontsize="x-small")
        for position in range(len(names), rows * columns):
            axes[position // columns][position % columns].set_visible(False)
        figure.suptitle(f"{kind} by concurrency\n{caption}", fontsize="small")
        figure.tight_layout()
        path = directory / f"{report['name']}-{kind}.png"
        figure.savefig(path, dpi=80)
        pyplot.close(figure)
        written.append(path)
    return written


def main() -> None:
    for argument in sys.argv[1:]:
        path = Path(argument)
        for drawn in draw(json.loads(path.read_text()), path.parent):
            sys.stdout.write(f"{drawn}\n")


if __name__ == "__main__":
    main()
