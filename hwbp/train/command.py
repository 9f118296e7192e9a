"""``hwbp train``: the command-line front end of :func:`hwbp.train.train`.

The model is a file (``MODEL``, ONNX or native) or the depth-scaled residual MLP of
the depth studies (``--depth L --width N --activation relu|tanh``,
:func:`hwbp.models.depth_resmlp`).  Every gradient source -- ``oracle``, ``pc``,
``pc-alm`` and every registered backend -- goes through one interface; the
source's options (``--steps T``: the inference budget, default 2L) are flags.

``--protocol pc-alm`` trains the depth model as the PC-ALM paper's reference code does
(:mod:`hwbp.baselines.protocol`): standardized inputs, batch 64 and one epoch of
``n_train // 64`` steps (the training set is cut to a multiple of 64: 937 steps for
60000), bias-free layers unless ``--bias``, PC / PC-ALM's ``--eta`` computed as ``1/λ_max`` of the cell (printed) unless
given, and PC-ALM's ``--multiplier-timing pre_dual_energy`` unless given.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from hwbp.errors import ConfigError

__all__ = ["add_train_parser", "cmd_train"]


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def add_train_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``train`` subcommand to ``sub``."""
    from hwbp.cliflags import add_option_flags
    from hwbp.train.sources import source_options

    t = sub.add_parser("train", help="train with gradients from the circuit, the dynamics, backprop, PC or PC-ALM")
    from hwbp.cliflags import add_output_arg

    t.add_argument("model", nargs="?", help="model file (.onnx or .hwbp): architecture and initial weights "
                   "(or give --depth for the depth-scaled residual MLP)")
    add_output_arg(t)
    t.add_argument("--depth", type=_count, help="instead of MODEL: residual MLP with L weight layers (>= 2)")
    t.add_argument("--width", type=_count, default=32, help="--depth model: hidden width N (default: 32)")
    t.add_argument("--activation", choices=("relu", "tanh", "identity"), default="relu",
                   help="--depth model: nonlinearity (default: relu; identity: a linear cell)")
    bias = t.add_mutually_exclusive_group()
    bias.add_argument("--no-bias", action="store_true",
                      help="--depth model: bias-free layers (the default with --protocol, as the reference's model)")
    bias.add_argument("--bias", action="store_true", help="--depth model with --protocol: layers with biases")
    t.add_argument("--protocol", choices=("pc-alm",),
                   help="train as the PC-ALM paper's reference code (standardized inputs, batch 64, "
                        "eta = 1/lambda_max, multipliers pre_dual_energy; needs --depth)")
    t.add_argument("--dataset", default="digits", metavar="NAME",
                   help="training data: digits, mnist5k, fashion-mnist (Debian's dataset-fashion-mnist) or "
                        "idx:PATH (MNIST/Fashion-MNIST IDX files; default: digits)")
    t.add_argument("--loss", choices=("mse", "ce"), help="loss (default: ce for MODEL, mse for --depth)")
    t.add_argument("--epochs", type=_count, default=1, help="epochs (default: 1)")
    t.add_argument("--batch-size", type=_count, help="mini-batch size (default: 32; 64 with --protocol)")
    t.add_argument("--optimizer", choices=("adam", "sgd"), default="adam", help="optimizer (default: adam)")
    t.add_argument("--lr", type=float, help="learning rate (default: 0.01 for MODEL, 1e-3*sqrt(N/L) for --depth)")
    t.add_argument("--init", choices=("model", "random"), default="model",
                   help="start from the model's weights or a random init of the same shape (default: model)")
    t.add_argument("--seed", type=_count, default=0, help="seed of the shuffling, of --init random and of --depth")
    t.add_argument("--beta", type=float, default=1.0, help="loss perturbation strength (default: 1)")
    t.add_argument("--track-cosine", action="store_true", help="show and record the gradient cosine to backprop")
    t.add_argument("--checkpoint", metavar="FILE.npz", help="write a checkpoint at every epoch's end")
    t.add_argument("--checkpoint-every", type=_count, default=0, metavar="N",
                   help="also write the checkpoint every N steps")
    t.add_argument("--resume", metavar="FILE.npz", help="continue from a checkpoint (same options)")
    t.add_argument("-o", "--out", required=True, metavar="FILE.onnx",
                   help="trained model (.onnx; a native .hwbp is written next to it)")
    owners = source_options()
    t.add_argument("--backend", default="spice", metavar="NAME",
                   help=f"gradient source: oracle (plain backprop), pc, pc-alm, or a backend: "
                        f"{', '.join(n for n in owners if n not in ('pc', 'pc-alm'))} (default: spice)")
    t.set_defaults(func=cmd_train, option_flags=add_option_flags(t, owners, "gradient-source options "
                                                                   "(each flag names its sources)"))
    return t


