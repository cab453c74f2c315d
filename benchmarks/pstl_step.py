"""Time PSTL's own pretraining step on the CPU, from a checkout of its public code.

`asma-bench bench` compares the library's step with PSTL's (Zhou et al., AAAI 2023), the
triplet Barlow Twins step this library's ``barlow_twins`` objective follows. This script
runs PSTL's step as PSTL's code writes it, unmodified: the loop body of
``BTProcessor.train_epoch`` in its ``procedure.py`` (crop, shear, rotation and flip for
each of the three inputs, motion-aware temporal masking of the second, centrality-weighted
joints dropped from the third, the encoder's three passes, two Barlow Twins losses, one
Adam step) on one in-memory batch. PSTL's code is not part of this repository: clone it
beside it and point ``--pstl`` at the checkout.

    git clone https://github.com/YujieOuO/PSTL ../PSTL
    pip install einops tqdm
    python benchmarks/pstl_step.py --pstl ../PSTL --steps 3 --warmup 1 --threads 2

PSTL is written for one GPU and for the ``sacred`` experiment framework. Three things are
supplied from outside its files, so that its code runs unchanged on a CPU:

- ``Tensor.cuda()`` and ``Module.cuda()`` return their object (its tensors stay on the CPU);
- a stand-in ``sacred`` module: ``Experiment.config`` runs ``config.py``'s config function
  and keeps its variables, ``Experiment.capture`` fills a captured function's missing
  arguments from them by name (sacred's rule), ``Experiment.automain`` runs nothing;
- stand-in ``dataset`` and ``logger`` modules (no data files are read; losses go nowhere),
  and no progress bar around the one-batch loader.

The batch is (B, 3, max_frame, 25, 2) standard-normal values, B = ``--batch`` (64 by
default, the batch `asma-bench bench --shapes paper` times; PSTL's config uses 128), with
``max_frame`` (50), the widths (16 base channels, 256-d features, a 6144-d projector),
the masks and the learning rate from PSTL's ``config.py``. One JSON line: samples/s (the
batch over the median step), every step's seconds, the peak resident set of the process,
the parameter count, and with ``--flops`` the FLOPs of one step (forward and backward,
``torch.utils.flop_counter``; a multiply-add counts 2). Alternate it with the bench in one
script to compare the two on one machine (docs/performance.md, "Against PSTL's own step").
"""

from __future__ import annotations

import argparse
import inspect
import json
import resource
import statistics
import sys
import time
import types
from pathlib import Path

import torch
from torch import nn


def _config_variables(function) -> dict:  # noqa: ANN001
    """Run a sacred config function and return its local variables at its return."""
    seen: dict = {}

    def profiler(frame, event, _arg):  # noqa: ANN001, ANN202
        if event == "return" and frame.f_code is function.__code__:
            seen.update(frame.f_locals)

    previous = sys.getprofile()
    sys.setprofile(profiler)
    try:
        function()
    finally:
        sys.setprofile(previous)
    return seen


class _Experiment:
    """Just enough of ``sacred.Experiment`` for PSTL's modules to import and run."""

    def __init__(self, *_args, **_kwargs) -> None:
        self.values: dict = {}

    def config(self, function):  # noqa: ANN001, ANN201
        self.values.update(_config_variables(function))
        return function

    def capture(self, function):  # noqa: ANN001, ANN201
        signature = inspect.signature(function)
        values = self.values

        def captured(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            bound = signature.bind_partial(*args, **kwargs)
            for name in signature.parameters:
                if name not in bound.arguments and name in values:
                    bound.arguments[name] = values[name]
            return function(*bound.args, **bound.kwargs)

        captured.__wrapped__ = function
        return captured

    def automain(self, function):  # noqa: ANN001, ANN201
        return function


def _stand_ins() -> _Experiment:
    """Install the stand-in modules and the CPU ``cuda()``; return the experiment once
    PSTL's ``config.py`` has filled it."""
    sacred = types.ModuleType("sacred")
    sacred.Experiment = _Experiment
    sys.modules["sacred"] = sacred
    dataset = types.ModuleType("dataset")
    dataset.DataSet = dataset.Feeder_semi = object
    sys.modules["dataset"] = dataset
    logger = types.ModuleType("logger")
    logger.Log = lambda *a, **k: types.SimpleNamespace(
        update_batch=lambda *a, **k: None, update_epoch=lambda *a, **k: None
    )
    sys.modules["logger"] = logger
    torch.Tensor.cuda = lambda self, *a, **k: self
    nn.Module.cuda = lambda self, *a, **k: self
    import config  # PSTL's config.py

    return config.ex


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pstl", type=Path, required=True, help="a checkout of PSTL's code")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0: torch's)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--flops", action="store_true", help="count one step's FLOPs instead")
    args = parser.parse_args()
    root = args.pstl.resolve()
    if not (root / "procedure.py").is_file() or not (root / "config.py").is_file():
        parser.exit(2, f"--pstl: {root} holds no procedure.py and config.py of PSTL\n")
    if args.threads:
        torch.set_num_threads(args.threads)
    sys.path.insert(0, str(root))
    try:
        experiment = _stand_ins()
        import procedure  # PSTL's procedure.py: seeds its generators on import
    except ModuleNotFoundError as error:  # PSTL's own imports (einops, tqdm) are the user's
        parser.exit(2, f"--pstl: PSTL's code imports {error.name!r}: pip install {error.name}\n")

    procedure.tqdm = lambda iterable, *a, **k: iterable  # no progress bar around the loader

    cfg = experiment.values
    processor = procedure.BTProcessor()
    processor.load_model()
    processor.load_optim()
    processor.log = sys.modules["logger"].Log()
    shape = (args.batch, cfg["channel_num"], cfg["max_frame"], cfg["joint_num"], cfg["person_num"])
    batch = (torch.randn(shape), torch.zeros(args.batch, dtype=torch.long))
    processor.data_loader = {"train": [batch]}  # train_epoch's loop body runs once
    # past PSTL's 10 warm-up epochs, so that the learning rate is not 0 (same work either way)
    epoch = 10
    modules = (processor.encoder, processor.btwins_head)
    params = sum(p.numel() for m in modules for p in m.parameters())
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "shape": list(shape),
           "params": params}  # fmt: skip
    if args.flops:
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with counter:
            processor.train_epoch(epoch=epoch)
        out["gflop_per_step"] = counter.get_total_flops() / 1e9
    else:
        for _ in range(args.warmup):
            processor.train_epoch(epoch=epoch)
        seconds = []
        for _ in range(args.steps):
            start = time.perf_counter()
            processor.train_epoch(epoch=epoch)
            seconds.append(time.perf_counter() - start)
        out["samples_per_s"] = args.batch / statistics.median(seconds)
        out["step_s"] = seconds
    out["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps(out))


if __name__ == "__main__":
    main()
