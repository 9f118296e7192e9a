"""Figures the documentation quotes, rerun: each test parses the figure from its page
(``docs/``), runs the command that produces it, and compares, at the precision the page
prints.  A page that is edited so that a figure is no longer found fails here too: the
figure and its check move together.  (The commands themselves are also run by
``tests/test_docs.py``; this file checks what they print.)"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import math
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest

from hwbp.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def page(name: str) -> str:
    """The text of ``docs/<name>`` with its line breaks folded into spaces."""
    return " ".join((DOCS / name).read_text(encoding="utf-8").split())


def figures(name: str, pattern: str) -> tuple[str, ...]:
    """The groups of the one match of ``pattern`` (whitespace-folded) in page ``name``."""
    found = re.findall(pattern, page(name))
    assert len(found) == 1, f"{name}: expected one match of {pattern!r}, found {found}"
    return found[0] if isinstance(found[0], tuple) else (found[0],)


def command_in(name: str, *must: str, without: tuple[str, ...] = ()) -> str:
    """The one ``hwbp`` command of page ``name``'s code blocks that contains every ``must``
    and none of ``without``."""
    text = (DOCS / name).read_text(encoding="utf-8")
    lines = [" ".join(line.replace("\\\n", " ").split())
             for block in re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.M | re.S)
             for line in block.replace("\\\n", " ").splitlines()]
    hits = [line for line in lines if line.startswith("hwbp ") and all(m in line for m in must)
            and not any(w in line for w in without)]
    assert len(hits) == 1, f"{name}: expected one command with {must}, found {hits}"
    return hits[0]


def same_digits(printed: str, measured: float) -> bool:
    """Whether ``measured`` rounds to ``printed`` at the decimals ``printed`` shows."""
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    return round(measured, decimals) == float(printed)


def same_magnitude(printed: str, measured: float) -> bool:
    """Whether ``measured`` written with one significant digit is ``printed`` (``8e-15``)."""
    return float(f"{measured:.0e}") == float(printed)


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch) -> Path:
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(command: str, report: Path | None = None) -> tuple[str, dict]:
    """Run an ``hwbp`` command in process; its stdout and (with ``report``) its JSON report."""
    argv = shlex.split(command)[1:]
    argv = [a for i, a in enumerate(argv) if a != "--report" and (i == 0 or argv[i - 1] != "--report")]
    if report is not None:
        argv += ["--report", str(report)]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    assert code == 0, f"{command!r} exited {code}:\n{out.getvalue()}"
    return out.getvalue(), (json.loads(report.read_text()) if report is not None else {})


# --- hardware.md: a device instance short of its fixed point after 2L unit steps --------------

def test_hardware_instance_losses(sandbox: Path) -> None:
    after, fixed, steady_steps, more = figures(
        "hardware.md", r"circuit loss is ([\d.]+) after 2L = 6 unit steps and ([\d.]+) at the fixed point, "
                       r"which `--mode steady` \((\d+) steps here\) or `--steps (\d+)` reach")
    base = command_in("hardware.md", "typical.toml")
    loss = re.compile(r"loss: circuit ([\d.]+)")
    text, rep = run(base, sandbox / "unit.json")
    assert rep["settle"]["steps"] == 6 and same_digits(after, float(loss.search(text).group(1)))
    text, rep = run(base + " --mode steady", sandbox / "steady.json")
    assert rep["settle"]["steps"] == int(steady_steps) and same_digits(fixed, float(loss.search(text).group(1)))
    text, _ = run(base + f" --steps {more}")
    assert same_digits(fixed, float(loss.search(text).group(1)))


# --- depth.md: the committed depth run's figures are those of its table --------------------------

def _depth_rows() -> list[dict[str, str]]:
    lines = (ROOT / "sims" / "depth" / "results.md").read_text(encoding="utf-8").splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| dataset"))
    keys = [c.strip() for c in lines[header].strip("|").split("|")]
    rows = []
    for line in lines[header + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(keys, (c.strip() for c in line.strip("|").split("|")))))
    return rows


def test_depth_figures_are_the_committed_tables() -> None:
    rows = _depth_rows()

    def values(method: str, depth: int, column: str) -> list[float]:
        got = [float(r[column].split()[0]) for r in rows
               if r["dataset"] == "mnist5k" and r["method"] == method and r["L"] == str(depth)]
        assert len(got) == 2, (method, depth)  # relu and tanh
        return got

    pc8, pc_lo, pc_hi, alm8, alm_lo, alm_hi = figures(
        "depth.md", r"PC's cosine falls from ([\d.]+) \(L = 8\) to ([\d.]+)–([\d.]+) \(L = 128\) on mnist5k, "
                    r"PC-ALM's from ([\d.]+) to ([\d.]+)–([\d.]+)")
    for method, at8, lo, hi in (("pc", pc8, pc_lo, pc_hi), ("pc-alm", alm8, alm_lo, alm_hi)):
        assert all(same_digits(at8, c) for c in values(method, 8, "grad cosine")), method
        deep = values(method, 128, "grad cosine")
        assert same_digits(lo, min(deep)) and same_digits(hi, max(deep)), (method, deep)
    slow, fast = figures("depth.md", r"they take (\d+)–(\d+) s per run on mnist5k")
    wall = values("pc", 128, "wall s/run") + values("pc-alm", 128, "wall s/run")
    assert round(min(wall), -1) == int(slow) and round(max(wall), -1) == int(fast), wall
    dyadic = [float(r["grad cosine"].split()[0]) for r in rows if r["method"] == "dyadic"]
    assert figures("depth.md", r"dyadic gradients have cosine ([\d.]+) to backprop")[0] == "1.000000"
    assert dyadic and all(c == 1.0 for c in dyadic)
    minutes = figures("depth.md", r"credit studies; ([\d.]+) min on 2 cores")[0]
    assert f"wall time {minutes} min" in (ROOT / "sims" / "depth" / "results.md").read_text(encoding="utf-8")


# --- models.md: the convolutional example ------------------------------------------------------------

@pytest.mark.slow
def test_cnn_figures(sandbox: Path) -> None:
    from hwbp.io import load_batch, load_model
    from hwbp.types import Batch
    from hwbp.verify import verify

    full = figures("models.md", r"max rel_err (\de-\d+) on the 32 samples")[0]
    for backend in ("reference", "spice"):
        command = (command_in("models.md", "cnn_digits.onnx", "--backend spice") if backend == "spice"
                   else command_in("models.md", "cnn_digits.onnx", without=("--backend",)))
        _, rep = run(command, sandbox / f"{backend}.json")
        assert rep["backend"] == backend and same_magnitude(full, rep["max_rel_err"]), rep["max_rel_err"]

    four, one = figures("models.md", r"(\de-\d+) for the first 4 samples, (\de-\d+) for the first one")
    graph = load_model(ROOT / "examples" / "cnn_digits.onnx").with_loss("ce")
    batch = load_batch(ROOT / "examples" / "digits_batch.npz", graph)
    for n, printed in ((4, four), (1, one)):
        sub = Batch({k: v[:n] for k, v in batch.x.items()}, batch.y[:n])
        for backend, options in (("reference", {}), ("spice", {"analysis": "op"})):
            for beta in (1.0, 100.0):  # "unchanged by --beta 100"
                err = verify(graph, sub, backend=backend, options=options, beta=beta).comparison.max_rel_err
                assert same_magnitude(printed, err), (n, backend, beta, err)


@pytest.mark.slow
def test_cnn_netlist_counts() -> None:
    pairs, syn, conv, pool, dense, g, top, kb = figures(
        "models.md", r"Its netlist: (\d+) neuron pairs in 3 populations \(256, 64, 10\), ([\d,]+) synapse instances "
                     r"\(([\d,]+) convolution, (\d+) pooling, (\d+) dense; ([\d,]+) G elements\), ([\d,]+) top-level "
                     r"elements, (\d+) kB")
    spec = importlib.util.spec_from_file_location("bench_spice", ROOT / "benchmarks" / "bench_spice.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        bench.cnn_digits()
    text = out.getvalue()
    assert re.search(r"populations: \w+ \(256\), \w+ \(64\), \w+ \(10\)", text), text
    assert int(pairs) == 256 + 64 + 10 and int(syn.replace(",", "")) == sum(
        int(x.replace(",", "")) for x in (conv, pool, dense))
    assert f"synapse instances {syn}; G elements {g}; all top-level elements {top}; {kb} kB" in text, text


# --- backends/lava.md: fixed-point figures and the number of steps at --dt < 1 ------------------

@pytest.mark.slow
def test_lava_fixed_point_figures(sandbox: Path) -> None:
    cosine, rel = figures("backends/lava.md", r"min cosine ([\d.]+), max rel_err ([\d.]+) with 8-bit weights")
    _, rep = run(command_in("backends/lava.md", "--precision fixed", "--batch"), sandbox / "batch.json")
    assert same_digits(cosine, rep["min_cosine"]) and same_digits(rel, rep["max_rel_err"]), rep
    from hwbp.targets.lava.backend import LavaOptions  # the defaults its help states ran

    assert _stated_default(LavaOptions, "dt") == "1" and rep["settle"]["dt_tau"] == 1.0
    assert _stated_default(LavaOptions, "steps").startswith("2L at --dt 1")
    assert rep["settle"]["steps"] == 2 * rep["depth"]
    ce, mse = figures("backends/lava.md", r"min cosine ([\d.]+) with `--loss ce` \(([\d.]+) with the default `--loss mse`\)")
    command = command_in("backends/lava.md", "--precision fixed", "--loss ce", without=("--batch",))
    _, rep = run(command, sandbox / "ce.json")
    assert rep["loss"] == "ce" and same_digits(ce, rep["min_cosine"]), rep["min_cosine"]
    _, rep = run(command.replace(" --loss ce", ""), sandbox / "mse.json")
    assert rep["loss"] == "mse" and same_digits(mse, rep["min_cosine"]), rep["min_cosine"]


@pytest.mark.slow
def test_lava_steps_at_small_dt(sandbox: Path, capsys) -> None:
    """The page, the ``--steps`` help and the run agree on the default number of steps."""
    from hwbp.targets.lava.backend import LavaOptions

    dt, steps = figures("backends/lava.md", r"\(L = 3\) with `--dt ([\d.]+)` takes (\d+) steps")
    assert "ceil(max(12L, 24) / dt)" in page("backends/lava.md")
    with pytest.raises(SystemExit):
        main(["verify", "--help"])
    assert "ceil(max(12L, 24) / dt)" in " ".join(capsys.readouterr().out.split())
    assert int(steps) == math.ceil(max(12 * 3, 24) / float(dt) - 1e-9) == LavaOptions(dt=float(dt)).unit_steps(3)
    _, rep = run(f"hwbp verify examples/mlp_digits.onnx --backend lava --dt {dt} --random-batch 2",
                 sandbox / "dt.json")
    assert rep["depth"] == 3 and rep["settle"]["steps"] == int(steps), rep["settle"]
    assert np.isclose(rep["settle"]["dt_tau"], float(dt))


# --- getting-started.md: what make demo prints ---------------------------------------------------

@pytest.mark.slow
def test_demo_figures(sandbox: Path) -> None:
    printed = figures("getting-started.md", r"max rel_err (\de-\d+) on the circuit as on the simulator")[0]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["demo"]) == 0
    text = out.getvalue()
    backends = re.findall(r"^backend=(\w+)", text, flags=re.M)
    errors = [float(e) for e in re.findall(r"^PASSED: max rel_err ([\d.e+-]+)", text, flags=re.M)]
    assert backends == ["reference", "spice"] and len(errors) == 2, text
    assert all(same_magnitude(printed, e) for e in errors), errors


# --- help strings: the defaults they state are the ones that run --------------------------------

def _option_help(owner: type, name: str) -> str:
    import dataclasses

    (f,) = [f for f in dataclasses.fields(owner) if f.name == name]
    return " ".join(f.metadata["help"].split())


def _stated_default(owner: type, name: str) -> str:
    found = re.findall(r"default:? ([^;)]*)", _option_help(owner, name))
    assert len(found) == 1, (owner, name, found)
    return found[0].strip()


def test_literal_defaults_in_help_are_the_field_defaults() -> None:
    """Every option whose help states a number as its default has that number as its value."""
    import dataclasses

    from hwbp.backend import backend_names, get_backend
    from hwbp.targets import get_target, target_names

    owners = [get_backend(n).Options for n in backend_names()] + [get_target(n).Options for n in target_names()]
    checked = 0
    for owner in owners:
        for f in dataclasses.fields(owner):
            found = re.findall(r"default:? ([-+\d.e]+)\s*[;)]", " ".join(f.metadata.get("help", "").split()))
            if found and f.default is not None and isinstance(f.default, (int, float)):
                assert float(found[0]) == float(f.default), (owner.__name__, f.name, found, f.default)
                checked += 1
    assert checked >= 8


def test_resolved_defaults_in_help_are_what_runs(sandbox: Path) -> None:
    """Options whose default is resolved at run time (None in the dataclass): the value the
    help states is the one the report records, on the digits MLP (L = 3)."""
    from hwbp.backend import get_backend

    ReferenceOptions = get_backend("reference").Options
    _, rep = run("hwbp verify examples/mlp_digits.onnx --mode continuous --random-batch 2", sandbox / "ref.json")
    settle = rep["settle"]
    assert float(_stated_default(ReferenceOptions, "dt")) == settle["dt_tau"]
    assert _stated_default(ReferenceOptions, "solver") == settle["solver"]
    assert _stated_default(ReferenceOptions, "duration").startswith("max(12L, 24")
    assert settle["duration_tau"] == max(12 * rep["depth"], 24)
    _, rep = run("hwbp verify examples/mlp_digits.onnx --random-batch 2", sandbox / "unit.json")
    assert _stated_default(ReferenceOptions, "steps") == "2L" and rep["settle"]["steps"] == 2 * rep["depth"]


@pytest.mark.slow
def test_spice_defaults_in_help_are_what_runs(sandbox: Path) -> None:
    from hwbp.backend import get_backend

    SpiceOptions = get_backend("spice").Options
    _, rep = run("hwbp verify examples/mlp_digits.onnx --backend spice --analysis tran --random-batch 1",
                 sandbox / "tran.json")
    settle = rep["settle"]
    for name, key in (("reltol", "reltol"), ("abstol_a", "abstol"), ("vntol_v", "vntol")):
        assert float(_stated_default(SpiceOptions, name)) == float(settle["solver_options"][key]), name
    assert float(_stated_default(SpiceOptions, "tran_reltol")) == settle["reltol"]
    assert settle["duration_tau"] == max(12 * rep["depth"], 24)
    assert float(_stated_default(SpiceOptions, "r_ohm")) == settle["r_ohm"]
    assert float(_stated_default(SpiceOptions, "c_f")) == settle["c_f"]
