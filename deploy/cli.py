"""``fab`` with Fabric 1 task arguments: ``fab build:1.2.4,1.3.6-Resurface`` on fabric 3.

Strategy: modern fabric's parser (invoke) has no ``task:arg,key=val`` syntax, so this entry
point rewrites such words into invoke's form (``build 1.2.4 1.3.6-Resurface`` and
``--key=val``) and then hands the argv to fabric's own ``fab`` program unchanged, so every
fabric flag, ``--list``, ``--help`` and collection loading keep working. Only words whose
part before the colon names one of our tasks are rewritten, and never the value of a flag
that takes one (``-H host:22``). Fabric 1 escapes (``\\,`` and ``\\=``) are honoured.
"""
from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Sequence

_UNESCAPED_COMMA = re.compile(r"(?<!\\),")
_UNESCAPED_EQUALS = re.compile(r"(?<!\\)=")


def split_task_word(word: str) -> tuple[str, list[str]]:
    """``build:a,b,k=v`` -> (``build``, [``a``, ``b``, ``--k=v``]) with ``\\,``/``\\=`` kept."""
    name, _, rest = word.partition(":")
    out: list[str] = []
    if not rest:
        return name, out
    for item in _UNESCAPED_COMMA.split(rest):
        parts = _UNESCAPED_EQUALS.split(item, maxsplit=1)
        if len(parts) == 2 and re.fullmatch(r"[A-Za-z_][\w-]*", parts[0]):
            key = parts[0].replace("_", "-")
            out.append(f"--{key}={_unescape(parts[1])}")
        else:
            out.append(_unescape(item))
    return name, out


def _unescape(text: str) -> str:
    return text.replace("\\,", ",").replace("\\=", "=")


def rewrite_argv(argv: Sequence[str], task_names: Iterable[str],
                 value_flags: Iterable[str]) -> list[str]:
    """Rewrite Fabric 1 ``task:args`` words of ``argv`` (without the program name)."""
    names = set(task_names)
    takes_value = set(value_flags)
    out: list[str] = []
    skip_next = False
    for word in argv:
        if skip_next:
            skip_next = False
            out.append(word)
            continue
        if word.startswith("-"):
            skip_next = word in takes_value
            out.append(word)
            continue
        name, _, rest = word.partition(":")
        if rest and name in names:
            task, args = split_task_word(word)
            out += [task, *args]
        else:
            out.append(word)
    return out


def _value_flags(program: object) -> set[str]:
    flags: set[str] = set()
    args = [*program.core_args(), *program.task_args()]  # type: ignore[attr-defined]
    for arg in args:
        if arg.takes_value:
            flags.update(f"-{n}" if len(n) == 1 else f"--{n}" for n in arg.names)
    return flags


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: rewrite Fabric 1 arguments, then run fabric's ``fab``."""
    from fabric.main import program

    from deploy import ns

    words = list(sys.argv[1:] if argv is None else argv)
    task_names: set[str] = set()
    for name, aliases in ns.task_names.items():
        task_names.add(name)
        task_names.update(aliases)
    program.run(["fab", *rewrite_argv(words, task_names, _value_flags(program))])
