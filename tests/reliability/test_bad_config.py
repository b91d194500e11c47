"""Bad config: each mistake names file, field and reason; via the CLI it is one `error:` line,
exit 2, and no run folder. (Cases already in tests/test_config.py, test_grading.py and
test_scenarios.py are not repeated here.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.analysis.grading import load_dataset
from workbench.analysis.scenarios import load_scenarios
from workbench.cli import main
from workbench.config import load_contenders
from workbench.errors import ConfigError
from workbench.prompts import load_prompts

GOOD = ("contenders:\n  - name: h\n    api: openai-chat\n    base_url: http://127.0.0.1:9/v1\n"
        "    model: m\n")


def check(err: ConfigError, path: Path, field: str, reason: str) -> None:
    assert err.path == str(path)
    assert err.field is not None and field in err.field, err.field
    assert reason in err.reason, err.reason


@pytest.mark.parametrize(("extra", "field", "reason"), [
    ("    timeout_s: soon\n", "contenders[h].timeout_s", "valid number"),
    ("    enabled: perhaps\n", "contenders[h].enabled", "valid boolean"),
    ("    headers: [a, b]\n", "contenders[h].headers", "valid dictionary"),
    ("    sampling: {temperature: 9}\n", "contenders[h].sampling.temperature", "less than or equal to 2"),
    ("    sampling: {colour: red}\n", "contenders[h].sampling.colour", "unknown field; valid: max_tokens"),
])
def test_contender_wrong_types(tmp_path: Path, extra: str, field: str, reason: str) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(GOOD + extra)
    with pytest.raises(ConfigError) as info:
        load_contenders(p)
    check(info.value, p, field, reason)


@pytest.mark.parametrize(("line", "field", "reason"), [
    ('{"id": "a", "text": "hi"', "line 2", "not valid JSON"),
    ('["a", "hi"]', "line 2", "must be a JSON object"),
    ('{"id": "b"}', "line 2: text", "required, a non-empty string"),
    ('{"id": "b", "text": "x", "colour": 1}', "line 2: colour", "unknown field; valid: id, images, meta, system, text"),
    ('{"id": "a", "text": "again"}', "line 2: id", "duplicate id 'a'"),
    ('{"id": "b", "text": "x", "meta": 3}', "line 2: meta", "must be an object"),
])
def test_unreadable_prompt_set_line(tmp_path: Path, line: str, field: str, reason: str) -> None:
    p = tmp_path / "set.jsonl"
    p.write_text('{"id": "a", "text": "hello"}\n' + line + "\n")
    with pytest.raises(ConfigError) as info:
        load_prompts(p)
    check(info.value, p, field, reason)


def test_unknown_prompt_set_name_lists_valid_ones() -> None:
    with pytest.raises(ConfigError, match="no such prompt set; valid names: .*latency"):
        load_prompts("latncy")


def test_unreadable_dataset_line_unknown_field(tmp_path: Path) -> None:
    p = tmp_path / "d.jsonl"
    p.write_text('{"id": "q1", "category": "people", "question": "Who?", "answers": ["X"], '
                 '"answerable": true, "hint": "no"}\n')
    with pytest.raises(ConfigError) as info:
        load_dataset(p)
    check(info.value, p, "line 1: hint", "unknown field")


@pytest.mark.parametrize(("body", "field", "reason"), [
    ("- a\n- b\n", None, "expected a mapping"),
    ("scenarios: []\n", "scenarios", "non-empty mapping"),
    ("scenarios:\n  s: {kind: interactive}\n", "scenarios.s.kind", "unknown kind 'interactive'"),
])
def test_invalid_scenarios_file(tmp_path: Path, body: str, field: str | None, reason: str) -> None:
    p = tmp_path / "s.yaml"
    p.write_text(body)
    with pytest.raises(ConfigError) as info:
        load_scenarios(p)
    assert info.value.path == str(p) and reason in info.value.reason
    if field is not None:
        assert info.value.field is not None and info.value.field.startswith(field.split(".")[0])


@pytest.mark.parametrize(("body", "field"), [
    (GOOD + "    colour: red\n", "contenders[h].colour: unknown field"),
    (GOOD + "    timeout_s: soon\n", "contenders[h].timeout_s"),
    (GOOD.replace("openai-chat", "telepathy"), "contenders[h].api: unknown api kind 'telepathy'"),
    (GOOD.replace("openai-chat", "openai-completions"), "contenders[h]: api 'openai-completions' is a "
                                                         "completion API: prompt_template is required"),
    (GOOD + GOOD.removeprefix("contenders:\n"), "contenders[h]: duplicate contender name"),
])
def test_cli_run_with_bad_contenders_file_is_one_line_exit_2_and_no_run_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, field: str
) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(body)
    out = tmp_path / "run"
    code = main(["run", "--experiments", "latency", "--contenders-file", str(p), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {p.resolve()}: {field}"), captured.err
    assert captured.out == ""
    assert not out.exists()


def test_cli_run_with_bad_contenders_file_creates_nothing_under_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --out the default results/ root must not gain a folder either."""
    import workbench.results as results

    root = tmp_path / "results"
    root.mkdir()
    monkeypatch.setattr(results, "results_root", lambda: root)
    p = tmp_path / "bad.yaml"
    p.write_text(GOOD + "    colour: red\n")
    assert main(["run", "--experiments", "latency", "--contenders-file", str(p)]) == 2
    assert list(root.iterdir()) == []
    assert "error: " in capsys.readouterr().err
