"""The netlist emitter: golden files, determinism, name sanitization, malformed
input, and runner failures (hang, missing ngspice, bad netlist)."""

from __future__ import annotations

import dataclasses
import re
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
from hwbp.targets.spice.backend import run_spice, split_nodes
from hwbp.targets.spice.build import build_circuit
from hwbp.targets.spice.emit import netlist_files, write_netlists
from hwbp.targets.spice.model import SpiceOptions
from hwbp.targets.spice.ngspice import BatchRunner, SharedRunner
from hwbp.targets.spice.raw import read_raw
from hwbp.types import Batch
from hwbp.verify import verify

from conftest import make_batch
from spice_helpers import mlp, require_ngspice

GOLDEN = Path(__file__).resolve().parent / "golden"
sys.path.insert(0, str(GOLDEN))
from regen import CASES  # noqa: E402

#: `.op` tension of a golden netlist vs the oracle (same bound as the issue's).
OP_TOL = 1e-6
#: A SPICE line may start with an element letter, a dot command we emit, '*' or '+'.
_ALLOWED_DOT = {".param", ".include", ".subckt", ".ends", ".options", ".save", ".ic", ".op", ".tran", ".end"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_text_unchanged(case: str) -> None:
    files = netlist_files(lower(CASES[case]()))
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
    raw = tmp_path / "out.raw"
    proc = subprocess.run(["ngspice", "-b", str(main), "-r", str(raw)], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    (plot,) = read_raw(raw)
    circuit = build_circuit(system)
    values = np.array([[plot.vectors[n][0] for n in circuit.saved_nodes()]])
    _, tension = split_nodes(circuit, values)
    # the golden decks clamp inputs and targets at 0 V
    n_out = g.size(g.output)
    batch = Batch({"x": np.zeros((1, g.inputs[0].size))}, np.zeros((1, n_out)))
    exact = exact_gradients(g, batch)
    for name, t in tension.items():
        ref = exact.activations[name]
        assert np.linalg.norm(t - ref) <= OP_TOL * max(np.linalg.norm(ref), 1e-12)


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
        for line in text.splitlines():
            assert line.isascii() and "\r" not in line
            head = line.split()[0] if line.split() else ""
            if head.startswith("."):
                assert head.lower() in _ALLOWED_DOT, line
            else:
                assert head[:1] in "*+" or head[:1].upper() in "RCVIGBEX", line
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
