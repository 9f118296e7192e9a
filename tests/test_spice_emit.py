"""The netlist emitter: golden files, determinism, name sanitization, malformed
input, and runner failures (hang, missing ngspice, bad netlist)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hwbp.errors import BackendError, ConfigError, ModelError, ShapeError
from hwbp.ir.graph import Graph
from hwbp.ir.nodes import Activation, Dense, Input
from hwbp.lower import lower
from hwbp.oracle import exact_gradients
from hwbp.targets.spice.backend import run_spice
from hwbp.targets.spice.build import build_circuit
from hwbp.targets.spice.emit import netlist_files, write_netlists
from hwbp.targets.spice.model import SpiceOptions
from hwbp.targets.spice.ngspice import BatchRunner
from hwbp.targets.spice.shared import SharedRunner
from hwbp.types import Batch
from hwbp.verify import compare, read_gradients, verify

from conftest import make_batch
from spice_helpers import mlp, require_ngspice

GOLDEN = Path(__file__).resolve().parent / "golden"
sys.path.insert(0, str(GOLDEN))
from regen import CASES, OPTIONS  # noqa: E402

#: `.op` tension of a golden netlist vs the oracle (same bound as the issue's).
OP_TOL = 1e-6
#: A SPICE line may start with an element letter, a dot command we emit, '*' or '+'.
_ALLOWED_DOT = {".param", ".include", ".subckt", ".ends", ".options", ".save", ".ic", ".op", ".tran", ".end"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_text_unchanged(case: str) -> None:
    files = netlist_files(lower(CASES[case]()), SpiceOptions(**OPTIONS.get(case, {})))
    on_disk = {str(p.relative_to(GOLDEN / case)): p.read_text() for p in (GOLDEN / case).rglob("*.cir")}
    assert set(files) == set(on_disk), "file set changed; see tests/golden/regen.py"
    for rel, text in files.items():
        assert text == on_disk[rel], f"{case}/{rel} changed; if intended, run tests/golden/regen.py"


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_netlist_simulates_to_exact_gradients(case: str, tmp_path: Path) -> None:
    require_ngspice()
    g = CASES[case]()
    system = lower(g)
    main = next((GOLDEN / case).glob("*.cir"))
    # the netlist runs on its own: its .control block solves .op and prints the tensions
    proc = subprocess.run(["ngspice", "-b", main.name], capture_output=True, timeout=60, cwd=main.parent)
    assert proc.returncode == 0, proc.stderr.decode()
    tension = printed_tensions(build_circuit(system, SpiceOptions(**OPTIONS.get(case, {}))), proc.stdout.decode())
    # the golden decks clamp inputs and targets at 0 V
    n_out = g.size(g.output)
    batch = Batch({"x": np.zeros((1, g.inputs[0].size))}, np.zeros((1, n_out)))
    exact = exact_gradients(g, batch)
    for name, t in tension.items():
        ref = exact.activations[name]
        assert np.linalg.norm(t - ref) <= OP_TOL * max(np.linalg.norm(ref), 1e-12)


def printed_tensions(circuit, stdout: str) -> dict[str, np.ndarray]:
    """Population -> tensions ``(1, n)`` that ``ngspice -b`` printed for an emitted netlist."""
    import re

    printed = dict(re.findall(r"^v\((\w+)\)-v\(\w+\) = (\S+)$", stdout, flags=re.M))
    return {pop: np.array([[float(printed[p]) for p in xp]]) for pop, (xp, _) in circuit.nodes.items()}


def test_emission_is_deterministic(tmp_path: Path) -> None:
    system = lower(mlp(3, 5, "relu", seed=4).with_loss("ce"))
    a = write_netlists(system, tmp_path / "a", model_file="m.onnx")
    b = write_netlists(system, tmp_path / "b", model_file="m.onnx")
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]


def _nasty_graph() -> Graph:
    rng = np.random.default_rng(0)
    names = ["fc 1\n.control\nshell rm -rf /\n.endc", "*act\r\n.end", "fc.2 ünïcødé ✓"]
    nodes = [Input("in put\n.include /etc/passwd", size=3),
             Dense(names[0], source="in put\n.include /etc/passwd", weight=rng.standard_normal((4, 3)),
                   bias=rng.standard_normal(4)),
             Activation(names[1], source=names[0], function="tanh"),
             Dense(names[2], source=names[1], weight=rng.standard_normal((2, 4)), bias=rng.standard_normal(2))]
    return Graph(tuple(nodes), names[2], "model\n.control\nquit").with_loss("mse")


def test_hostile_names_cannot_inject_lines() -> None:
    require_ngspice()
    g = _nasty_graph()
    files = netlist_files(lower(g), info={"model_file": "evil\n.control\n.endc.onnx"})
    for text in files.values():
        in_control = False
        for line in text.splitlines():
            assert line.isascii() and "\r" not in line
            head = line.split()[0] if line.split() else ""
            if head.lower() in (".control", ".endc"):
                assert in_control == (head.lower() == ".endc"), line  # one block, opened then closed
                in_control = not in_control
            elif in_control:  # the emitter's own commands only
                assert head in ("*", "set", "op", "echo", "print", "quit"), line
                assert head != "set" or line == "set numdgt=15", line
            elif head.startswith("."):
                assert head.lower() in _ALLOWED_DOT, line
            else:
                assert head[:1] in "*+" or head[:1].upper() in "RCVIGBEX", line
        assert not in_control
    batch = make_batch(g, size=2, seed=3)
    v = verify(g, batch, backend="spice", options={"analysis": "op"})
    assert v.comparison.max_rel_err <= OP_TOL


def test_nan_weights_and_empty_layers_write_nothing(tmp_path: Path) -> None:
    system = lower(mlp(2, 4, "tanh", seed=0).with_loss("mse"))
    bad = system.with_parameters({"fc1.weight": np.full((4, 5), np.nan)})
    with pytest.raises(ModelError, match="fc1.weight.*non-finite"):
        write_netlists(bad, tmp_path / "nan")
    empty = dataclasses.replace(system, populations=(dataclasses.replace(system.populations[0], size=0),
                                                     *system.populations[1:]))
    with pytest.raises(ModelError, match="width 0"):
        write_netlists(empty, tmp_path / "empty")
    assert not (tmp_path / "nan").exists() and not (tmp_path / "empty").exists()
    with pytest.raises(ShapeError, match="0 outputs"):
        Graph((Input("x", size=2), Dense("d", source="x", weight=np.zeros((0, 2)), bias=np.zeros(0))), "d")


def test_bad_cell_files_are_rejected(tmp_path: Path) -> None:
    cell = tmp_path / "mine.cir"
    cell.write_text(".subckt hwbp_synapse a b\n.ends\n")
    with pytest.raises(ConfigError, match="2 ports"):
        build_circuit(lower(mlp(2, 3, "tanh", seed=0).with_loss("mse")), SpiceOptions(cells={"synapse": str(cell)}))
    with pytest.raises(ConfigError, match="unknown cell role"):
        SpiceOptions(cells={"nope": str(cell)})


def test_hang_times_out_and_missing_ngspice_is_named() -> None:
    require_ngspice()
    system = lower(mlp(2, 8, "tanh", seed=0).with_loss("mse"))
    batch = make_batch(mlp(2, 8, "tanh", seed=0).with_loss("mse"), size=1)
    # ~1e9 time steps: a run that would take hours stands in for a hung ngspice
    with pytest.raises(BackendError, match=r"\.tran .*timed out after 1 s"):
        run_spice(system, batch, analysis="tran", duration=1e9, step=1.0, timeout_s=1)
    with pytest.raises(BackendError, match="not found.*apt-get install"):
        BatchRunner(executable="ngspice-not-installed").op(build_circuit(system), [{}], ["x"])


def test_bad_netlist_raises_and_shared_library_stays_usable() -> None:
    require_ngspice()
    runner = SharedRunner()
    with pytest.raises(BackendError, match="ngspice .op"):
        runner.load("* bad\nR1 a 0 1k\nXq a b nosuchcell\n.end\n", ".op", "bad deck")
    with pytest.raises(BackendError, match="singular matrix|no DC solution"):
        runner.load("* singular\nV1 a 0 1\nV2 a 0 2\n.end\n", ".op", "loop deck")
        runner.command("op", ".op", "loop deck")
    runner.reset()
    g = mlp(2, 3, "tanh", seed=2).with_loss("mse")
    v = verify(g, make_batch(g, size=2, seed=2), backend="spice", options={"analysis": "op", "runner": "shared"})
    assert v.comparison.max_rel_err <= OP_TOL


@pytest.mark.parametrize("act", ["relu", "leaky_relu"])
def test_relu_kink_at_zero_follows_hwbp_convention(act: str) -> None:
    """A pre-activation of exactly 0 V (zero input, zero biases) must use
    relu'(0) = 0 and leaky_relu'(0) = alpha, not ngspice's u(0) = 0.5."""
    require_ngspice()
    rng = np.random.default_rng(7)
    g = Graph((Input("x", size=3),
               Dense("h1", source="x", weight=rng.standard_normal((4, 3)), bias=np.zeros(4)),
               Activation("a1", source="h1", function="tanh"),
               Dense("h2", source="a1", weight=rng.standard_normal((4, 4)), bias=np.zeros(4)),
               Activation("a2", source="h2", function=act, alpha=0.1),
               Dense("o", source="a2", weight=rng.standard_normal((2, 4)), bias=rng.standard_normal(2))),
              "o", "kink").with_loss("mse")
    batch = Batch({"x": np.vstack([np.zeros(3), rng.standard_normal(3)])}, rng.standard_normal((2, 2)))
    system = lower(g)
    result = run_spice(system, batch, analysis="op")
    assert np.all(result.state.mean["a1"][0] == 0.0)
    v = verify(g, batch, backend="spice", options={"analysis": "op"})
    assert v.comparison.max_rel_err <= OP_TOL


