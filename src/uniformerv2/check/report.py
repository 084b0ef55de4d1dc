"""The report of a check: the terminal summary, ``check.json``, ``check.md`` with charts, and cleaned lists."""

from __future__ import annotations

import collections
import json
import os
from pathlib import Path
from typing import Union

import numpy as np

from .._version import __version__
from ..atomic import atomic_write_text
from ..errors import UsageError
from ..plots import write_dataset_charts
from .records import DUPLICATE_KINDS, PROBLEM_KINDS, WARNING_KINDS, CheckReport

__all__ = ["format_report", "write_report", "write_clean_lists"]

PathLike = Union[str, "os.PathLike[str]"]


def format_report(report: CheckReport, max_lines: int = 60) -> str:
    """The terminal report: what was checked, every problem (up to ``max_lines``), the warnings by kind."""
    lines = []
    per_split = ", ".join(f"{s.name} {len(s.samples)}" for s in report.splits)
    usable = sum(v.ok for v in report.videos.values())
    lines.append(
        f"checked {len(report.videos)} files ({per_split} entries) in {report.seconds:.1f} s with "
        f"{report.workers} worker{'s' if report.workers != 1 else ''}; {usable} usable"
    )
    lines.append(f"decoded at the frames of the test protocol: {report.protocol.describe()}")
    if report.num_classes is not None:
        lines.append(f"classes: {report.num_classes} ({report.num_classes_source})")
    for name, counts in report.class_counts.items():
        nonzero = [c for c in counts if c]
        if nonzero:
            lines.append(
                f"  {name}: {sum(counts)} usable labelled videos, {len(nonzero)} classes with videos, "
                f"{min(nonzero)}-{max(nonzero)} per class (median {int(np.median(nonzero))})"
            )
    if report.problems:
        lines.append("")
        summary = ", ".join(f"{n} {k}" for k, n in report.counts(report.problems).items())
        lines.append(f"{len(report.problems)} problem{'s' if len(report.problems) != 1 else ''}: {summary}")
        width = max(len(f.kind) for f in report.problems)
        for f in report.problems[:max_lines]:
            lines.append(f"  {f.kind.ljust(width)}  {f.where()}: {f.detail}")
        if len(report.problems) > max_lines:
            lines.append(f"  ... and {len(report.problems) - max_lines} more (all in check.json and check.md)")
    if report.warnings:
        lines.append("")
        summary = ", ".join(f"{n} {k}" for k, n in report.counts(report.warnings).items())
        lines.append(f"{len(report.warnings)} warning{'s' if len(report.warnings) != 1 else ''}: {summary}")
        shown: collections.Counter = collections.Counter()
        for f in report.warnings:
            shown[f.kind] += 1
            if shown[f.kind] <= 3:
                lines.append(f"  {f.kind}  {f.where()}: {f.detail}")
            elif shown[f.kind] == 4:
                lines.append(f"  {f.kind}  ... (all in check.json)")
    lines.append("")
    n = len(report.problems)
    lines.append("no problems found" if report.ok else f"{n} problem{'s' if n != 1 else ''} found")
    return "\n".join(lines)


def _values(report: CheckReport, attr: str) -> list[float]:
    return [float(getattr(v, attr)) for v in report.videos.values() if v.ok and getattr(v, attr) is not None]


def _write_charts(report: CheckReport, out_dir: Path) -> dict[str, Path]:
    """Duration, fps, resolution and class-count charts (only those with data)."""
    return write_dataset_charts(
        out_dir,
        durations=_values(report, "duration"),
        fps=_values(report, "fps"),
        resolutions=collections.Counter(f"{v.width}x{v.height}" for v in report.videos.values() if v.ok),
        class_counts=report.class_counts,
        class_names=report.class_names,
    )


