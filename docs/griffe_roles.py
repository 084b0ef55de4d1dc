"""A griffe extension for the API pages: the docstrings' reST-isms rendered as Markdown.

The code's docstrings are prose written for reading in the source: ``literal`` (already Markdown), Sphinx roles
(:class:`~uniformerv2.X`, :func:`f`, :mod:`.m`, :meth:`C.m`, :data:`D`) and ``>>>`` examples. Roles become code
spans (the ``~`` form shows the last dotted part, as Sphinx does) and runs of ``>>>``/``...`` lines become a
fenced Python block, so nothing renders as raw markup or as a nested block quote.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):`(~?)([^`]+)`")
_PROMPT = re.compile(r"^(\s*)(>>>|\.\.\.)( |$)")


def _role(match: re.Match[str]) -> str:
    short, target = match.group(1), match.group(2).strip()
    if short:
        target = target.lstrip(".").rsplit(".", 1)[-1]
    return f"`{target}`"


def _fence_examples(text: str) -> str:
    out: list[str] = []
    block: list[str] = []
    for line in text.splitlines() + [""]:
        if _PROMPT.match(line):
            block.append(line)
            continue
        if block:
            indent = len(block[0]) - len(block[0].lstrip())
            out += [" " * indent + "```pycon", *block, " " * indent + "```"]
            block = []
        out.append(line)
    return "\n".join(out[:-1])


def _literal_blocks(text: str) -> str:
    """A paragraph ending in ``::`` introduces an indented literal block: keep it as code."""
    return re.sub(r"::\n", ":\n", text)


class ReSTRoles(griffe.Extension):
    """Rewrite every docstring once it is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            text = _ROLE.sub(_role, obj.docstring.value)
            obj.docstring.value = _literal_blocks(_fence_examples(text))
