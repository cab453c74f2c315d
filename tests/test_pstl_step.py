"""benchmarks/pstl_step.py: PSTL's own step run unchanged on the CPU, through stand-ins for
``sacred``, ``.cuda()`` and its data and logging modules. Checked here on a small
checkout written in PSTL's style (sacred-captured configuration, ``.cuda()`` calls, a
``BTProcessor`` whose ``train_epoch`` loops over ``data_loader['train']``)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "pstl_step.py"

CONFIG = textwrap.dedent("""
    from sacred import Experiment

    ex = Experiment("style", save_git_info=False)

    @ex.config
    def my_config():
        channel_num = 3
        person_num = 2
        joint_num = 5
        max_frame = 8
        width = 7
        pretrain_lr = 0.5
        momentum = 0.25
""")

PROCEDURE = textwrap.dedent("""
    from config import *
    from dataset import DataSet
    from logger import Log

    import json
    import torch
    import torch.nn as nn
    from tqdm import tqdm

    class BTProcessor:
        @ex.capture
        def load_model(self, width, channel_num):
            self.encoder = nn.Linear(channel_num, width).cuda()
            self.btwins_head = nn.Linear(width, 1, bias=False).cuda()

        @ex.capture
        def load_optim(self, pretrain_lr, momentum=0.9):
            params = [*self.encoder.parameters(), *self.btwins_head.parameters()]
            self.optimizer = torch.optim.SGD(params, lr=pretrain_lr, momentum=momentum)

        @ex.capture
        def train_epoch(self, epoch, pretrain_lr, max_frame):
            for data, label in tqdm(self.data_loader["train"]):
                data = data.type(torch.FloatTensor).cuda()
                assert data.shape[2] == max_frame and not data.is_cuda
                feat = self.encoder(data.mean(dim=(2, 3, 4)))
                loss = self.btwins_head(feat).pow(2).mean()
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                self.log.update_batch("log/pretrain/bt_loss", loss.item())
            group = self.optimizer.param_groups[0]
            print(json.dumps({"epoch": epoch, "lr": group["lr"], "momentum": group["momentum"],
                              "captured_lr": pretrain_lr}))
""")


def _checkout(root: Path) -> Path:
    root.mkdir()
    (root / "config.py").write_text(CONFIG)
    (root / "procedure.py").write_text(PROCEDURE)
    return root


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300
    )


def test_the_step_runs_with_its_configuration_captured_and_on_the_cpu(tmp_path):
    root = _checkout(tmp_path / "checkout")
    done = _run("--pstl", str(root), "--steps", "2", "--warmup", "1", "--batch", "4")
    assert done.returncode == 0, done.stderr[-2000:]
    *epochs, result = [json.loads(line) for line in done.stdout.splitlines()]
    # one loop body per step, warm-up included, past PSTL's warm-up epochs
    assert [e["epoch"] for e in epochs] == [10, 10, 10]
    # sacred's rule: what the config defines fills a captured argument, even one with a
    # default of its own; what the caller passes wins
    assert all(e["lr"] == e["captured_lr"] == 0.5 and e["momentum"] == 0.25 for e in epochs)
    assert result["shape"] == [4, 3, 8, 5, 2]
    assert result["params"] == 3 * 7 + 7 + 7
    assert len(result["step_s"]) == 2 and result["samples_per_s"] > 0
    assert "it/s" not in done.stderr  # no progress bar around the one-batch loader


def test_flops_count_the_steps_products(tmp_path):
    root = _checkout(tmp_path / "checkout")
    done = _run("--pstl", str(root), "--flops", "--batch", "4")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.splitlines()[-1])
    # forward 2·4·3·7 + 2·4·7·1; backward: the head's two products, the encoder's weight
    forward = 2 * 4 * 3 * 7 + 2 * 4 * 7
    backward = 2 * (2 * 4 * 7) + 2 * 4 * 3 * 7
    assert round(result["gflop_per_step"] * 1e9) == forward + backward == 504


def test_a_folder_without_pstls_files_is_one_line_and_exit_2(tmp_path):
    done = _run("--pstl", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"--pstl: {tmp_path.resolve()} holds no procedure.py and config.py of PSTL"
    ]


def test_a_package_pstl_needs_but_is_missing_is_one_line_and_exit_2(tmp_path):
    root = _checkout(tmp_path / "checkout")
    (root / "procedure.py").write_text("import a_package_nobody_installed\n" + PROCEDURE)
    done = _run("--pstl", str(root))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "--pstl: PSTL's code imports 'a_package_nobody_installed': "
        "pip install a_package_nobody_installed"
    ]
