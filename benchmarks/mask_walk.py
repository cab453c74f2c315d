"""The road a mask choice travels: from ``asma-bench run --set KEY=VALUE`` to the mask
applied to a batch, measured by running the command.

    python benchmarks/mask_walk.py                         # --set masking.pairing=hdsm_lmtm
    python benchmarks/mask_walk.py --key pretrain.pairing  # an older config's key

A one-cell grid (Barlow Twins, linear protocol, smoke profile, one seed, synthetic data)
is run with the pairing given on the command line. The walk is every function of the
package that handles the choice: parses the ``--set`` text that carries it, reads it from a
config (``masking.pairing``/``spatial``/``temporal``/``encoders``, or the older
``pretrain.pairing``), looks a pairing up by name, builds a masking strategy, or draws and
applies a mask to a batch (up to the first batch). Printed: its calls (distinct
functions) and files; the same with every call on the stack above them (the road from the
command down); and how often each kind of handling happened — a choice parsed, read or
looked up more than once is work repeated.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import textwrap
from collections import Counter
from pathlib import Path

PACKAGE = "asma_bench"

#: (file, function) of the package's functions that handle the choice when called
HANDLERS = {
    ("config.py", "parse_override"): "parse",
    ("strategies/pairs.py", "create_pairing"): "lookup",
    ("strategies/base.py", "create_masking"): "build",
    ("objectives/base.py", "masked_view"): "draw",
    ("objectives/barlow_twins.py", "masked_view"): "draw",  # (its home before)
    ("strategies/apply.py", "apply_mask"): "apply",
}
#: config fields that hold the choice, by section class
CHOICE_FIELDS = {"MaskingConfig": {"pairing", "spatial", "temporal", "encoders"},
                 "PretrainConfig": {"pairing"}}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--key", default="masking.pairing", help="the config key of the pairing")
    parser.add_argument("--value", default="hdsm_lmtm")
    args = parser.parse_args(argv)

    from asma_bench import config as config_module
    from asma_bench.cli import main as cli_main

    root = Path(cli_main.__code__.co_filename).resolve().parent
    walk: set[tuple[str, str]] = set()  # the functions that handle the choice
    road: set[tuple[str, str]] = set()  # and every call on the stack above them
    stack: list[tuple[str, str]] = []
    counts: Counter[str] = Counter()

    def where(frame) -> tuple[str, str] | None:  # noqa: ANN001 - a frame
        try:
            rel = Path(frame.f_code.co_filename).resolve().relative_to(root).as_posix()
        except ValueError:
            return None
        name = frame.f_code.co_qualname  # a comprehension counts as its function
        while name.endswith(">") and ".<locals>.<" in name:
            name = name.rsplit(".<locals>.<", 1)[0]
        return rel, name

    def hook(frame, event, arg):  # noqa: ANN001, ANN202, ARG001 - sys.setprofile's signature
        if event not in ("call", "return"):
            return
        place = where(frame)
        if place is None:
            return
        if event == "return":
            if stack and stack[-1] == place:
                stack.pop()
            return
        stack.append(place)
        kind = HANDLERS.get(place)
        if kind is None or (kind in ("draw", "apply") and counts["apply"]):
            return  # the first batch's mask is the walk's end
        if kind == "parse" and not str(frame.f_locals.get("text", "")).startswith(args.key):
            return
        counts[kind] += 1
        walk.add(place)
        road.update(stack)

    def reads(cls: type, fields: set[str]) -> None:
        plain = cls.__getattribute__

        def read(self, name):  # noqa: ANN001, ANN202
            if name in fields:
                place = where(sys._getframe(1))
                if place is not None and not place[1].startswith("_moved"):
                    counts["read"] += 1
                    walk.add(place)
                    road.update(stack)
            return plain(self, name)

        cls.__getattribute__ = read

    for name, fields in CHOICE_FIELDS.items():
        reads(getattr(config_module, name), fields)

    with tempfile.TemporaryDirectory() as tmp:
        grid = Path(tmp) / "walk.yaml"
        grid.write_text(
            textwrap.dedent("""
            name: walk
            protocol: linear
            references: []
            base: {pretrain: {objective: barlow_twins, epochs: 1}}
            cells:
              - {name: a}
            """)
        )
        command = ["run", "--grid", str(grid), "--profile", "smoke", "--seed-list", "0",
                   "--runs", str(Path(tmp) / "runs"), "--no-progress",
                   "--set", f"{args.key}={args.value}"]  # fmt: skip
        sys.setprofile(hook)
        try:
            code = cli_main(command)
        finally:
            sys.setprofile(None)
    if code != 0:
        print(f"the command exited {code}", file=sys.stderr)
        return code
    files = sorted({f for f, _ in walk})
    print(f"walk of --set {args.key}={args.value}: {len(walk)} calls over {len(files)} files "
          f"handle the choice; with the calls above them, {len(road)} calls over "
          f"{len({f for f, _ in road})} files")  # fmt: skip
    for kind in ("parse", "read", "lookup", "build", "draw", "apply"):
        print(f"  {kind}: {counts[kind]} time(s)")
    for file in sorted({f for f, _ in road}):
        calls = [q if (file, q) in walk else f"({q})" for f, q in sorted(road) if f == file]
        print(f"  {file}: " + ", ".join(calls))
    print("  (in brackets: calls that only pass the choice on)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
