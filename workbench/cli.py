"""`workbench` console script: init, validate, serve, probe, run, report, list, mock-server, ratelimit-proxy,
batch-server.

Every user mistake ends as one `error: ...` line (exit 2) that says what was wrong and what
would be right; failed *requests* are records, never errors here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from workbench.errors import WorkbenchError

__all__ = ["main"]


def _cmd_serve(args: argparse.Namespace) -> int:
    from workbench.embedded import LOCAL_MODELS
    from workbench.serve.llama import serve
    from workbench.session import ENDPOINTS_ENV

    names = [n.strip() for n in args.models.split(",") if n.strip()] if args.models else list(LOCAL_MODELS)
    for n in names:
        if n not in LOCAL_MODELS:
            from workbench.errors import UnknownNameError

            raise UnknownNameError("local model", n, LOCAL_MODELS)
    ports = _serve_ports(names, args.port, args.ports)
    log_dir = Path(args.log_dir) if args.log_dir else Path(tempfile.mkdtemp(prefix="workbench-serve-"))
    with contextlib.ExitStack() as stack:
        servers = {}
        for name in names:  # one at a time, each on its own port (None: a free one)
            servers.update(stack.enter_context(serve([name], log_dir, port=ports[name])))
        endpoints = {name: s.base_url for name, s in servers.items()}
        for name, s in servers.items():
            print(f"{name:32s} {s.base_url}   (ready in {s.startup_s:.1f} s, log {s.log_path})")
        print(f"\nexport {ENDPOINTS_ENV}='{json.dumps(endpoints)}'")
        print("Ctrl-C stops the servers.", flush=True)
        if args.once:
            return 0
        try:
            while all(s.process.poll() is None for s in servers.values()):
                time.sleep(0.5)
        except KeyboardInterrupt:
            print("\nstopping")
            return 0
        dead = [n for n, s in servers.items() if s.process.poll() is not None]
        raise WorkbenchError(f"server(s) exited: {', '.join(dead)}; see {log_dir}")


def _serve_ports(names: Sequence[str], base: int | None, spec: str | None) -> dict[str, int | None]:
    """The port of each served model: `--ports name=port,...` for the named ones, else `--port
    BASE` + its position in `names`, else None (a free port, different every time). Fixed ports
    let a contenders file point at `workbench serve` (`base_url: http://127.0.0.1:8081/v1`).
    A port out of range, given twice, or already taken on 127.0.0.1 is a one-line error."""
    import socket

    from workbench.errors import UnknownNameError

    chosen: dict[str, int | None] = {n: (base + i if base is not None else None) for i, n in enumerate(names)}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not value.strip().isdigit():
            raise WorkbenchError(f"--ports: {part.strip()!r} is not name=port")
        if name not in chosen:
            raise UnknownNameError("served model", name, chosen)
        chosen[name] = int(value)
    taken: dict[int, str] = {}
    for name, port in chosen.items():
        if port is None:
            continue
        if not 1 <= port <= 65535:
            raise WorkbenchError(f"port {port} for {name} is not a TCP port (1-65535)")
        if port in taken:
            raise WorkbenchError(f"port {port} is given to both {taken[port]} and {name}")
        taken[port] = name
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError as exc:
                raise WorkbenchError(f"port {port} for {name} is not free on 127.0.0.1: {exc.strerror}") from None
    return chosen


def _cmd_build_server(args: argparse.Namespace) -> int:
    from workbench.serve import llama_build

    config = llama_build.BuildConfig(native=not args.portable)
    if args.info:
        hit = llama_build.cached_server(config)
        if hit is None:
            print(f"not built yet: {llama_build.default_cache_root() / llama_build.cache_key(config)}",
                  file=sys.stderr)
            return 1
        print((hit.parent / "build.json").read_text(encoding="utf-8"), end="")
        return 0
    print(llama_build.build_server(config, force=args.force, log=sys.stderr))
    return 0


def _cmd_probe(args: argparse.Namespace) -> int:
    from workbench.config import load_contenders
    from workbench.measure.probe import probe_once
    from workbench.measure.target import Target
    from workbench.serve.llama import start_server
    from workbench.types import Prompt

    cset = load_contenders(args.contenders_file)
    contender = cset.get(args.contender)
    if contender.key_missing():
        print(f"{contender.name}: ${contender.api_key_env} is not set; export it to probe this contender",
              file=sys.stderr)
        return 2
    if args.max_tokens:
        contender = contender.with_sampling(max_tokens=args.max_tokens)
    prompt = Prompt(id="cli", text=args.prompt)
    server = None
    base_url = contender.base_url
    if contender.local is not None:
        log_dir = Path(tempfile.mkdtemp(prefix="workbench-probe-"))
        server = start_server(contender.local, log_dir)
        base_url = server.base_url
    try:
        assert base_url is not None
        target = Target(contender, base_url, stream=not args.no_stream)
        rec = probe_once(target, prompt)
    finally:
        if server is not None:
            server.stop()
    out = rec.to_dict()
    if not args.itl:
        out.pop("itl_s", None)
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0 if rec.ok else 1


def _cmd_run(args: argparse.Namespace) -> int:
    from workbench.config import load_contenders
    from workbench.experiments import select_experiments
    from workbench.runner import parse_params, run_experiments

    if args.ray_address:  # the notebooks' kernels inherit it (backend=ray; see measure/load/pool.py)
        os.environ["RAY_ADDRESS"] = args.ray_address
    if args.resume:
        return _resume(args)
    experiments = select_experiments(args.experiments)
    params = parse_params(args.param or [])
    if args.contenders_file:
        params["contenders_file"] = str(Path(args.contenders_file).resolve())
    # Validate the config before anything is written: a mistake leaves no half-made run folder.
    load_contenders(params.get("contenders_file") or None)
    run = run_experiments(experiments, out_dir=args.out, params=params)
    report = run.path / "report.html"
    if report.exists():
        print(f"report: {report}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from workbench.runner import parse_params, render_report

    run_dir = Path(args.run)
    if not (run_dir / "manifest.json").exists():
        raise WorkbenchError(f"{run_dir} is not a run folder (no manifest.json)")
    for other in args.compare or []:
        if not (Path(other) / "manifest.json").exists():
            raise WorkbenchError(f"--compare {other}: not a run folder (no manifest.json)")
    html = render_report(run_dir, compare=args.compare, params=parse_params(args.param or []))
    print(f"report: {html}")
    return 0


def _cmd_server(args: argparse.Namespace) -> int:
    """Serve a helper server (`args.build(args)`: mock, proxy, batch endpoint) until Ctrl-C, SIGTERM
    or `--duration`, then end the process here.

    A server command is a process of its own, and once the server has stopped and its summary is
    out, nothing is left to do but the interpreter's teardown of the ~1,100 modules the package
    imports: 0.5 s on an idle 2-core machine, seconds on a busy one — the difference between a
    server that stops within a second of its signal and one that does not. So the standard
    streams and logging are flushed and the process exits without that teardown."""
    from workbench.serve.http import run_from_args

    try:
        server = args.build(args)
    except ValueError as exc:
        raise WorkbenchError(str(exc)) from None
    code = run_from_args(server, args)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _resume(args: argparse.Namespace) -> int:
    """`workbench run --resume DIR`: the run's own experiments and parameters (from its manifest),
    into the same folder; each experiment skips the request ids already recorded."""
    from workbench.config import load_contenders
    from workbench.experiments import get_experiment
    from workbench.results import read_manifest
    from workbench.runner import run_experiments

    if args.experiments or args.param or args.out or args.contenders_file:
        raise WorkbenchError("--resume takes the experiments and parameters from the run's manifest; "
                             "drop --experiments/--param/--out/--contenders-file")
    run_dir = Path(args.resume)
    runner = read_manifest(run_dir).get("runner")
    if not isinstance(runner, dict) or not runner.get("experiments"):
        raise WorkbenchError(f"cannot resume {run_dir}: no manifest.json with a runner section "
                             "(only folders made by `workbench run` can be resumed)")
    experiments = [get_experiment(name) for name in runner["experiments"]]
    params = dict(runner.get("params") or {})
    load_contenders(params.get("contenders_file") or None)
    run_experiments(experiments, out_dir=run_dir, params=params, resume=True)
    return 0


def _cmd_init(args: argparse.Namespace) -> int:
    from workbench.workspace_files import init_workspace

    root = init_workspace(args.dir)
    print(f"workspace: {root}\nnext: cd {root} && workbench validate && workbench run")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from workbench import workspace
    from workbench.workspace_files import validate_workspace

    ws = workspace.current()
    read, problems = validate_workspace(ws)
    print(f"workspace: {ws.describe()}")
    for line in read:
        print(f"  ok  {line}")
    for line in problems:
        print(f"error: {line}", file=sys.stderr)
    return 2 if problems else 0


def _cmd_list(args: argparse.Namespace) -> int:
    from workbench.config import load_contenders
    from workbench.experiments import EXPERIMENTS

    cset = load_contenders(args.contenders_file)
    print("contenders:")
    for c in cset:
        where = f"local:{c.local}" if c.local else c.base_url
        state = "enabled" if c.enabled else "disabled"
        if c.key_missing():
            state += f", ${c.api_key_env} unset"
        reasoning = f"  reasoning {label}" if (label := c.reasoning_label()) else ""
        print(f"  {c.name:28s} {c.api:20s} {where}  ({state}){reasoning}")
    print("experiments:")
    for e in EXPERIMENTS.values():
        print(f"  {e.name:14s} {e.summary}")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from workbench.hosted_models import catalog, format_catalog

    try:
        cat = catalog([args.provider] if args.provider else None)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_catalog(cat, include_shut_down=args.all))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="workbench", description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--workspace", metavar="DIR",
                   help="the workspace to use (default: $WORKBENCH_WORKSPACE, else the nearest folder at or above "
                        "this one with contenders.yaml and scenarios.yaml, else the bundled example)")
    sub = p.add_subparsers(dest="command", required=True)
    _add_workspace_and_server_commands(sub)
    _add_measuring_commands(sub)
    _add_local_endpoint_commands(sub)
    return p


#: What `add_subparsers` returns: argparse gives it no public name.
_Subcommands = argparse._SubParsersAction


def _add_workspace_and_server_commands(sub: _Subcommands[argparse.ArgumentParser]) -> None:
    """init, validate, serve, build-server: a workspace and the embedded models' server."""
    s = sub.add_parser("init", help="write a workspace for your own workload (data, scenarios, contenders, notebooks)")
    s.add_argument("dir", help="a new or empty folder")
    s.set_defaults(func=_cmd_init)

    s = sub.add_parser("validate", help="check every file of the workspace without sending a request")
    s.set_defaults(func=_cmd_validate)

    s = sub.add_parser("serve", help="serve the embedded models until Ctrl-C")
    s.add_argument("--models", help="comma-separated local model names (default: all)")
    s.add_argument("--log-dir", help="where server logs go (default: a temp dir)")
    s.add_argument("--once", action="store_true", help="start, print the endpoints, stop (a smoke test)")
    s.add_argument("--port", type=int, help="serve the models on fixed ports from this one up, in --models order "
                   "(default: free ports, different every time)")
    s.add_argument("--ports", help="fixed ports per model, e.g. gemma-3-270m=8081,qwen2.5-coder-0.5b=8082")
    s.set_defaults(func=_cmd_serve)

    s = sub.add_parser("build-server", help="build llama.cpp's llama-server once per machine (make setup runs it)")
    s.add_argument("--info", action="store_true", help="print build.json of the cached binary instead (exit 1 if none)")
    s.add_argument("--portable", action="store_true", help="GGML_NATIVE=OFF (x86-64 AVX2 baseline), not -march=native")
    s.add_argument("--force", action="store_true", help="rebuild even if cached")
    s.set_defaults(func=_cmd_build_server)