def test_blocked_destination_writes_nothing(tmp_path: Path) -> None:
    system = lower(mlp(2, 3, "tanh", seed=0).with_loss("mse"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "cells").write_text("not a directory\n")
    with pytest.raises(ConfigError, match="cells is a file"):
        write_netlists(system, out)
    assert sorted(p.name for p in out.iterdir()) == ["cells"]
    (out / "cells").unlink()
    (out / "mlp.cir").mkdir()
    with pytest.raises(ConfigError, match="mlp.cir: is a directory"):
        write_netlists(system, out)
    assert sorted(p.name for p in out.rglob("*")) == ["mlp.cir"]


def test_ce_softmax_denominator_is_one_shared_node() -> None:
    """Above CE_DENSE_MAX outputs the CE port's netlist grows linearly in the width."""
    from hwbp.targets.spice.build import CE_DENSE_MAX

    sizes = {}
    assert CE_DENSE_MAX < 64
    for n_out in (64, 256):
        files = netlist_files(lower(mlp(1, 4, "tanh", seed=0, n_out=n_out).with_loss("ce")))
        loss = [ln for ln in files["mlp.cir"].splitlines() if ln.startswith(("Brs", "Bp_"))]
        assert len(loss) == n_out + 1
        assert all(ln.count("exp(") == 1 for ln in loss if ln.startswith("Bp_"))
        sizes[n_out] = sum(map(len, loss))
    assert sizes[256] < 5 * sizes[64]


@pytest.mark.parametrize("n_out", [10, 256])
def test_ce_gradients_match_oracle_wide_output(n_out: int) -> None:
    require_ngspice()
    g = mlp(1, 4, "tanh", seed=1, n_in=8, n_out=n_out).with_loss("ce")
    batch = make_batch(g, size=2, seed=4, loss="ce")
    v = verify(g, batch, backend="spice", options={"analysis": "op"})
    assert v.comparison.max_rel_err <= OP_TOL


_TANH = "Bf 0 fd I=tanh(V(a))/{hwbp_r}\nBg gate 0 V=(1-tanh(V(a))**2)*V(tn)\n"


@pytest.mark.parametrize(("text", "match"), [
    (".inc /etc/passwd\n.subckt hwbp_act_tanh a tn fd gate\n" + _TANH + ".ends\n", r"\.inc is not allowed"),
    (".subckt hwbp_act_tanh a tn fd gate\n.INCLUDE x.cir\n" + _TANH + ".ends\n", r"\.INCLUDE is not allowed"),
    (".lib x.lib tt\n.subckt hwbp_act_tanh a tn fd gate\n" + _TANH + ".ends\n", r"\.lib is not allowed"),
    (".subckt hwbp_act_tanh a tn fd gate\n" + _TANH + ".ends\n.control\nshell true\n.endc\n",
     r"\.control is not allowed"),
    (".param hwbp_r=1\n.subckt hwbp_act_tanh a tn fd gate\n" + _TANH + ".ends\n", r"line 1: '\.param' outside"),
    (".subckt hwbp_act_tanh a tn fd gate\n" + _TANH + ".ends\nR1 a 0 1\n", r"line 5: 'R1' outside"),
    (".subckt hwbp_act_tanh a tn fd gate\n" + _TANH, r"not closed"),
    (".subckt hwbp_act_tanh a tn\n+ fd\n" + _TANH + ".ends\n", r"3 ports"),
])
def test_cell_loader_rejects(tmp_path: Path, text: str, match: str) -> None:
    cell = tmp_path / "act.cir"
    cell.write_text(text)
    with pytest.raises(ConfigError, match=match):
        build_circuit(lower(mlp(2, 3, "tanh", seed=0).with_loss("mse")), SpiceOptions(cells={"act_tanh": str(cell)}))


def test_cell_loader_accepts_helpers_and_continued_headers(tmp_path: Path) -> None:
    require_ngspice()
    cell = tmp_path / "act.cir"
    cell.write_text("* helper first, header continued\n"
                    ".subckt my_tanh a y\nBy y 0 V=tanh(V(a))\n.ends my_tanh\n"
                    ".subckt hwbp_act_tanh a tn\n+ fd gate\n"
                    "Xh a y my_tanh\nRy y 0 1e9\n"
                    "Bf 0 fd I=V(y)/{hwbp_r}\nBg gate 0 V=(1-V(y)**2)*V(tn)\n.ends hwbp_act_tanh\n")
    g = mlp(2, 3, "tanh", seed=0).with_loss("mse")
    system = lower(g)
    circuit = build_circuit(system, SpiceOptions(cells={"act_tanh": str(cell)}))
    assert any(c.name == "hwbp_act_tanh" and c.ports == 4 for c in circuit.cells)
    batch = make_batch(g, size=2, seed=1)
    result = run_spice(system, batch, analysis="op", cell_files={"act_tanh": str(cell)})
    err = compare(read_gradients(system, result.state, batch), exact_gradients(g, batch)).max_rel_err
    assert err <= OP_TOL
