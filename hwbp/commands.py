"""The ``hwbp`` commands that run one model through a backend or a target: ``verify``,
``simulate``, ``compile`` and ``backends`` (their arguments: :mod:`hwbp.cli`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from hwbp.cliflags import check_out_path
from hwbp.errors import ConfigError, HwbpError
from hwbp.initial import INITIAL_STATES
from hwbp.ir.graph import Graph
from hwbp.types import Batch

__all__ = ["cmd_verify", "cmd_simulate", "cmd_compile", "cmd_backends"]


# ------------------------------------------------------------------ helpers
def _load(args: argparse.Namespace) -> tuple[Graph, Batch]:
    from hwbp.io import load_batch, load_model, random_batch

    graph = load_model(args.model, output=args.output).with_loss(args.loss)
    if args.batch:
        batch = load_batch(args.batch, graph, loss=args.loss)
    else:
        size = 16 if args.random_batch is None else args.random_batch
        batch = random_batch(graph, size, seed=args.seed, loss=args.loss)
    return graph, batch


def _initial(value: str | None, default: str) -> Any:
    """``--initial``: a name, or a ``state.npz`` loaded as a State."""
    if value is None:
        return default
    if value in INITIAL_STATES:
        return value
    if not value.endswith(".npz"):
        raise ConfigError(f"--initial {value!r}: valid: {', '.join(INITIAL_STATES)} or a state .npz file")
    from hwbp.io import load_state

    return load_state(value)


def _backend_from(args: argparse.Namespace) -> tuple[Any, Any, dict[str, Any]]:
    """The chosen backend, its options from the flags (a flag of another backend is an
    error), and the run arguments (``initial``, ``seed``, ``trace``)."""
    from hwbp.backend import get_backend

    backend = get_backend(args.backend)
    options = backend.options(args.option_flags.values(args, args.backend, "backend"))
    run = {"initial": _initial(args.initial, None), "seed": args.seed, "trace": bool(args.trace)}
    return backend, options, run


# ------------------------------------------------------------------ commands
def cmd_verify(args: argparse.Namespace) -> int:
    """``hwbp verify``: exit 0 when the gradients pass, 1 when not."""
    from hwbp.io import atomic_write_all, file_sha256
    from hwbp.verify.compare import Tolerances
    from hwbp.verify.run import verify
    from hwbp.verify.plot import figure_png, verification_figure
    from hwbp.verify.table import format_table

    check_out_path(args.report, ".json", "--report")
    check_out_path(args.plot, ".png", "--plot")
    backend, options, run = _backend_from(args)
    tol = Tolerances(args.rtol, args.min_cosine)
    graph, batch = _load(args)
    if args.plot:
        run["trace"] = True
    extra = {"model_file": str(args.model), "model_sha256": file_sha256(args.model)}
    hardware = None
    if args.hardware:
        from hwbp.hardware import load_hardware

        hardware = load_hardware(args.hardware)
        extra.update(hardware_file=str(args.hardware))
    v = verify(graph, batch, backend=args.backend, beta=args.beta, tolerances=tol, options=options,
               extra=extra, hardware=hardware, **run)
    print(format_table(v.report))
    if hardware is not None:
        from hwbp.hardware.table import format_instance

        print(format_instance(v.report["hardware"]))
    png = None
    if args.plot:  # render first: write both or neither
        fig = backend.figure(v, batch)
        png = figure_png(verification_figure(v, batch) if fig is None else fig)
    files: dict[str, bytes] = {}
    if args.report:
        files[args.report] = (json.dumps(v.report, indent=1) + "\n").encode()
    if args.plot and png is not None:
        files[args.plot] = png
    atomic_write_all(files)
    for path in files:
        print(f"{'report' if path == args.report else 'figure'}: {path}")
    return 0 if v.passed else 1


def cmd_simulate(args: argparse.Namespace) -> int:
    """``hwbp simulate``: write ``state.npz`` (and ``trace.npz``) into the output directory."""
    from hwbp.backend import check_state
    from hwbp.io import check_writable, save_npz
    from hwbp.lower.lowerer import lower
    from hwbp.verify.readout import read_gradients

    out = Path(args.out)
    for name in ("state.npz", "trace.npz"):
        check_writable(out / name, "-o")
    backend, options, run = _backend_from(args)
    graph, batch = _load(args)
    system = lower(graph, beta=args.beta)
    if args.hardware:  # the device instance verify --hardware runs: realized with --seed
        from hwbp.backend import check_hardware
        from hwbp.hardware import load_hardware, realize

        hardware = load_hardware(args.hardware)
        check_hardware(backend, hardware)
        system = realize(system, hardware, args.seed)
    artefact = backend.compile(system, options)
    system = artefact.system
    result = backend.run(artefact, batch, **run)
    check_state(system, result.state, args.backend)
    grads = read_gradients(system, result.state, batch)
    arrays: dict[str, np.ndarray] = {}
    for name in result.state.mean:
        arrays[f"activation/{name}"] = result.state.mean[name]
        arrays[f"tension/{name}"] = result.state.tension[name]
    arrays.update({f"gate/{p}/{k}": v for (p, k), v in result.state.gates.items()})
    arrays.update({f"grad/{k}": v for k, v in grads.parameters.items()})
    save_npz(out / "state.npz", arrays)
    written = [out / "state.npz"]
    if result.trace is not None:
        tr = result.trace
        tarrays = {"t": tr.t, **{f"activation/{k}": v for k, v in tr.mean.items()},
                   **{f"tension/{k}": v for k, v in tr.tension.items()}}
        save_npz(out / "trace.npz", tarrays)
        written.append(out / "trace.npz")
    print(f"{system.name}: L={system.depth}, {result.settle}, loss={grads.loss:.6g}")
    for p in written:
        print(f"wrote {p}")
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    """``hwbp compile``: emit the artefacts of a target."""
    from hwbp.io import load_batch, load_model
    from hwbp.lower.lowerer import lower
    from hwbp.targets import get_target

    target = get_target(args.target)
    options = target.options(args.option_flags.values(args, args.target, "target"))
    graph = load_model(args.model, output=args.output).with_loss(args.loss)
    system = lower(graph, beta=args.beta)
    info: dict[str, Any] = {"model_file": args.model, "graph": graph}
    if args.batch:
        info.update(batch=load_batch(args.batch, graph), batch_file=args.batch)
    for path in target.emit(system, args.out, options, info):
        print(f"wrote {path}")
    return 0


def cmd_backends(args: argparse.Namespace) -> int:
    """``hwbp backends``: every registered backend with its description, and the matrix
    of what each realizes (:func:`hwbp.support.support_table`)."""
    from hwbp.backend import backend_names, get_backend
    from hwbp.support import support_table

    rows: list[tuple[str, Any]] = []
    for name in backend_names():
        try:
            be = get_backend(name)
        except HwbpError as exc:
            rows.append((name, str(exc)))
            continue
        rows.append((name, be.support))
        print(f"{name}: {be.description} ({type(be).__module__})")
    print()
    print(support_table(rows))
    return 0
