"""The backend contract: registry and entry points, options as flags, one initial state,
one tau, complete states, and a backend written outside hwbp."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from hwbp.backend import Artefact, Backend, Options, backend_names, get_backend, option, register_backend, REGISTRY
from hwbp.initial import initial_state
from hwbp.cli import main
from hwbp.cliflags import OptionFlags
from hwbp.errors import ConfigError
from hwbp.io import save_model
from hwbp.lower import lower
from hwbp.models import random_mlp, random_resmlp
from hwbp.state import SimulationResult, State
from hwbp.targets.spice.nodes import initial_nodes
from hwbp.targets.spice.build import build_circuit
from hwbp.targets.spice.model import REALIZATIONS, SpiceOptions
from hwbp.verify import verify

from conftest import TEMPLATE_BACKEND, make_batch

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "res.hwbp"
    save_model(random_resmlp(5, 6, 3, blocks=2, seed=1), path)
    return path


def test_builtins_and_the_entry_point_backend_are_registered() -> None:
    names = backend_names()
    assert names[:2] == ["reference", "spice"] and "template" in names
    assert get_backend("template").__class__.__module__ == "hwbp_template"
    with pytest.raises(ConfigError, match=r"unknown backend 'nope'; valid: reference, spice, .*template"):
        get_backend("nope")


def test_a_fresh_process_finds_the_external_backend_and_its_flags() -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TEMPLATE_BACKEND), str(ROOT)]))
    out = subprocess.run([sys.executable, "-m", "hwbp", "verify", "--help"], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "template" in out.stdout and "--sweeps" in out.stdout and "template: Jacobi sweeps" in out.stdout


def test_external_backend_verifies_through_the_command_line(model: Path, capsys) -> None:
    assert main(["verify", str(model), "--backend", "template", "--initial", "random"]) == 0
    assert "backend=template" in capsys.readouterr().out
    assert main(["verify", str(model), "--backend", "template", "--sweeps", "3", "--initial", "random"]) == 1


def test_a_flag_of_another_backend_is_an_error(model: Path, capsys) -> None:
    assert main(["verify", str(model), "--sweeps", "3"]) == 2
    err = capsys.readouterr().err
    assert "--sweeps does not apply to --backend reference (it is an option of template)" in err


def test_unknown_and_invalid_options_name_the_valid_ones() -> None:
    g = random_mlp([3, 4, 2], seed=0).with_loss("mse")
    batch = make_batch(g)
    with pytest.raises(ConfigError, match=r"backend 'reference' has no option 'modes'; valid: mode, steps"):
        verify(g, batch, options={"modes": "steady"})
    with pytest.raises(ConfigError, match=r"--mode \(mode\): invalid value 'fast'; valid: unit-step, continuous, steady"):
        verify(g, batch, options={"mode": "fast"})
    with pytest.raises(ConfigError, match=r"--steps \(steps\) must be an integer"):
        verify(g, batch, options={"steps": "many"})
    with pytest.raises(ConfigError, match=r"--timeout \(timeout_s\) must be a finite number"):
        verify(g, batch, backend="spice", options={"timeout_s": float("inf")})


def test_flags_shared_by_two_backends_must_agree() -> None:
    @dataclass(frozen=True)
    class A(Options):
        dt: float | None = option(None, "a step")

    @dataclass(frozen=True)
    class B(Options):
        dt: int | None = option(None, "another step")

    assert "opt_dt" in OptionFlags({"a": A, "c": A}).flags
    flags = OptionFlags({"a": A, "b": B})  # the second is left out, with the reason; the first works
    assert set(flags.owners) == {"a"} and flags.flags["opt_dt"][1] == ["a"]
    assert "clashes with the one of 'a' (--dt float)" in flags.rejected["b"]
    with pytest.raises(ConfigError, match="backend 'b' is left out: its option 'dt'"):
        flags.values(argparse.Namespace(opt_dt=None), "b", "backend")


def test_every_backend_draws_the_same_initial_state() -> None:
    g = random_resmlp(4, 5, 3, blocks=2, seed=2).with_loss("mse")
    system, batch = lower(g), make_batch(g, size=3)
    st = initial_state(system, batch, "random", seed=7)
    nodes = initial_nodes(system, batch, "random", seed=7)  # per sample: (mean, tension) by population
    for realization in REALIZATIONS:
        circuit = build_circuit(system, SpiceOptions(realization=realization))
        for pop in system.populations:
            assert np.array_equal(np.stack([n[pop.name][0] for n in nodes]), st.mean[pop.name])
            assert np.array_equal(np.stack([n[pop.name][1] for n in nodes]), st.tension[pop.name])
            # the node voltages the netlist starts from (x+ and x-, or mean and tension)
            va, vb = map(np.stack, zip(*(circuit.state_values(*n[pop.name]) for n in nodes)))
            if realization == "pair":
                va, vb = 0.5 * (va + vb), va - vb
            assert np.allclose(va, st.mean[pop.name], rtol=0, atol=1e-15)
            assert np.allclose(vb, st.tension[pop.name], rtol=0, atol=1e-14)
    # the reference simulator starts from the same draw: zero steps return it unchanged
    res = get_backend("reference").simulate(system, batch, {"steps": 0}, initial="random", seed=7)
    for pop in system.populations:
        assert np.array_equal(res.state.mean[pop.name], st.mean[pop.name])


def test_the_report_gives_the_realized_tau(model: Path, tmp_path: Path) -> None:
    g = random_mlp([3, 4, 2], seed=0).with_loss("mse")
    v = verify(g, make_batch(g), backend="spice", options={"r_ohm": 2e3, "c_f": 5e-9})
    assert v.report["tau_s"] == 1e-5 == v.report["settle"]["tau_s"]
    assert v.report["backend_options"]["r_ohm"] == 2e3
    assert main(["verify", str(model), "--backend", "spice", "--report", str(tmp_path / "r.json")]) == 0
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["tau_s"] == 1e-6 and set(rep["readout"].values()) == {"gate"}
    assert main(["verify", str(model), "--tau", "2e-6", "--report", str(tmp_path / "t.json")]) == 0
    assert json.loads((tmp_path / "t.json").read_text())["tau_s"] == 2e-6


class _Incomplete(Backend):
    """A defective backend: returns the state of one population only."""

    name = "incomplete"
    Options = Options

    def compile(self, system, options):
        return Artefact(system, self.options(options), tau_s=1.0)

    def run(self, artefact, batch, *, initial=None, seed=0, trace=False):
        first = artefact.system.populations[0]
        z = np.zeros((batch.size, first.size))
        return SimulationResult(State({first.name: z}, {first.name: z}))


def test_a_state_missing_a_population_is_a_clear_error(model: Path, capsys) -> None:
    register_backend("incomplete", _Incomplete)
    try:
        assert main(["verify", str(model), "--backend", "incomplete"]) == 2
        assert "returned no mean for population 'block1'" in capsys.readouterr().err
    finally:
        REGISTRY.unregister("incomplete")
