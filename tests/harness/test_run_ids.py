"""Run ids as users type them (a unique prefix), parameters read back from their text, and
MLflow's artifact progress bars kept out of logs."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from asma_bench.errors import ConfigError
from asma_bench.harness.tracking import (
    PROGRESS_BAR_ENV,
    Tracker,
    _param_value,
    parse_param,
    quiet_artifact_downloads,
    resolve_run_id,
)


class _Page(list):
    token = None


class _Client:
    """An MLflow client of a remote store holding runs with the given ids."""

    def __init__(self, ids: list[str]):
        self.ids = ids

    def get_run(self, run_id: str) -> SimpleNamespace:
        if run_id not in self.ids:
            raise LookupError(run_id)
        return SimpleNamespace(info=SimpleNamespace(run_id=run_id))

    def search_experiments(self) -> list[SimpleNamespace]:
        return [SimpleNamespace(experiment_id="1")]

    def search_runs(self, _exp: list[str], max_results: int, page_token: str | None) -> _Page:
        return _Page(SimpleNamespace(info=SimpleNamespace(run_id=i)) for i in self.ids)


def test_a_unique_prefix_names_its_run_an_ambiguous_one_says_how_many():
    ids = ["abcdef0123456789" * 2, "abcdef01ffff0000" * 2, "abcdef0177770000" * 2]
    client, uri = _Client(ids), "http://tracking.invalid"
    assert resolve_run_id(client, ids[0], uri) == ids[0]
    assert resolve_run_id(client, "abcdef01234", uri) == ids[0]
    assert resolve_run_id(client, "ABCDEF01FFFF", uri) == ids[1]
    with pytest.raises(ConfigError, match="^run 'abcdef01': 3 runs in the store") as err:
        resolve_run_id(client, "abcdef01", uri)
    assert "\n" not in str(err.value)
    for unknown in ("abcdef02", "abcdef0", "no-such-run"):  # too short or no match
        with pytest.raises(ConfigError, match=f"^run '{unknown}' is not in the store"):
            resolve_run_id(client, unknown, uri)


def test_a_prefix_resolves_in_a_sqlite_store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, experiment="asma-bench", artifact_root=tmp_path / "artifacts")
    made = [tracker.client.create_run(tracker.experiment_id).info.run_id for _ in range(2)]
    for run_id in made:
        assert resolve_run_id(tracker.client, run_id[:8], uri) == run_id
    tracker.client.delete_run(made[0])  # a deleted run is no longer named
    with pytest.raises(ConfigError, match="is not in the store"):
        resolve_run_id(tracker.client, made[0][:8], uri)


@pytest.mark.parametrize(
    "value", [True, False, None, 3, -2, 0.25, 1e-05, [0.0001, 0.01], ["joint"], {}, "stgcn"]
)
def test_a_parameter_reads_back_as_the_value_it_was_logged_from(value):
    back = parse_param(_param_value(value))
    assert back == value and type(back) is type(value)


def test_progress_bars_stay_off_unless_the_user_turned_them_on(monkeypatch):
    monkeypatch.delenv(PROGRESS_BAR_ENV, raising=False)
    quiet_artifact_downloads()
    assert os.environ[PROGRESS_BAR_ENV] == "false"
    monkeypatch.setenv(PROGRESS_BAR_ENV, "true")
    quiet_artifact_downloads()
    assert os.environ[PROGRESS_BAR_ENV] == "true"
