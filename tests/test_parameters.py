"""`--param` values are checked before any notebook starts: type, file, prompt set, dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.errors import WorkbenchError
from workbench.experiments import get_experiment
from workbench.runner import check_parameters, notebook_parameters


@pytest.fixture(scope="module")
def declared() -> dict[str, dict[str, object]]:
    names = ("latency", "concurrency", "hallucination", "coalescing")
    return {name: notebook_parameters(get_experiment(name).path) for name in names}


def test_values_of_the_defaults_type_pass_and_numbers_widen(declared: dict[str, dict[str, object]]) -> None:
    out = check_parameters(declared, {"n_requests": 5, "budget_usd": 1, "stream": False, "levels": 4})
    assert out == {"n_requests": 5, "budget_usd": 1.0, "stream": False, "levels": "4"}


@pytest.mark.parametrize(("params", "message"), [
    ({"n_requests": "many"}, "--param n_requests='many': latency.ipynb's n_requests is a whole number (default 12)"),
    ({"stream": "yes please"}, "stream is true or false"),
    ({"budget_usd": "cheap"}, "budget_usd is a number"),
    ({"contenders_file": "no/such.yaml"}, "--param contenders_file=no/such.yaml: no such file"),
    ({"prompt_set": "routng"}, "no such prompt set; valid names:"),
    ({"datasets": "facs"}, "no such dataset; valid names:"),
    ({"levels": "1,four,8"}, "--param levels: 'four' is not a whole number"),
    ({"levels": "0,4"}, "--param levels: 0 is not a concurrency"),
    ({"strategies": "naive,batchapi"}, "--param unknown strategy 'batchapi'; valid: naive,"),
])
def test_each_mistake_is_one_line_before_anything_runs(declared: dict[str, dict[str, object]],
                                                       params: dict[str, object], message: str) -> None:
    with pytest.raises(WorkbenchError) as e:
        check_parameters(declared, params)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_relative_file_is_the_shells_made_absolute(declared: dict[str, dict[str, object]], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "c.yaml").write_text("contenders: []\n")
    monkeypatch.chdir(tmp_path)
    assert check_parameters(declared, {"contenders_file": "c.yaml"})["contenders_file"] == str(tmp_path / "c.yaml")