def _add_measuring_commands(sub: _Subcommands[argparse.ArgumentParser]) -> None:
    """probe, run, report, models, list: measuring, reporting, and what there is to measure."""
    s = sub.add_parser("probe", help="one timed request, printed as a JSON record")
    s.add_argument("--contender", required=True)
    s.add_argument("--prompt", required=True)
    s.add_argument("--no-stream", action="store_true", help="non-streamed request (no TTFT)")
    s.add_argument("--max-tokens", type=int)
    s.add_argument("--itl", action="store_true", help="include the inter-chunk gaps")
    s.add_argument("--contenders-file")
    s.set_defaults(func=_cmd_probe)

    s = sub.add_parser("run", help="run experiment notebooks headlessly into a run folder")
    s.add_argument("--experiments", help="comma-separated (default: all)")
    s.add_argument("--param", action="append", metavar="NAME=VALUE", help="notebook parameter override")
    s.add_argument("--out", help="run folder (default: results/<new run id>)")
    s.add_argument("--contenders-file")
    s.add_argument("--resume", metavar="RUN_DIR",
                   help="finish an interrupted run in place: skip requests already recorded")
    s.add_argument("--ray-address", help="the Ray cluster for --param backend=ray (default: $RAY_ADDRESS)")
    s.set_defaults(func=_cmd_run)

    s = sub.add_parser("report", help="re-render a run's decision matrix and report.html")
    s.add_argument("run", help="run folder, e.g. results/20261129-101500-ab12")
    s.add_argument("--compare", action="append", metavar="RUN", help="another run folder to compare with")
    s.add_argument("--param", action="append", metavar="NAME=VALUE", help="summary notebook parameter")
    s.set_defaults(func=_cmd_report)

    s = sub.add_parser("models", help="the hosted providers' current models, as the installed SDKs and genai-prices "
                       "say (prices, context, shutdown dates)")
    s.add_argument("--provider", help="openai, anthropic or google (default: all)")
    s.add_argument("--all", action="store_true", help="also list models past their shutdown date")
    s.set_defaults(func=_cmd_models)

    s = sub.add_parser("list", help="contenders and experiments")
    s.add_argument("--contenders-file")
    s.set_defaults(func=_cmd_list)


