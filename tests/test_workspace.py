"""The workspace: which one is in force, `workbench init`, `workbench validate`, tasks from the user's data."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from workbench import workspace
from workbench.cli import main
from workbench.experiments import workspace_inputs
from workbench.prompts import load_prompts
from workbench.workspace_files import init_workspace, validate_workspace


@pytest.fixture
def ws_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(workspace.WORKSPACE_ENV, raising=False)
    root = tmp_path / "bank"
    init_workspace(root, log=lambda _: None)
    return root


def test_outside_any_workspace_the_bundled_example_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(workspace.WORKSPACE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    ws = workspace.current()
    assert ws.kind == "example" and ws.contenders_file.is_file()


def test_the_nearest_workspace_above_the_current_folder_wins(ws_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ws_dir / "notebooks")
    ws = workspace.current()
    assert ws.root == ws_dir.resolve() and ws.results_dir == ws_dir.resolve() / "results"
    assert ws.notebook("latency.ipynb") == ws_dir.resolve() / "notebooks" / "latency.ipynb"
    (ws_dir / "notebooks" / "latency.ipynb").unlink()
    assert ws.notebook("latency.ipynb") == ws.packaged_notebooks / "latency.ipynb"  # the package's copy


def test_the_environment_variable_wins_over_the_current_folder(ws_dir: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(workspace.WORKSPACE_ENV, str(ws_dir))
    assert workspace.current().root == ws_dir.resolve()


def test_a_folder_that_is_not_a_workspace_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(workspace.WORKSPACE_ENV, raising=False)
    assert main(["--workspace", str(tmp_path), "validate"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a workspace: no contenders.yaml or scenarios.yaml" in err


def test_init_writes_a_workspace_that_validates_and_refuses_a_non_empty_folder(ws_dir: Path) -> None:
    read, problems = validate_workspace(workspace.find(ws_dir))
    assert problems == []
    assert any("messages.csv: 162 rows" in line for line in read)
    assert sorted(p.name for p in (ws_dir / "notebooks").glob("*.ipynb")) == [
        "coalescing.ipynb", "concurrency.ipynb", "context.ipynb", "hallucination.ipynb", "latency.ipynb",
        "summary.ipynb"]
    with pytest.raises(Exception, match="not empty"):
        init_workspace(ws_dir, log=lambda _: None)


def test_the_scenarios_tasks_become_each_experiments_inputs(ws_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(workspace.WORKSPACE_ENV, str(ws_dir))
    inputs = workspace_inputs()
    assert inputs["latency"] == {"prompt_set": "scenario:routing"}
    assert inputs["concurrency"] == {"prompt_set": "scenario:routing", "scenario": "routing"}
    assert inputs["hallucination"] == {"datasets": "scenario:prototyping"}
    prompts = load_prompts("scenario:routing")
    assert len(prompts) == 162
    # the instruction lists the task's labels, as the bundled routing prompts do
    assert prompts[0].text.startswith("Label the intent of this message as billing, shipping, technical, account "
                                      "or other: ")
    assert prompts[0].meta["expected"] == "billing"


def test_a_notebook_left_to_its_defaults_measures_the_workspace_it_sits_in(
        ws_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """JupyterLab, plain papermill and nbval pass no parameters: an empty prompt set, scenario or
    dataset is the workspace's own; in the bundled example, its routing prompts and datasets."""
    from workbench.errors import WorkbenchError
    from workbench.experiments import scenario_input
    from workbench.experiments.hallucination import resolve_datasets

    monkeypatch.chdir(ws_dir / "notebooks")  # where the notebook's kernel starts
    assert scenario_input("latency", "prompt_set") == "scenario:routing"
    assert scenario_input("concurrency", "scenario") == "routing"
    assert resolve_datasets("") == [ws_dir.resolve() / "data" / "qa.jsonl"]
    text = (ws_dir / "scenarios.yaml").read_text(encoding="utf-8")
    (ws_dir / "scenarios.yaml").write_text(text.split("\n  routing:")[0] + "\n  batch_annotation:" +
                                           text.split("\n  batch_annotation:")[1], encoding="utf-8")
    with pytest.raises(WorkbenchError, match="latency: prompt_set is empty and the workspace's scenarios name none"):
        scenario_input("latency", "prompt_set")
    monkeypatch.chdir(ws_dir.parent)
    monkeypatch.setenv(workspace.WORKSPACE_ENV, str(workspace.bundled().root))
    assert scenario_input("latency", "prompt_set") == "routing"
    assert {p.stem for p in resolve_datasets("")} >= {"facts", "false_premise"}


