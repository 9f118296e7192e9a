"""Plug-in isolation and declared support: a plug-in whose options clash with hwbp's
flags or another backend's, or whose import fails, is one warning line naming it and
every other backend works; an exception inside a plug-in is reported as its error; the
same floating-point handling from the API as from the CLI; ``hwbp backends``; and the
shipped conformance suite run for one backend from another directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hwbp import cliflags
from hwbp.backend import REGISTRY, get_backend
from hwbp.cli import main
from hwbp.errors import ConfigError
from hwbp.io import save_model
from hwbp.lower import lower
from hwbp.models import random_mlp
from hwbp.testing import ConformanceCase, build
from hwbp.testing.suite import suite_params

from conftest import TEMPLATE_BACKEND

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = Path(__file__).resolve().parent / "fixtures" / "plugins"


@pytest.fixture
def plugin(monkeypatch):
    """``plugin(name)``: put the fixture plug-in ``name`` on the path (as if installed)."""
    def add(name: str) -> None:
        monkeypatch.syspath_prepend(str(PLUGINS / name))
        REGISTRY.refresh()

    monkeypatch.setattr(cliflags, "_WARNED", set())
    yield add
    monkeypatch.undo()
    REGISTRY.refresh()


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "mlp.hwbp"
    save_model(random_mlp([4, 5, 3], seed=2), path)
    return path


def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("hwbp: warning:")]


def test_an_option_named_like_a_core_flag_leaves_that_plugin_out(plugin, model: Path, capsys) -> None:
    plugin("clash_core")
    assert main(["verify", str(model), "--backend", "reference", "--rtol", "1e-8"]) == 0
    (line,) = _warnings(capsys.readouterr().err)
    assert "backend 'clashcore' is left out" in line and "'rtol' (--rtol) clashes with hwbp's own flag --rtol" in line
    assert main(["verify", str(model), "--backend", "clashcore"]) == 2
    assert "backend 'clashcore' is left out" in capsys.readouterr().err


def test_an_option_of_another_type_than_another_backends_leaves_that_plugin_out(plugin, model: Path,
                                                                                capsys) -> None:
    plugin("clash_type")
    assert main(["verify", str(model), "--backend", "reference", "--steps", "4"]) == 0
    (line,) = _warnings(capsys.readouterr().err)
    assert "backend 'clashtype' is left out" in line and "clashes with the one of 'reference'" in line
    assert "--steps float" in line and "--steps int" in line


def test_a_plugin_whose_import_fails_is_a_warning_and_an_error_when_chosen(plugin, model: Path, capsys) -> None:
    plugin("broken_import")
    assert main(["verify", str(model)]) == 0
    (line,) = _warnings(capsys.readouterr().err)
    assert "backend 'broken'" in line and "RuntimeError: this plug-in is broken at import" in line
    assert main(["verify", str(model), "--backend", "broken"]) == 2
    err = capsys.readouterr().err
    assert "cannot be loaded: RuntimeError: this plug-in is broken at import" in err and "Traceback" not in err
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert "broken: not loaded" in out and "reference" in out


def test_an_exception_inside_a_plugin_is_its_error_not_hwbps(plugin, model: Path, capsys) -> None:
    plugin("raises")
    assert main(["verify", str(model), "--backend", "raises"]) == 2
    err = capsys.readouterr().err
    assert "backend 'raises' (hwbp_raises) failed: ZeroDivisionError: division by zero" in err
    assert "defect of that plug-in, not of hwbp" in err and "internal error" not in err


def test_the_suite_skips_a_broken_plugin_unless_asked_for_it(plugin) -> None:
    plugin("broken_import")
    (param,) = [p for p in suite_params() if p.values[0] == "broken"]
    assert param.id == "broken-not-loaded" and "RuntimeError" in param.marks[0].kwargs["reason"]
    (param,) = suite_params(["broken"], requested=True)
    assert not param.marks


def test_floating_point_errors_raise_from_the_api_as_from_the_cli(tmp_path: Path, capsys) -> None:
    from hwbp.ir import Dense, Graph, Input
    from hwbp.types import Batch

    g = Graph((Input("x", 2), Dense("fc", source="x", weight=np.full((2, 2), 1e10), bias=np.zeros(2))), "fc")
    batch = Batch({"x": np.full((1, 2), 1e300)}, np.zeros((1, 2)))  # W x overflows float64
    be = get_backend("reference")
    before = np.geterr()
    with pytest.raises(FloatingPointError):
        be.run(be.compile(lower(g.with_loss("mse")), be.options({})), batch)
    assert np.geterr() == before  # the handling is the backend call's, not left behind
    save_model(g, tmp_path / "big.hwbp")
    np.savez(tmp_path / "huge.npz", x=batch.x["x"], y=batch.y)
    assert main(["verify", str(tmp_path / "big.hwbp"), "--batch", str(tmp_path / "huge.npz")]) == 2
    assert "numerical overflow" in capsys.readouterr().err


def test_backends_prints_the_support_matrix(capsys) -> None:
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "reference" in line and "template" in line)
    assert header.split() == ["reference", "spice", "lava", "brian2", "scipy", "template"]
    rows: dict = {}
    for line in out.splitlines():  # the first section of a name: activations before source-side ones
        if line.startswith("  "):
            rows.setdefault(line.split()[0], line.split()[1:])
    assert rows["conv"] == ["x", "x", "-", "-", "x", "x"] and rows["clip"] == ["x", "x", "-", "x", "x", "x"]
    assert rows["noise"] == ["x", "-", "-", "-", "-", "-"]


@pytest.mark.parametrize("backend,case,what", [
    ("lava", ConformanceCase("conv1d", "tanh", "mse", 3, 1, "zeros"), "the feature conv"),
    ("lava", ConformanceCase("mlp", "clip", "mse", 2, 1, "zeros"), "the activation clip"),
    ("brian2", ConformanceCase("batchnorm", "tanh", "mse", 3, 1, "zeros"), "the feature batchnorm"),
])
def test_compile_refuses_in_one_line_from_the_declared_support(backend: str, case, what: str) -> None:
    graph, _ = build(case)
    be = get_backend(backend)
    with pytest.raises(ConfigError) as err:
        be.compile(lower(graph), be.options({}))
    msg = str(err.value)
    assert "\n" not in msg and f"backend {backend!r} does not realize {what}" in msg and "it realizes:" in msg


@pytest.mark.slow
def test_the_shipped_suite_runs_for_one_backend_from_another_directory(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TEMPLATE_BACKEND), str(ROOT)]))
    out = subprocess.run([sys.executable, "-m", "hwbp.testing", "template", "-q", "-p", "no:xdist"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert " passed" in out.stdout and "failed" not in out.stdout
    bad = subprocess.run([sys.executable, "-m", "hwbp.testing", "nope", "-q", "-p", "no:xdist"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert bad.returncode == 1 and "unknown backend 'nope'" in bad.stdout


@pytest.mark.parametrize("backend", ["reference", "spice", "lava", "brian2", "template"])
def test_compile_refuses_exactly_what_the_support_leaves_out(backend: str) -> None:
    """For every case of the suite: compile succeeds where the declared support covers
    the case, and refuses (one line) where it does not: the suite's skips and compile's
    refusals are the same."""
    from hwbp.testing import cases
    from hwbp.testing.suite import case_uses

    be = get_backend(backend)
    for profile in be.conformance():
        opts = be.options(dict(profile.options))
        for case in cases():
            graph, _ = build(case)
            missing = be.supports(opts).missing(case_uses(case))
            if missing:
                with pytest.raises(ConfigError, match="does not realize"):
                    be.compile(lower(graph), opts)
            else:
                be.compile(lower(graph), opts)


def test_declared_activations_are_the_realizations_own_tables() -> None:
    from hwbp.ir.activations import ACTIVATIONS
    from hwbp.targets.brian2.backend import Brian2Backend
    from hwbp.targets.brian2.model import ACTIVATION_EQUATIONS
    from hwbp.targets.lava.compat import import_lava
    from hwbp.targets.lava.topology import LAVA_ACTIVATIONS

    import_lava()
    from hwbp.targets.lava.lavaproc.processes import ACTIVATION_CODES

    assert LAVA_ACTIVATIONS == ACTIVATION_CODES
    assert get_backend("lava").support.activations == set(ACTIVATION_CODES)
    assert set(ACTIVATION_EQUATIONS) == set(ACTIVATIONS) == get_backend("brian2").support.activations
    be = Brian2Backend()
    assert "source_activation" in be.supports(be.options({})).features
    assert "source_activation" not in be.supports(be.options({"event_threshold": 1e-3})).features


def test_on_chip_training_is_a_capability_of_lava_alone() -> None:
    from hwbp.backend import Backend, TrainsOnChip
    from hwbp.train.sources import DynamicsSource

    assert not hasattr(Backend, "train_on_chip")
    assert [n for n in ("reference", "spice", "lava", "brian2", "template")
            if isinstance(get_backend(n), TrainsOnChip)] == ["lava"]
    g = random_mlp([3, 4, 2], seed=0).with_loss("mse")
    assert DynamicsSource("reference").train_on_chip(g, np.zeros((2, 3)), np.zeros(2, dtype=int), None) is None
