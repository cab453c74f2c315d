"""``asma-bench check``: a small fixed-seed benchmark compared with a committed baseline."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from asma_bench.commands.app import app, print_table, progress_line, progress_mode


@app.command("check")
def check(
    baseline: Annotated[Path, typer.Option(help="Baseline JSON file (committed).")] = Path(
        "benchmarks/check_baseline.json"
    ),
    update: Annotated[bool, typer.Option(help="Measure and rewrite the baseline.")] = False,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="Progress bar; default: a bar on a terminal, else one line per check.",
        ),
    ] = None,
    json_out: Annotated[
        Path | None,
        typer.Option("--json", help="Also write every check's outcome to this JSON file."),
    ] = None,
    junit_out: Annotated[
        Path | None,
        typer.Option("--junit-xml", help="Also write JUnit XML (one testcase per check)."),
    ] = None,
) -> None:
    """Accuracy, latency ratios and model sizes against the baseline; exit 1 on regression."""
    from asma_bench.commands.app import check_writable
    from asma_bench.perf.check import (
        CheckSettings,
        compare,
        cpu_kind,
        junit_xml,
        latency_note,
        load_baseline,
        measure,
        other_cpu,
        report_json,
        rows_table,
        settings_for_update,
        write_baseline,
        write_report,
    )

    reference = None if update else load_baseline(baseline)  # a bad file fails before measuring
    settings = settings_for_update(baseline) if update else None
    if reference is not None:
        settings = CheckSettings.model_validate(reference["settings"])
    assert settings is not None
    check_writable(json_out, "--json")
    check_writable(junit_out, "--junit-xml")
    mode = progress_mode(progress)
    steps = len(settings.units) * len(settings.seeds) + 1
    bar = None
    if mode == "bar":
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc="check", unit="step", dynamic_ncols=True)
    start, done = time.monotonic(), 0

    def step(what: str) -> None:
        nonlocal done
        done += 1
        if bar is not None:
            bar.set_postfix_str(what)
            bar.update(1)
        elif mode == "lines":  # as each check starts, with the time spent so far
            progress_line(f"[{done}/{steps}] check {what} ({time.monotonic() - start:.0f} s)")

    current = measure(settings, progress=step)
    if bar is not None:
        bar.close()
    if update:
        path = write_baseline(baseline, current, settings)
        typer.echo(
            f"wrote baseline {path} ({len(current.accuracy)} accuracy units x "
            f"{len(settings.seeds)} seeds, {len(current.latency)} latency ratios, "
            f"{len(current.counts)} counts)"
        )
        return
    rows = compare(reference, current)
    failed = [r for r in rows if r.failed]
    env = reference.get("environment", {})
    if env.get("torch") and env["torch"] != current.environment["torch"]:
        typer.echo(
            f"note: baseline measured with torch {env['torch']}, now {current.environment['torch']}"
        )
    elsewhere = other_cpu(reference, current)
    if elsewhere:
        typer.echo(
            f"note: latency ratios not compared: the baseline's were measured on an {elsewhere} "
            f"CPU, this one is {cpu_kind(current.environment)} (accuracy and counts "
            "are); a baseline for this kind of CPU: --update with --baseline OTHER.json"
        )
    if json_out is not None:
        text = json.dumps(report_json(rows, reference, current, baseline), indent=1) + "\n"
        typer.echo(f"wrote {write_report(json_out, text)}")
    if junit_out is not None:
        xml = junit_xml(rows, baseline, time.monotonic() - start)
        typer.echo(f"wrote {write_report(junit_out, xml)}")
    if any("statistic" in r.detail for r in rows):
        typer.echo(latency_note(settings))
    if failed:
        print_table(
            f"{len(failed)} of {len(rows)} checks regressed against {baseline}", rows_table(rows)
        )
        typer.echo("\n(rerun with --update to accept the new values as the baseline)")
        raise typer.Exit(1)
    print_table(f"all {len(rows)} checks within tolerance of {baseline}", rows_table(rows))
