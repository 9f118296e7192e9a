"""The ``hwbp`` command line: verify, simulate, compile, train, sweep, backends, demo.

Exit codes: 0 success (verification passed), 1 verification failed, 2 bad input or a
failing external component (a tool, or a plug-in: its error names it), 3 internal error
(a defect of hwbp: please report it with the traceback).
Every error is one line on stderr saying what was wrong and where.  A plug-in that
cannot be loaded, or whose options clash, is one warning line, and every other
backend keeps working.
"""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from pathlib import Path
from typing import Callable, NoReturn, Sequence

import numpy as np

from hwbp import __version__
from hwbp.errors import ConfigError, HwbpError
from hwbp.initial import INITIAL_STATES
from hwbp.cliflags import add_output_arg, plugin_of, show_note
from hwbp.commands import cmd_backends, cmd_compile, cmd_simulate, cmd_verify
from hwbp.ir.losses import LOSSES

__all__ = ["main", "build_parser"]

EXAMPLE_MODEL = Path(__file__).resolve().parent.parent / "examples" / "mlp_digits.onnx"


# ------------------------------------------------------------------ arguments
def _count(text: str) -> int:
    """argparse type: a non-negative integer."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model file (.onnx or .hwbp)")
    p.add_argument("--loss", choices=sorted(LOSSES), default="mse", help="loss port (default: mse)")
    p.add_argument("--beta", type=float, default=1.0, help="loss perturbation strength (default: 1)")
    add_output_arg(p)


def _batch_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--batch", metavar="FILE.npz", help="inputs and targets: arrays 'x' and 'y'")
    g.add_argument("--random-batch", type=_count, metavar="N", help="N random samples (default: 16)")
    p.add_argument("--seed", type=_count, default=0,
                   help="seed of the random batch, the random initial state and the --hardware instance")


def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--initial", metavar="STATE",
                   help=f"initial state: {', '.join(INITIAL_STATES)}, or a state.npz written by "
                        "'hwbp simulate' (default: the backend's; reference: zeros, spice .tran: random)")
    p.add_argument("--trace", action="store_true", help="record the trajectory where the backend can")


def _backend_options() -> dict[str, type]:
    """Options class of every registered backend that loads; one that does not is one
    warning line here, and its error when chosen."""
    from hwbp.backend import backend_names, get_backend
    from hwbp.cliflags import warn_rejected

    out, broken = {}, {}
    for name in backend_names():
        try:
            out[name] = get_backend(name).Options
        except HwbpError as exc:
            broken[name] = str(exc)
    warn_rejected(broken, "backend")
    return out


def _backend_args(p: argparse.ArgumentParser, owners: dict[str, type], *, default: str, extra: str = "") -> None:
    from hwbp.cliflags import add_option_flags

    p.add_argument("--backend", default=default, metavar="NAME",
                   help=f"{extra}backend: {', '.join(owners)} (default: {default})")
    p.set_defaults(option_flags=add_option_flags(p, owners, "backend options (each flag names its backends)"))


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (not the whole usage)."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        sub = self.prog.removeprefix("hwbp").strip()
        message = re.sub(r"invalid \w+ value", "invalid value", message)  # not the converter's name
        self.exit(2, f"hwbp: error: {sub + ': ' if sub else ''}{message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``hwbp`` command."""
    from hwbp.cliflags import add_option_flags
    from hwbp.targets import get_target, target_names

    parser = _Parser(prog="hwbp", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"hwbp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    owners = _backend_options()

    v = sub.add_parser("verify", help="check the physical gradients against exact backprop")
    _model_args(v)
    _batch_args(v)
    _run_args(v)
    v.add_argument("--rtol", type=float, default=1e-6, help="max rel_err per tensor to pass (default: 1e-6)")
    v.add_argument("--min-cosine", type=float, default=1 - 1e-6, help="min cosine per tensor (default: 1-1e-6)")
    v.add_argument("--report", metavar="FILE.json", help="write the hwbp.verify/1 JSON report")
    v.add_argument("--plot", metavar="FILE.png", help="write a figure: gradients vs exact, error vs time")
    v.add_argument("--hardware", metavar="FILE.toml",
                   help="run one device instance (drawn from --seed) of this hardware model")
    _backend_args(v, owners, default="reference")
    v.set_defaults(func=cmd_verify)

    s = sub.add_parser("simulate", help="simulate and save the state (and trace)")
    _model_args(s)
    _batch_args(s)
    _run_args(s)
    s.add_argument("-o", "--out", required=True, metavar="DIR", help="output directory")
    s.add_argument("--hardware", metavar="FILE.toml",
                   help="simulate one device instance (drawn from --seed) of this hardware model, as verify does")
    _backend_args(s, owners, default="reference")
    s.set_defaults(func=cmd_simulate)

    c = sub.add_parser("compile", help="emit the lowered system for a target")
    _model_args(c)
    targets = {}
    for name in target_names():
        try:
            targets[name] = get_target(name).Options
        except HwbpError:
            continue
    c.add_argument("--target", default="equations", metavar="NAME",
                   help=f"target: {', '.join(targets)} (default: equations)")
    c.add_argument("-o", "--out", required=True, metavar="DIR", help="output directory")
    c.add_argument("--batch", metavar="FILE.npz", help="a batch whose sample the artefacts apply (targets that "
                                                      "take one; spice: --sample K)")
    c.set_defaults(func=cmd_compile, option_flags=add_option_flags(c, targets, "target options"))

    from hwbp.train.command import add_train_parser

    add_train_parser(sub)

    from hwbp.sweep.cli import add_sweep_parser

    add_sweep_parser(sub)
    from hwbp.pdk.cli import add_characterize_parser

    add_characterize_parser(sub)

    b = sub.add_parser("backends", help="list the backends and what each realizes (activations, term features, "
                                        "losses, hardware non-idealities)")
    b.set_defaults(func=cmd_backends)

    d = sub.add_parser("demo", help="verify the shipped digits MLP and print the table")
    d.add_argument("--out", default="out", metavar="DIR", help="where to write the reports (default: out)")
    d.add_argument("--netlists", default="netlists/mlp_digits", metavar="DIR",
                   help="where to write the example's netlists (default: netlists/mlp_digits)")
    d.set_defaults(func=cmd_demo)
    return parser


# ------------------------------------------------------------------ commands
def cmd_train(args: argparse.Namespace) -> int:
    """``hwbp train`` (see :mod:`hwbp.train.command`)."""
    from hwbp.train.command import cmd_train as run

    return run(args)


def cmd_demo(args: argparse.Namespace) -> int:
    """``hwbp demo``: the main job on the shipped example — the reference simulator,
    then (when ngspice is installed) the circuit: netlists into ``netlists/`` and an
    ngspice ``.op`` co-simulation, each with its verification table."""
    import shutil

    if not EXAMPLE_MODEL.is_file():
        raise ConfigError(f"example model missing: {EXAMPLE_MODEL} (run examples/make_mlp_digits.py)")
    batch = str(EXAMPLE_MODEL.with_name("digits_batch.npz"))
    model = str(EXAMPLE_MODEL)
    out = Path(args.out)
    print(f"== hwbp demo: {EXAMPLE_MODEL.name} on the reference simulator, unit-step Euler (2L steps) ==")
    code = main(["verify", model, "--loss", "ce", "--batch", batch, "--initial", "random",
                 "--report", str(out / "report.json"), "--plot", str(out / "report.png")])
    if shutil.which("ngspice") is None:
        print("\nnote: ngspice is not installed, so the circuit co-simulation was skipped "
              "(install it with: apt-get install ngspice libngspice0)")
        return code
    netlists = Path(args.netlists)
    print(f"\n== the same network as an analog RC circuit: netlists in {netlists}, ngspice .op ==")
    code = max(code, main(["compile", model, "--loss", "ce", "--target", "spice", "-o", str(netlists)]))
    return max(code, main(["verify", model, "--loss", "ce", "--batch", batch, "--backend", "spice",
                           "--analysis", "op", "--report", str(out / "spice_op.json")]))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``hwbp`` command; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except HwbpError as exc:
        print(f"hwbp: error: {exc}", file=sys.stderr)
        return 2
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        # float64 overflow (huge inputs, targets or weights) is bad input, not a NaN result
        with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise"):
            warnings.showwarning = show_note
            return func(args)
    except MemoryError:
        print("hwbp: error: out of memory: the model or the batch is too large for this machine; use a smaller "
              "batch (--random-batch N, fewer samples in --batch)", file=sys.stderr)
        return 2
    except FloatingPointError as exc:
        print(f"hwbp: error: numerical {str(exc).replace('encountered in', 'in')}: the model's weights, the batch "
              f"or the options give values beyond float64's range; scale them down", file=sys.stderr)
        return 2
    except HwbpError as exc:
        print(f"hwbp: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"hwbp: error: {exc.strerror or exc} ({exc.filename or 'file system'})", file=sys.stderr)
        return 2
    except Exception as exc:  # a defect of hwbp or of a plug-in, not of the input: keep 1 for "failed"
        import traceback

        plugin = plugin_of(exc)
        if plugin is not None:
            print(f"hwbp: error: {plugin[0]} {plugin[1]!r} ({plugin[2]}) failed: {type(exc).__name__}: "
                  f"{exc}".splitlines()[0] + " (a defect of that plug-in, not of hwbp: report it to its authors; "
                  "--backend reference and the other backends work)", file=sys.stderr)
            return 2
        traceback.print_exc()
        print(f"hwbp: internal error: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
