"""What every command shares: the model options, the speed options, the vocabulary of flags, argument types,
``--set`` overrides, options made from a dataclass's fields, help with examples, and the exit-status rule.

Exit status, every command: 0 all good; 1 an error (nothing or not everything was done); 2 a usage error
(argparse); 3 finished, but some videos failed (the results of the others are written, the failures listed).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import re
import sys
import typing
from collections.abc import Callable, Sequence
from typing import Any

from ..duration import Duration, parse_duration
from ..errors import UsageError

__all__ = [
    "EXIT_OK",
    "EXIT_ERROR",
    "EXIT_PARTIAL",
    "parse_overrides",
    "normalize_argv",
    "command",
    "add_model_arguments",
    "model_source",
    "add_speed_arguments",
    "add_labels_argument",
    "add_workers_argument",
    "add_set_argument",
    "add_size_argument",
    "add_batch_arguments",
    "model_overrides",
    "positive_float",
    "non_negative_float",
    "add_dataclass_arguments",
    "positive_int",
    "seconds",
    "duration",
    "device",
    "views",
    "alias",
    "warn",
    "exit_status",
]

EXIT_OK, EXIT_ERROR, EXIT_PARTIAL = 0, 1, 3
_KEY_VALUE = re.compile(r"^[A-Za-z_]\w*=")


def warn(command: str, message: str) -> None:
    print(f"uniformerv2 {command}: warning: {message}", file=sys.stderr)


def exit_status(done: int, failed: int) -> int:
    """0 when nothing failed, 3 when some videos failed and others were done, 1 when nothing was done."""
    if not failed:
        return EXIT_OK
    return EXIT_PARTIAL if done else EXIT_ERROR


# -------------------------------------------------------------------------------------------------- argv


def normalize_argv(argv: Sequence[str]) -> list[str]:
    """``--set a=1 b=2 video.mp4`` -> ``--set=a=1 --set=b=2 video.mp4``: ``--set`` takes only KEY=VALUE words,
    so a file after it is never swallowed (argparse's greedy ``nargs`` would take it)."""
    argv = list(argv)
    out: list[str] = []
    in_set = False
    for i, token in enumerate(argv):
        if token == "--set" and i + 1 < len(argv) and _KEY_VALUE.match(argv[i + 1]):
            in_set = True
            continue
        if in_set and _KEY_VALUE.match(token):
            out.append(f"--set={token}")
            continue
        in_set = False
        out.append(token)
    return out


def parse_overrides(items: Sequence[str] | None) -> dict[str, Any]:
    """``key=value`` pairs (values are Python literals, e.g. ``return_list=[8,9,10,11]``) -> dict."""
    out: dict[str, Any] = {}
    for item in items or ():
        if "=" not in item:
            raise UsageError(f"--set {item!r}: expected KEY=VALUE, e.g. --set drop_path_rate=0.1")
        key, text = item.split("=", 1)
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        out[key.strip()] = value
    return out


# ------------------------------------------------------------------------------------------------ parsers


def command(
    sub: Any, name: str, *, help: str, description: str | None = None, examples: Sequence[str] = ()
) -> argparse.ArgumentParser:
    """A sub-command parser whose ``--help`` ends with examples."""
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples) if examples else None
    return sub.add_parser(
        name,
        help=help,
        description=description or help[:1].upper() + help[1:] + ".",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def alias(p: argparse._ActionsContainer, *flags: str, dest: str, **kw: Any) -> None:
    """Old spellings of an option: still accepted, not shown in ``--help``."""
    p.add_argument(*flags, dest=dest, help=argparse.SUPPRESS, default=argparse.SUPPRESS, **kw)


def add_model_arguments(p: argparse.ArgumentParser, *, positional: bool = False, required: bool = True) -> None:
    """``--model NAME`` (a preset or one of our .safetensors files) and ``--checkpoint FILE``; with
    ``positional``, the model may also be given as the first argument, as earlier releases took it."""
    if positional:
        p.add_argument("model_arg", nargs="?", metavar="MODEL", help="same as --model")
    p.add_argument(
        "--model",
        help="preset name (`uniformerv2 list`), or one of our .safetensors checkpoints; "
        "a preset's published weights are downloaded unless --checkpoint is given",
    )
    p.add_argument(
        "--checkpoint",
        help="weights: a file or URL in any supported format (MMAction2 .pth, "
        "original .pyth, ours .safetensors, which needs no --model)",
    )
    p.set_defaults(model_required=required)


def model_source(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """(model, checkpoint) from ``--model``/the positional model and ``--checkpoint``."""
    positional = getattr(args, "model_arg", None)
    if positional and args.model and positional != args.model:
        raise UsageError(f"two models given: {positional!r} and --model {args.model!r}")
    model = args.model or positional
    if model is None and args.checkpoint is None and getattr(args, "model_required", True):
        raise UsageError(
            "name a model: --model PRESET (see `uniformerv2 list`), or --checkpoint FILE with one of "
            "our .safetensors files"
        )
    return model, args.checkpoint


def add_speed_arguments(p: argparse.ArgumentParser, *, reference: bool = False) -> None:
    """``--dtype`` and ``--compile``. ``reference``: the command's output is a reference (test scores, features),
    so it runs float32, MMAction2's numerics, unless asked; interactive commands default to ``auto``."""
    default = "float32" if reference else "auto"
    p.add_argument(
        "--dtype",
        choices=["auto", "float32", "bfloat16", "float16"],
        default=default,
        help=f"autocast dtype of the forward pass (default {default}): float32 gives MMAction2's numerics exactly"
        + ("; this command's output is a reference, so it runs float32 unless asked" if reference else "")
        + "; auto is bfloat16 where the CPU or GPU has it natively (AVX512_BF16, AMX, CUDA) and float32 "
        "elsewhere, where bfloat16 is emulated and many times slower; bfloat16 moves scores and features "
        "(pooled features by about 1e-2 against MMAction2's, where float32 is within 1e-6)",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="run the network under torch.compile with weight freezing (needs a C++ compiler on CPU; "
        "the first forward compiles, for about 15-30 s)",
    )


def add_labels_argument(p: argparse._ActionsContainer) -> None:
    p.add_argument(
        "--labels",
        help="class names: a text file with one per line, or k400, k600, k700, k710, mitv1 "
        "(default: the names the model carries)",
    )
    alias(p, "--class-names", dest="labels")


def add_workers_argument(p: argparse.ArgumentParser, default: int | None, help: str) -> None:
    p.add_argument("--workers", type=int, default=default, help=help)
    alias(p, "--num-workers", dest="workers", type=int)


def add_set_argument(p: argparse.ArgumentParser, dest: str = "set") -> None:
    p.add_argument(
        "--set",
        dest=dest,
        action="extend",
        nargs="+",
        metavar="KEY=VALUE",
        help="architecture overrides, MMAction2 backbone argument names, e.g. --set drop_path_rate=0.1",
    )


def _number(parse: Callable[[str], Any], what: str, ok: Callable[[Any], bool], rule: str) -> Callable[[str], Any]:
    """An argparse type: ``parse`` the text, then check ``ok``; say ``rule`` when it fails."""

    def convert(text: str) -> Any:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{text!r}: {rule}")
        return value

    return convert


positive_int = _number(int, "an integer", lambda v: v >= 1, "must be at least 1")
positive_float = _number(float, "a number", lambda v: v > 0, "must be positive")
non_negative_float = _number(float, "a number", lambda v: v >= 0, "must be 0 or more")


def add_batch_arguments(p: argparse.ArgumentParser, workers_help: str) -> None:
    """What a command over many videos shares: views per forward, decoding workers, the device (torchrun), the
    speed options, ``--set`` and ``--no-progress``."""
    p.add_argument("--batch-views", type=positive_int, default=24, help="views per forward pass (default 24)")
    add_workers_argument(p, None, workers_help)
    p.add_argument(
        "--device",
        type=device,
        help="cpu, cuda or cuda:N (default: cuda when available); under torchrun each process takes cuda:LOCAL_RANK",
    )
    add_speed_arguments(p, reference=True)  # test scores and features are references: float32 unless asked
    add_set_argument(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def seconds(text: str) -> float:
    """A clock time in seconds for argparse: ``2`` or ``2s`` (frames, ``16f``, are refused: no frame rate here)."""
    try:
        return parse_duration(text, frames=False).value
    except UsageError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def duration(text: str) -> Duration:
    """A length of video for argparse: ``2`` or ``2s`` seconds, ``16f`` frames (see :mod:`uniformerv2.duration`)."""
    try:
        return parse_duration(text)
    except UsageError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def device(text: str) -> str:
    """A device this machine has (:func:`uniformerv2.precision.check_device`), checked before anything is built."""
    from ..precision import check_device

    try:
        check_device(text)
    except UsageError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def views(text: str) -> tuple[int, int]:
    """'4x3' -> (4 clips, 3 crops)."""
    from ..protocol import parse_views

    try:
        return parse_views(text)
    except UsageError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


# -------------------------------------------------------------------------------- options from a dataclass


def _literal(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise argparse.ArgumentTypeError(f"expected a Python literal, got {text!r}") from None
        return kind(value)

    return parse


def _optional(parse: Callable[[str], Any], none_words: Sequence[str]) -> Callable[[str], Any]:
    return lambda text: None if text.lower() in none_words else parse(text)


def _field_type(hint: Any, meta: dict[str, Any]) -> tuple[Callable[[str], Any] | None, bool]:
    """(argument parser of a field, is it a flag); ``int | None`` takes 'none'."""
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if args else hint
    if base is bool:
        return None, True
    parsers: dict[Any, Callable[[str], Any]] = {
        int: int,
        float: float,
        str: str,
        tuple: _literal(tuple),
        dict: _literal(dict),
    }
    parse = parsers.get(base, str)
    if optional:
        parse = _optional(parse, tuple(meta.get("none_words", ("none",))))
    return parse, False


def add_dataclass_arguments(
    p: argparse.ArgumentParser, cls: type, *, skip: Sequence[str] = (), aliases: dict[str, str] | None = None
) -> None:
    """One ``--field-name`` option per field of ``cls`` with a ``help`` in its metadata (booleans get
    ``--x/--no-x``); defaults stay unset so a config file's values survive. ``aliases`` maps old field names to
    new ones; their flags are accepted but not shown."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.metadata.get("cli", True) or "help" not in f.metadata:
            continue
        parse, is_flag = _field_type(hints[f.name], dict(f.metadata))
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else "(computed)"
        help_text = f"{f.metadata['help']} (default: {default})"
        if is_flag:
            p.add_argument(
                flag, dest=f.name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text
            )
        else:
            assert parse is not None  # only flags have no parser
            extra = {"nargs": "?", "const": f.metadata["const"]} if "const" in f.metadata else {}
            p.add_argument(
                flag,
                dest=f.name,
                type=parse,
                default=argparse.SUPPRESS,
                metavar=f.name.upper(),
                help=help_text,
                **extra,
            )
    for old, new in (aliases or {}).items():
        f = next(x for x in dataclasses.fields(cls) if x.name == new)
        parse, is_flag = _field_type(hints[new], dict(f.metadata))
        kw: dict[str, Any] = {"action": argparse.BooleanOptionalAction} if is_flag else {"type": parse}
        alias(p, "--" + old.replace("_", "-"), dest=new, **kw)


# ---------------------------------------------------------------------------------------------- classifier


def build_classifier(args: argparse.Namespace, views: tuple[int, int] | None) -> Any:
    """The :class:`~uniformerv2.inference.VideoClassifier` that ``--model``/``--checkpoint``, ``--labels``,
    ``--frames``, ``--device``, ``--dtype``, ``--compile`` and ``--set`` describe."""
    from ..inference import VideoClassifier

    model, checkpoint = model_source(args)
    name = model if model is not None else checkpoint
    assert name is not None  # model_source raises when neither is given
    return VideoClassifier.from_pretrained(
        name,
        checkpoint=checkpoint if model is not None else None,
        labels=args.labels,
        views=views,
        frames=args.frames,
        device=args.device,
        dtype=args.dtype,
        compile=args.compile,
        **model_overrides(args),
    )


def add_size_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--size",
        type=positive_int,
        help="input size in pixels (default: the model's): a checkpoint "
        "trained at another size gets its position embedding resampled",
    )


def model_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """``--set`` overrides, with ``--size`` as the input resolution."""
    overrides = parse_overrides(getattr(args, "set", None))
    if getattr(args, "size", None):
        overrides["input_resolution"] = args.size
    return overrides