def _md_cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _markdown(report: CheckReport, images: dict[str, Path]) -> str:
    r = report
    out = ["# Dataset check", ""]
    out.append(
        f"**{'No problems found' if r.ok else f'{len(r.problems)} problems found'}** "
        f"(uniformerv2 {__version__}, exit status {r.exit_status})."
    )
    out += ["", "| list | source | entries | entries with problems |", "|---|---|---|---|"]
    for s in r.splits:
        out.append(f"| {s.name} | `{_md_cell(s.source)}` | {len(s.samples)} | {len(r.flagged_entries(s))} |")
    out += [
        "",
        f"Files: {len(r.videos)}, usable: {sum(v.ok for v in r.videos.values())}. Decoded at the frames "
        f"of the test protocol ({r.protocol.describe()}) in {r.seconds:.1f} s with {r.workers} workers "
        f"(time-out {r.timeout:g} s per file).",
    ]
    if r.num_classes is not None:
        out += ["", f"Classes: {r.num_classes} ({r.num_classes_source})."]
    for title, findings, legend in (("Problems", r.problems, PROBLEM_KINDS), ("Warnings", r.warnings, WARNING_KINDS)):
        if not findings:
            continue
        out += ["", f"## {title}", "", "| kind | count | meaning |", "|---|---|---|"]
        out += [f"| {k} | {n} | {legend.get(k, '')} |" for k, n in r.counts(findings).items()]
        out += ["", "| kind | list | line | path | detail |", "|---|---|---|---|---|"]
        for f in findings:
            out.append(
                f"| {f.kind} | {f.split or ''} | {f.line or ''} | {_md_cell(f.path or '')} | {_md_cell(f.detail)} |"
            )
    if r.exact_groups or r.near_pairs:
        out += ["", "## Duplicates", ""]
        for g in r.exact_groups:
            out.append("- same bytes: " + ", ".join(f"`{_md_cell(p)}`" for p in g))
        for p in r.near_pairs:
            out.append(f"- near duplicates (score {p['score']}): `{_md_cell(p['a'])}`, `{_md_cell(p['b'])}`")
    if r.name_matches:
        out += ["", "## Class names", ""]
        for of in dict.fromkeys(m.get("of", "name") for m in r.name_matches):
            rows = [m for m in r.name_matches if m.get("of", "name") == of]
            other = [m for m in rows if m["match"] != "exact"]
            out.append(f"{len(rows) - len(other)} of {len(rows)} {of} names match a class name exactly.")
            if other:
                out += ["", f"| {of} | match | class |", "|---|---|---|"]
                for m in other:
                    what = (
                        f"{m['index']} {m['class_name']}"
                        if m["match"]
                        else "closest: " + ", ".join(m.get("suggestions") or ["none"])
                    )
                    out.append(f"| {_md_cell(m['name'])} | {m['match'] or 'none'} | {_md_cell(what)} |")
            out.append("")
    ok = [v for v in r.videos.values() if v.ok]
    if ok:
        out += ["", "## Videos", "", "| | min | median | max |", "|---|---|---|---|"]
        for attr, label in (
            ("frames", "frames"),
            ("fps", "fps"),
            ("duration", "duration (s)"),
            ("width", "width"),
            ("height", "height"),
        ):
            vals = _values(r, attr)
            out.append(f"| {label} | {min(vals):.4g} | {float(np.median(vals)):.4g} | {max(vals):.4g} |")
        codecs = collections.Counter(v.codec for v in ok)
        rotations = collections.Counter(v.rotation for v in ok)
        out += [
            "",
            "Codecs: "
            + ", ".join(f"{k} {n}" for k, n in codecs.most_common())
            + ". Rotation: "
            + ", ".join(f"{k} degrees {n}" for k, n in sorted(rotations.items()))
            + ".",
        ]
    if r.class_counts:
        out += [
            "",
            "## Classes",
            "",
            "| class | " + " | ".join(r.class_counts) + " |",
            "|---" * (len(r.class_counts) + 1) + "|",
        ]
        n = max(len(c) for c in r.class_counts.values())
        for c in range(n):
            name = f"{c} {r.class_names[c]}" if r.class_names and c < len(r.class_names) else str(c)
            out.append(f"| {_md_cell(name)} | " + " | ".join(str(v[c]) for v in r.class_counts.values()) + " |")
    if images:
        out += ["", "## Histograms", ""]
        out += [f"![{k}]({p.name})" for k, p in images.items()]
    return "\n".join(out) + "\n"


def write_report(report: CheckReport, out_dir: PathLike) -> list[Path]:
    """``check.json``, ``check.md`` and the histogram PNGs in ``out_dir``, each written atomically."""
    out = Path(out_dir)
    images = _write_charts(report, out)
    written = [
        atomic_write_text(out / "check.json", json.dumps(report.to_dict(), indent=1) + "\n"),
        atomic_write_text(out / "check.md", _markdown(report, images)),
    ]
    return written + list(images.values())


def _clean_path(source: Path) -> Path:
    return source.with_name(f"{source.stem}.clean{source.suffix}" if source.suffix else f"{source.name}.clean")


def write_clean_lists(
    report: CheckReport, *, drop_duplicates: bool = False, out_dir: PathLike | None = None
) -> list[tuple[Path, int, int]]:
    """Annotation lists without the entries that have problems (and, with ``drop_duplicates``, without the
    duplicates and the leaking entries), beside the originals as ``NAME.clean.txt``; a folder's list goes to
    ``out_dir``. Returns (path, entries kept, entries dropped) per list. An original is never overwritten."""
    results = []
    for split in report.splits:
        drop_entries = {
            f.entry
            for f in report.problems
            if f.split == split.name and f.entry is not None and (drop_duplicates or f.kind not in DUPLICATE_KINDS)
        }
        drop_lines = {split.samples[i].line for i in drop_entries}
        drop_lines |= {f.line for f in split.findings if f.kind == "malformed-line"}
        kept = len(split.samples) - len(drop_entries)
        if split.kind == "list":
            source = Path(split.source)
            target = _clean_path(source)
            text = source.read_text(encoding="utf-8")
            lines = [line for n, line in enumerate(text.splitlines(keepends=True), start=1) if n not in drop_lines]
            body = "".join(lines)
        else:
            if out_dir is None:
                raise UsageError("a cleaned list of a class folder needs an output directory")
            target = Path(out_dir) / f"{Path(split.source).name or 'folder'}.clean.txt"
            body = "".join(
                f"{os.path.relpath(s.path, split.source)} {s.label}\n"
                for i, s in enumerate(split.samples)
                if i not in drop_entries and s.label is not None
            )
            kept = body.count("\n")
            source = Path(split.source)
        if target.resolve() == source.resolve():  # pragma: no cover - a '.clean' name never equals its source
            raise UsageError(f"{target}: would overwrite the original list")
        atomic_write_text(target, body)
        results.append(
            (target, kept, len(split.samples) - kept + len([f for f in split.findings if f.kind == "malformed-line"]))
        )
    return results
