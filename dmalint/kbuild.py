"""`dmalint kbuild`: the checker of `make C=1 CHECK="dmalint kbuild"`, as sparse and smatch are.

kbuild runs `$(CHECK) $(CHECKFLAGS) $(c_flags) file.c` for every C file it compiles (C=1) or
every C file (C=2), from the top of the kernel tree.  So this command receives the compiler's
whole command line.  It uses:

  -I DIR, -iquote DIR, -isystem DIR, -idirafter DIR   where `#include "x.h"` headers are looked for
  -D NAME[=VALUE], -U NAME                            macros seen before the file's own #defines
  -include FILE, -imacros FILE                        their object-like #defines, the same way
  --arch=ARCH                                         arm64 sets the DMA granule to 128 (unless
                                                      configured)
  --error-exit                                        exit 1 on findings (also DMALINT_KBUILD_ERROR=1)

and ignores every other option (-W..., -f..., -m..., -O2, -nostdinc, --param=..., -Wp,...),
skipping the argument of those that take a separate one (-o FILE, -MF FILE, -x LANG, ...).
The other arguments are the files.  Findings go to stderr as `path:line:col: severity: message
[DMA0NN]` lines, which kbuild shows as they are; the exit status is 0 even with findings, so the
build goes on, unless --error-exit is given.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from dmalint.source import Define, SourceError, read_source

ERROR_ENV = "DMALINT_KBUILD_ERROR"
# Compiler options whose argument is the next word (when not attached).
_TAKES_ARGUMENT = {
    "-o", "-MF", "-MT", "-MQ", "-x", "-iprefix", "-iwithprefix", "-iwithprefixbefore",
    "-isysroot", "-imultilib", "-mllvm", "-Xclang", "-Xpreprocessor", "-Xassembler",
    "-Xlinker", "-target", "--target", "--param", "-aux-info", "-arch", "-A", "-L", "-l",
}
_INCLUDE_DIR_OPTIONS = ("-isystem", "-iquote", "-idirafter", "-I")
_DEFINE = re.compile(r"^([A-Za-z_]\w*)(\(([^)]*)\))?(?:=(.*))?$", re.S)


@dataclass
class CompilerArgs:
    """What dmalint takes from a compiler command line."""

    files: list[str] = field(default_factory=list)
    include_dirs: list[str] = field(default_factory=list)
    defines: dict[str, Define] = field(default_factory=dict)
    forced_includes: list[str] = field(default_factory=list)
    arch: str | None = None
    error_exit: bool = False


def parse_compiler_args(argv: list[str]) -> CompilerArgs:
    """Split a checker command line into files, include directories and macros."""
    out = CompilerArgs()
    i = 0

    def value(opt: str) -> str | None:
        """The option's argument: attached (-Ifoo) or the next word (-I foo)."""
        nonlocal i
        word = argv[i]
        if word != opt:
            return word[len(opt):]
        if i + 1 < len(argv):
            i += 1
            return argv[i]
        return None

    while i < len(argv):
        word = argv[i]
        opt = next((o for o in _INCLUDE_DIR_OPTIONS if word.startswith(o)), None)
        if opt is not None:
            d = value(opt)
            if d and d != "-":  # -I- is an old gcc separator, not a directory
                out.include_dirs.append(d)
        elif word.startswith("-D"):
            _define(value("-D"), out.defines)
        elif word.startswith("-U"):
            out.defines.pop(value("-U") or "", None)
        elif word in ("-include", "-imacros"):
            f = value(word)
            if f:
                out.forced_includes.append(f)
        elif word.startswith("--arch="):
            out.arch = word.split("=", 1)[1]
        elif word == "--error-exit":
            out.error_exit = True
        elif word in _TAKES_ARGUMENT:
            i += 1
        elif word.startswith("-") and word != "-":
            pass  # -W..., -f..., -m..., -O2, -std=..., -nostdinc, --param=..., -Wp,-MMD,...
        else:
            out.files.append(word)
        i += 1
    return out


def _define(text: str | None, into: dict[str, Define]) -> None:
    m = _DEFINE.match(text or "")
    if m is None:
        return
    params = tuple(p.strip() for p in m.group(3).split(",") if p.strip()) \
        if m.group(2) is not None else None
    into[m.group(1)] = Define(m.group(1), m.group(4) if m.group(4) is not None else "1", 0, params)


def forced_defines(files: list[str], tables) -> dict[str, Define]:
    """The object-like #defines of -include files (unreadable ones are skipped: the compiler
    will complain about them, not us)."""
    out: dict[str, Define] = {}
    for name in files:
        try:
            src = read_source(Path(name), name, tables)
        except (SourceError, RecursionError):
            continue
        out.update((k, d) for k, d in src.defines.items() if d.params is None)
    return out


def granule_for(arch: str | None) -> int | None:
    """ARCH_DMA_MINALIGN of a kernel ARCH, when it differs from the default."""
    return 128 if arch in ("arm64", "aarch64") else None


def error_exit_requested(args: CompilerArgs) -> bool:
    return args.error_exit or os.environ.get(ERROR_ENV, "") not in ("", "0")


def report(result, stream: TextIO) -> None:
    """sparse-style lines: findings, then the files that could not be analysed."""
    for f in result.findings:
        stream.write(f"{f.path}:{f.line}:{f.column}: {f.severity}: {f.message} [{f.code}]\n")
    for n in result.notices:
        if n.kind in ("error", "suppression"):
            where = f"{n.path}:{n.line}" if n.line else n.path
            stream.write(f"{where}: {'error' if n.kind == 'error' else 'note'}: dmalint: "
                         f"{n.message}\n")