def _model(args: argparse.Namespace, n_in: int, n_out: int):
    from hwbp.io import load_model
    from hwbp.models import depth_resmlp, random_init

    if (args.model is None) == (args.depth is None):
        raise ConfigError("give either MODEL or --depth L (the depth-scaled residual MLP), not both or neither")
    if args.depth is not None:
        graph = depth_resmlp(n_in, args.width, n_out, args.depth, activation=args.activation, seed=args.seed,
                             bias=not args.no_bias)
        return graph.with_loss(args.loss or "mse")
    graph = load_model(args.model, output=args.output).with_loss(args.loss or "ce")
    if args.init == "random":
        graph = random_init(graph, seed=args.seed)
    sizes = [n.size for n in graph.inputs]
    if sizes != [n_in] or graph.size(graph.output) != n_out:
        raise ConfigError(f"{args.model}: dataset {args.dataset} needs one input of {n_in} and {n_out} outputs, "
                          f"model has inputs {sizes} and {graph.size(graph.output)} outputs")
    return graph


def cmd_train(args: argparse.Namespace) -> int:
    """``hwbp train``: train on a dataset, write the trained model (ONNX and native)."""
    from hwbp.cliflags import check_out_path
    from hwbp.data import load_dataset
    from hwbp.exporters.onnx import graph_to_onnx_bytes
    from hwbp.io import atomic_write_all, check_writable
    from hwbp.ir.serialize import graph_to_bytes
    from hwbp.train import TrainConfig, get_source, train

    # every check that can fail comes before the (long) training run
    check_out_path(args.out, ".onnx", "-o")
    out = Path(args.out)
    check_writable(out.with_suffix(".hwbp"), "-o (native copy)")
    if args.checkpoint:
        check_out_path(args.checkpoint, ".npz", "--checkpoint")
    lr = args.lr
    if lr is None:
        lr = 1e-3 * float(np.sqrt(args.width / max(args.depth, 1))) if args.depth is not None else 0.01
    if args.protocol and args.depth is None:
        raise ConfigError("--protocol pc-alm trains the depth model: give --depth L")
    if (args.no_bias or args.bias or args.activation != "relu") and args.depth is None:
        raise ConfigError("--no-bias, --bias and --activation apply to the --depth model only")
    if args.bias and not args.protocol:
        raise ConfigError("--bias applies with --protocol (the --depth model has biases unless --no-bias)")
    args.no_bias = args.no_bias or bool(args.protocol and not args.bias)
    batch_size = args.batch_size or (64 if args.protocol else 32)
    config = TrainConfig(args.epochs, batch_size, args.optimizer, lr, args.seed)
    options = args.option_flags.values(args, args.backend, "backend") if args.backend != "oracle" else {}
    if args.backend == "oracle" and any(getattr(args, d, None) is not None for d in args.option_flags.flags):
        raise ConfigError("source options do not apply to --backend oracle (plain backprop)")
    data = load_dataset(args.dataset)
    if args.protocol:
        from dataclasses import replace

        from hwbp.baselines.protocol import standardize

        data = standardize(data)
        keep = len(data.x_train) - len(data.x_train) % batch_size
        data = replace(data, x_train=data.x_train[:keep], y_train=data.y_train[:keep])
    graph = _model(args, data.n_features, data.n_classes)
    if args.protocol and args.backend in ("pc", "pc-alm"):
        from hwbp.baselines.chain import ResChain
        from hwbp.baselines.protocol import protocol_eta

        if "eta" not in options:
            options["eta"] = protocol_eta(ResChain.from_graph(graph, bias=not args.no_bias),
                                          data.x_train[:batch_size], options.get("rho", 1.0))
            print(f"eta = 1/lambda_max = {options['eta']:.6g} (this cell, first batch)")
        if args.backend == "pc-alm":
            options.setdefault("timing", "pre_dual_energy")
    source = get_source(args.backend, beta=args.beta, options=options)
    graph_to_onnx_bytes(graph)  # the trained model must be exportable: same structure
    result = train(graph, data.x_train, data.y_train, source, config, x_test=data.x_test, y_test=data.y_test,
                   desc=f"train[{args.backend}]", progress=sys.stderr.isatty(), track_cosine=args.track_cosine,
                   checkpoint=args.checkpoint, checkpoint_every=args.checkpoint_every, resume=args.resume)
    # both files or neither; a graph that cannot be exported (weights beyond float32) writes nothing
    atomic_write_all({out: graph_to_onnx_bytes(result.graph), out.with_suffix(".hwbp"): graph_to_bytes(result.graph)})
    msg = f"backend={args.backend}: test accuracy {result.test_accuracy[-1]:.4f} after {args.epochs} epoch(s)"
    if result.cosine:
        msg += f", gradient cosine to backprop min {min(result.cosine):.6f} mean {np.mean(result.cosine):.6f}"
    print(msg)
    print(f"wrote {out} and {out.with_suffix('.hwbp')}")
    return 0