def _add_local_endpoint_commands(sub: _Subcommands[argparse.ArgumentParser]) -> None:
    """mock-server, ratelimit-proxy, batch-server: the local servers that stand in for a provider
    (each module declares its own arguments)."""
    from workbench.serve import batch, mock, ratelimit

    # `synthetic-server` and `fault-server` were two servers before they became this one.
    s = sub.add_parser("mock-server", aliases=["synthetic-server", "fault-server"], allow_abbrev=False,
                       help="a local server speaking every hosted wire format, with known timing and faults")
    mock.add_arguments(s)
    s.set_defaults(func=_cmd_server, build=mock.from_args)

    s = sub.add_parser("ratelimit-proxy", help="forward to a base URL, answering 429 beyond N in flight")
    ratelimit.add_arguments(s)
    s.set_defaults(func=_cmd_server, build=ratelimit.from_args)

    s = sub.add_parser("batch-server", help="a local batch endpoint (OpenAI, Anthropic, Gemini batch APIs) running "
                       "the items against an upstream model server")
    batch.add_arguments(s)
    s.set_defaults(func=_cmd_server, build=batch.from_args)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    from workbench.workspace import in_force

    try:
        with in_force(args.workspace or None):  # this command and the kernels it starts; restored after
            return int(args.func(args))
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
