"""The console script: bad input gets one clear line and exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_unknown_experiment_lists_valid_ones(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "run", "--experiments", "latncy")
    assert code == 2 and "unknown experiment 'latncy'; valid: " in err and "latency" in err


def test_unknown_contender_lists_valid_ones(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "probe", "--contender", "gpt-6", "--prompt", "hi")
    assert code == 2 and "unknown contender 'gpt-6'; valid: " in err and "gemma-3-270m" in err


def test_hosted_contender_without_key_is_one_line(capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    code, out, err = run(capsys, "probe", "--contender", "claude-3.5-haiku", "--prompt", "hi")
    assert code == 2 and out == ""
    assert err.strip() == ("claude-3.5-haiku: $ANTHROPIC_API_KEY is not set; "
                           "export it to probe this contender")


@pytest.mark.parametrize("param", ["api_key=abc", "openai_token=x", "note=sk-abcdefghijklmnop"])
def test_secrets_are_refused_as_parameters(capsys: pytest.CaptureFixture[str], param: str) -> None:
    code, _, err = run(capsys, "run", "--experiments", "latency", "--param", param)
    assert code == 2 and "keys are never parameters" in err


def test_unknown_parameter_lists_valid_ones(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "run", "--experiments", "latency", "--param", "n_reqests=3")
    assert code == 2 and "unknown parameter 'n_reqests'; valid: " in err and "n_requests" in err


def test_bad_contenders_file_names_file_and_field(capsys: pytest.CaptureFixture[str], tmp_path: object) -> None:
    from pathlib import Path

    p = Path(str(tmp_path)) / "c.yaml"
    p.write_text("contenders:\n  - name: x\n    api: nope\n    base_url: http://h\n    model: m\n")
    code, _, err = run(capsys, "list", "--contenders-file", str(p))
    assert code == 2 and f"{p}: contenders[x].api: unknown api kind 'nope'" in err


@pytest.mark.parametrize("fmt", ["openai-chat", "anthropic", "gemini"])
def test_probe_prints_a_correct_record_for_a_hosted_format(
    capsys: pytest.CaptureFixture[str], tmp_path: object, wire: object, fmt: str
) -> None:
    """The seed's `curl … | jq .usage` probe, against a local server speaking the provider's
    wire format: one JSON record with real timings and the server's token usage."""
    import json
    from pathlib import Path

    import yaml

    from tests.conftest import CANARY, contender_for

    c = contender_for(fmt, wire)  # type: ignore[arg-type]
    p = Path(str(tmp_path)) / "c.yaml"
    p.write_text(yaml.safe_dump({"contenders": [c.model_dump(mode="json", exclude_none=True)]}))
    code, out, err = run(capsys, "probe", "--contender", c.name, "--prompt", "Say hello.", "--contenders-file", str(p))
    rec = json.loads(out)
    assert code == 0 and rec["status"] == "ok", err
    assert rec["api_kind"] == fmt and rec["token_source"] == "server" and rec["output_tokens"] > 0
    assert 0 < rec["ttft_s"] <= rec["e2e_s"]  # equal when the whole stream arrived in one read
    assert CANARY not in out and CANARY not in err


def test_serve_on_fixed_ports(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                              tmp_path: Path) -> None:
    """`workbench serve --port`/`--ports` puts each model on a port a contenders file can name
    (the servers are stand-ins here: the port is what is checked)."""
    import socket
    from types import SimpleNamespace

    from workbench.embedded import LOCAL_MODELS
    from workbench.serve import llama

    started: dict[str, int | None] = {}

    def fake_start(name: str, log_dir: Path, *, port: int | None = None, **_: object) -> SimpleNamespace:
        started[name] = port
        return SimpleNamespace(base_url=f"http://127.0.0.1:{port}/v1", startup_s=0.0, log_path=log_dir / name,
                               process=SimpleNamespace(poll=lambda: None), stop=lambda: None)

    monkeypatch.setattr(llama, "start_server", fake_start)
    def free_pair() -> int:
        """A base port that is free together with the next one (checked, not assumed: a busy
        machine's ephemeral ports are in use)."""
        for _ in range(50):
            with socket.socket() as s1:
                s1.bind(("127.0.0.1", 0))
                port = int(s1.getsockname()[1])
                with socket.socket() as s2:
                    try:
                        s2.bind(("127.0.0.1", port + 1))
                    except OSError:
                        continue
            return port
        raise RuntimeError("no two adjacent free ports")

    base = free_pair()
    a, b = list(LOCAL_MODELS)[:2]
    code, out, _ = run(capsys, "serve", "--models", f"{a},{b}", "--port", str(base), "--once",
                       "--log-dir", str(tmp_path))
    assert code == 0 and started == {a: base, b: base + 1}
    assert f"http://127.0.0.1:{base}/v1" in out and f"http://127.0.0.1:{base + 1}/v1" in out
    code, _, _ = run(capsys, "serve", "--models", f"{a},{b}", "--ports", f"{b}={base}", "--once",
                     "--log-dir", str(tmp_path))
    assert code == 0 and started == {a: None, b: base}
    # a taken port, an unknown model, a malformed entry: one line each
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        code, _, err = run(capsys, "serve", "--models", a, "--port", str(taken), "--once")
        assert code == 2 and f"port {taken} for {a} is not free" in err
    code, _, err = run(capsys, "serve", "--models", a, "--ports", "nope=8081", "--once")
    assert code == 2 and "unknown served model 'nope'" in err
    code, _, err = run(capsys, "serve", "--models", a, "--ports", f"{a}:8081", "--once")
    assert code == 2 and "is not name=port" in err