def test_a_domain_of_ones_own(ws_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Labels with '_' and '-', a custom instruction, documents and QA as CSV."""
    monkeypatch.setenv(workspace.WORKSPACE_ENV, str(ws_dir))
    (ws_dir / "data" / "messages.csv").write_text(
        "text,label,acceptable\nI lost my card,card_lost,\nwhy was I charged twice,double-charge,card_lost\n",
        encoding="utf-8")
    (ws_dir / "data" / "qa.csv").write_text("question,answers\nWhat is the overdraft fee?,25|$25\n"
                                            "When did the bank open its Mars branch?,\n", encoding="utf-8")
    text = (ws_dir / "scenarios.yaml").read_text(encoding="utf-8")
    text = text.replace("labels: [billing, shipping, technical, account, other]",
                        'labels: [card_lost, double-charge], instruction: "Route: {text} ({labels})"')
    text = text.replace("data: data/qa.jsonl", "data: data/qa.csv")
    (ws_dir / "scenarios.yaml").write_text(text, encoding="utf-8")
    prompts = load_prompts("scenario:routing")
    assert [p.text for p in prompts] == ["Route: I lost my card (card_lost or double-charge)",
                                         "Route: why was I charged twice (card_lost or double-charge)"]
    assert prompts[1].meta == {"expected": "double-charge", "acceptable": ["double-charge", "card_lost"]}
    from workbench.experiments.hallucination import load_items

    items = load_items("scenario:prototyping")
    assert [(i.answerable, i.answers, i.category) for i in items] == [
        (True, ("25", "$25"), "questions"), (False, (), "false_premise")]


@pytest.mark.parametrize(("file", "old", "new", "expected"), [
    ("data/messages.csv", "id,text,label,acceptable", "id,message,label,acceptable",
     "messages.csv: line 1 (header): message: unknown column; valid: text, label, id, acceptable"),
    ("data/documents.csv", "doc-001,", "doc-001,,", "documents.csv: row 1 (line 2)"),
    ("data/messages.csv", "route-001,you charged me", 'route-001,"you charged me', "messages.csv: row 1 (line 2)"),
    ("scenarios.yaml", "    monthly_requests: 50000", "    monthly_requests: 50000\n    colour: red",
     "scenarios.prototyping.colour: unknown field"),
    ("scenarios.yaml", "data: data/qa.jsonl", "data: data/absent.jsonl", "absent.jsonl: no such file"),
    ("scenarios.yaml", "{type: qa,", "{type: qa, colour: red,",
     "scenarios.prototyping.task.colour: unknown field; valid: type, data, labels, instruction"),
    ("contenders.yaml", "  timeout_s: 60", "  timeout_s: soon", "timeout_s"),
    ("contenders.yaml", "    model: gemma-3-270m\n", "    model: gemma-3-270m\n    price: {machine_hour_usd: cheap}\n",
     "contenders[gemma-3-270m].price.machine_hour_usd"),
])
def test_validate_names_each_broken_file_in_one_line(ws_dir: Path, file: str, old: str, new: str, expected: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    p = ws_dir / file
    text = p.read_text(encoding="utf-8")
    assert old in text
    p.write_text(text.replace(old, new, 1), encoding="utf-8")
    assert main(["--workspace", str(ws_dir), "validate"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(errors) == 1 and errors[0].startswith("error: ") and expected in errors[0], errors


def test_an_empty_label_and_a_label_outside_the_task_are_named(ws_dir: Path, capsys: pytest.CaptureFixture[str]
                                                              ) -> None:
    p = ws_dir / "data" / "messages.csv"
    p.write_text("text,label\nhello,\nhi,refunds\n", encoding="utf-8")
    assert main(["--workspace", str(ws_dir), "validate"]) == 2
    assert "row 1 (line 2): label: must not be empty" in capsys.readouterr().err
    p.write_text("text,label\nhi,refunds\n", encoding="utf-8")
    assert main(["--workspace", str(ws_dir), "validate"]) == 2
    assert "'refunds' is not one of the task's labels" in capsys.readouterr().err


def test_the_bundled_example_is_unchanged_by_init(ws_dir: Path) -> None:
    ex = workspace.bundled()
    assert ex.kind == "example"
    shutil.rmtree(ws_dir)
    assert ex.contenders_file.is_file()
