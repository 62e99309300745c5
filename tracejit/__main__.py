"""The command line: ``python -m tracejit dump ...`` and ``python -m tracejit cache info|clear``.

Input: command-line arguments. Output: text (or a binary file) on stdout or in ``-o FILE``, and an
exit status: 0 on success, 2 for a malformed command line, 1 for a failure while running it
(the module does not import, the function raises while tracing, the file cannot be written).
Errors are one line, ``tracejit: error: ...``, on stderr; ``TRACEJIT_DEBUG=1`` shows the
traceback instead.

    $ python -m tracejit dump model.py:loss --args "f32[3,4], f32[4]"              # text IR
    $ python -m tracejit dump model:loss --args "f32[3,4], f32[4]" --grad -o bwd.svg
    $ python -m tracejit cache info      # where the compile cache is, how many entries, bytes
    $ python -m tracejit cache clear     # delete its entries; prints how many
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import re
import sys
import tempfile
import traceback

PROG = "python -m tracejit"

# format -> (what it is, the file extension it is inferred from, binary?)
FORMATS = {
    "text": ("the text IR, str(graph) (grammar: docs/ir.md)", ".txt", False),
    "json": ("graph.to_json(), loadable with tj.Graph.from_json", ".json", False),
    "dot": ("graph.to_dot(), Graphviz source", ".dot", False),
    "svg": ("the picture Graphviz's `dot` renders (graph.save('x.svg'))", ".svg", False),
    "onnx": ("an ONNX model (binary: needs -o FILE)", ".onnx", True),
    "optimized": ("the text IR after the optimization passes", None, False),
    "schedule": ("the fused kernels the CPU backend runs", None, False),
    "llvm": ("the optimized LLVM IR of the CPU backend", ".ll", False),
    "asm": ("the machine code of the CPU backend, for this CPU", ".s", False),
    "cuda": ("the CUDA C of the CUDA backend", ".cu", False),
}
_BY_EXT = {ext: f for f, (_, ext, _) in FORMATS.items() if ext}

EXAMPLES = """\
arguments:
  MODULE:FUNCTION is an importable module name (model, pkg.model) or a path to a .py file
  (model.py, ./src/model.py), a colon, and the function: a name or a dotted attribute path
  (loss, Net.forward, layers.dense). The current directory is importable.

  --args lists the types of FUNCTION's positional arguments, comma-separated, spelled as the
  text IR spells them: DTYPE[DIMS], with DIMS comma-separated sizes (empty for a scalar) and
  DTYPE one of {dtypes}:
  "f32[3,4], f32[4]", "i64[]", "bool[2]". FUNCTION is traced with zero-filled arrays of those
  types (tj.make_graph). Weak types (~f32[]) are not accepted.

formats (--format; default: from the -o file's extension, else text):
{formats}

  --kernels (dot, svg) draws the optimized graph instead, each fused kernel of the CPU
  schedule (the `schedule` format) as a cluster.

  --grad dumps the backward graph instead: the graph of tj.grad(FUNCTION, argnums), which
  returns the gradients with respect to the arguments --argnums lists (default 0). FUNCTION
  must return one floating-point scalar. Every format applies to it.

exit status: 0 on success; 2 for a malformed command line (bad --args, unknown format, ...);
1 when running it fails (the module does not import, the function is missing or raises
while tracing, the output cannot be written). Errors are one line on stderr; set
TRACEJIT_DEBUG=1 for the traceback.

examples:
  {prog} dump model.py:mlp --args "f32[3,4], f32[4,8], f32[8]"
  {prog} dump model:mlp --args "f32[3,4], f32[4,8], f32[8]" --format json -o mlp.json
  {prog} dump model:mlp --args "f32[3,4], f32[4,8], f32[8]" -o mlp.svg
  {prog} dump model:mlp --args "f32[3,4], f32[4,8], f32[8]" --kernels -o mlp_kernels.svg
  {prog} dump model:loss --args "f32[4,8], f32[3,4]" --grad --argnums 0,1 --format schedule
  {prog} dump model:loss --args "f32[4,8], f32[3,4]" --grad --format llvm -o loss_grad.ll
  {prog} dump model:mlp --args "f32[3,4], f32[4,8], f32[8]" --format onnx -o mlp.onnx
"""


class UsageError(Exception):
    """A malformed command line: exit status 2."""


class RunError(Exception):
    """A failure while running a well-formed command: exit status 1."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``tracejit: error: ...`` and exit status 2."""

    def error(self, message):
        raise UsageError(f"{message} (see {self.prog} --help)")


# ----------------------------------------------------------------------------------------------
# --args: "f32[3,4], i64[], bool[2]"

_TYPE = re.compile(r"\s*([A-Za-z_~][A-Za-z0-9_]*)\s*\[([^\[\]]*)\]\s*")
_DIM = re.compile(r"\s*(\d+)\s*")
MAX_ELEMENTS = 2 ** 48


def _dtype_spellings() -> dict:
    from .dtypes import ALL_DTYPES
    return {d.short: d for d in ALL_DTYPES}


def parse_types(text: str) -> list:
    """Parses ``--args``: a comma-separated list of ``DTYPE[DIMS]``, in the IR's spelling.

    Returns a list of ``(shape, DType)``; raises `UsageError` naming what is wrong and where.

    >>> [(s, d.short) for s, d in parse_types("f32[3,4], i64[]")]
    [((3, 4), 'f32'), ((), 'i64')]
    """
    from .dtypes import ALL_DTYPES, as_dtype
    spell = _dtype_spellings()
    known = ", ".join(spell)
    out = []
    if not text.strip():
        return out
    pos = 0
    while True:
        m = _TYPE.match(text, pos)
        if not m:
            rest = text[pos:].strip()
            bare = re.match(r"\s*([A-Za-z_]\w*)\s*(,|$)", text[pos:])
            if bare:
                raise UsageError(f"--args: {bare.group(1)!r} has no shape; write "
                                 f"{bare.group(1)}[] for a scalar or e.g. {bare.group(1)}[3,4]")
            what = f"{rest!r}" if rest else "nothing"
            raise UsageError(f"--args: expected a type like f32[3,4] at character {pos + 1} "
                             f"of {text!r}, found {what}")
        name, dims = m.group(1), m.group(2)
        where = f"--args: {m.group(0).strip()!r}"
        if name.startswith("~"):
            raise UsageError(f"{where}: weak types (~) are not arguments; write "
                             f"{name[1:]}[{dims}]")
        if name not in spell:
            try:
                d = as_dtype(name)
                hint = f"; the IR spells {name} as {d.short}" if d in ALL_DTYPES else ""
            except TypeError:
                hint = ""
            raise UsageError(f"{where}: unknown dtype {name!r} (expected one of {known}){hint}")
        shape = []
        if dims.strip():
            for part in dims.split(","):
                dm = _DIM.fullmatch(part)
                if not dm:
                    raise UsageError(f"{where}: bad dimension {part.strip()!r}; dimensions are "
                                     f"non-negative integers, e.g. f32[3,4]")
                shape.append(int(dm.group(1)))
        n = 1
        for s in shape:
            n *= s
        if n > MAX_ELEMENTS:
            raise UsageError(f"{where}: {n} elements is more than tracejit can index "
                             f"(limit 2**48)")
        out.append((tuple(shape), spell[name]))
        pos = m.end()
        if pos == len(text):
            return out
        if text[pos] != ",":
            raise UsageError(f"--args: expected ',' or the end at character {pos + 1} of "
                             f"{text!r}, found {text[pos:]!r}")
        pos += 1


def parse_argnums(text: str) -> tuple[int, ...]:
    """``--argnums 0,1`` -> ``(0, 1)``."""
    parts = [p.strip() for p in text.split(",")]
    if not parts or any(not re.fullmatch(r"\d+", p) for p in parts):
        raise UsageError(f"--argnums: expected argument positions like 0 or 0,1, got {text!r}")
    nums = tuple(int(p) for p in parts)
    if len(set(nums)) != len(nums):
        raise UsageError(f"--argnums: {text!r} repeats a position")
    return nums


# ----------------------------------------------------------------------------------------------
# MODULE:FUNCTION

def _import_target(spec: str):
    mod_name, sep, attr = spec.rpartition(":")
    if not sep or not mod_name or not attr:
        raise UsageError(f"expected MODULE:FUNCTION (e.g. model.py:loss or pkg.model:loss), "
                         f"got {spec!r}")
    if not all(re.fullmatch(r"[A-Za-z_]\w*", p) for p in attr.split(".")):
        raise UsageError(f"{attr!r} is not a function name or dotted attribute path")
    is_path = mod_name.endswith(".py") or os.sep in mod_name or (
        os.altsep is not None and os.altsep in mod_name)
    if is_path:
        path = os.path.abspath(mod_name)
        if not os.path.isfile(path):
            raise RunError(f"no such file: {mod_name}")
        name = os.path.splitext(os.path.basename(path))[0]
        if name in sys.modules or name in getattr(sys, "stdlib_module_names", ()):
            # named like a module that is or may be loaded (json.py, ...): keep that one
            name = f"_tracejit_dump_{name}"
        # the file's folder is importable, for its sibling modules (after everything else, so
        # that a file there named like a standard module does not replace it)
        if os.path.dirname(path) not in sys.path:
            sys.path.append(os.path.dirname(path))
        modspec = importlib.util.spec_from_file_location(name, path)
        if modspec is None or modspec.loader is None:
            raise RunError(f"cannot import {mod_name}: not a Python source file")
        module = importlib.util.module_from_spec(modspec)
        sys.modules[name] = module
        try:
            modspec.loader.exec_module(module)
        except Exception as e:
            raise RunError(f"importing {mod_name} failed: {_describe(e)}") from e
    else:
        if not all(re.fullmatch(r"[A-Za-z_]\w*", p) for p in mod_name.split(".")):
            raise UsageError(f"{mod_name!r} is neither a module name nor a path to a .py file")
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(mod_name)
        except ModuleNotFoundError as e:
            if e.name is not None and (mod_name == e.name or mod_name.startswith(e.name + ".")):
                raise RunError(f"no module named {e.name!r} (give an importable module name "
                               f"or a path to a .py file)") from e
            raise RunError(f"importing {mod_name} failed: {_describe(e)}") from e
        except Exception as e:
            raise RunError(f"importing {mod_name} failed: {_describe(e)}") from e
    obj, done = module, mod_name
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = sorted(n for n, v in vars(obj).items()
                           if not n.startswith("_") and callable(v)) if hasattr(
                obj, "__dict__") else []
            known = f" (it has: {', '.join(names[:12])}{', ...' if len(names) > 12 else ''})" \
                if names else ""
            raise RunError(f"{done} has no attribute {part!r}{known}")
        obj = getattr(obj, part)
        done = f"{done}:{part}" if done == mod_name else f"{done}.{part}"
    if not callable(obj):
        raise RunError(f"{spec} is a {type(obj).__name__}, not a function")
    return obj


# ----------------------------------------------------------------------------------------------
# errors as one line

_PKG = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _user_frame(e: BaseException) -> str:
    """``file:line`` of the innermost frame of the traceback outside tracejit and importlib."""
    loc = ""
    for fs in traceback.extract_tb(e.__traceback__):
        f = fs.filename
        if f.startswith(_PKG) or f.startswith("<frozen") or "importlib" in f:
            continue
        try:
            rel = os.path.relpath(f)
            f = f if rel.startswith("..") else rel
        except ValueError:
            pass
        loc = f"{f}:{fs.lineno}"
    return loc


def _describe(e: BaseException) -> str:
    msg = " ".join(line.strip() for line in str(e).splitlines() if line.strip())
    text = f"{type(e).__name__}: {msg}" if msg else type(e).__name__
    loc = _user_frame(e)
    if loc and loc not in text:
        text += f" (at {loc})"
    return text


# ----------------------------------------------------------------------------------------------
# dump

def _example_args(types) -> list:
    import numpy as np
    # zero-filled and allocation-free: tracing reads only shapes and dtypes
    return [np.broadcast_to(np.zeros((), d.np), shape) for shape, d in types]


def _check_arity(fn, spec: str, n: int) -> None:
    import inspect
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    try:
        sig.bind(*range(n))
    except TypeError:
        params = [p.name for p in sig.parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
        raise UsageError(f"{spec} takes the arguments ({', '.join(params)}), but --args gives "
                         f"{n} type{'s' if n != 1 else ''}") from None


def _graph_of(fn, args, spec: str):
    import tracejit as tj
    try:
        return tj.make_graph(fn)(*args)
    except Exception as e:
        raise RunError(f"tracing {spec} failed: {_describe(e)}") from e


def _render(args) -> bytes | str:
    import tracejit as tj
    types = parse_types(args.args)
    fn = _import_target(args.target)
    _check_arity(fn, args.target, len(types))
    ex = _example_args(types)
    spec = args.target
    if args.grad:
        args.argnums = args.argnums or "0"
        nums = parse_argnums(args.argnums)
        bad = [i for i in nums if i >= len(types)]
        if bad:
            raise UsageError(f"--argnums {args.argnums}: {spec} gets {len(types)} argument"
                             f"{'s' if len(types) != 1 else ''} from --args, so there is no "
                             f"argument {bad[0]}")
        fwd = _graph_of(fn, ex, spec)
        outs = fwd.outputs
        if len(outs) != 1 or outs[0].shape != () or not outs[0].dtype.is_floating_point:
            got = ", ".join(str(o.type) for o in outs) or "nothing"
            raise RunError(f"--grad needs {spec} to return one floating-point scalar "
                           f"(e.g. a loss); it returns ({got})")
        for i in nums:
            if not types[i][1].is_floating_point:
                raise RunError(f"--grad --argnums {args.argnums}: argument {i} is "
                               f"{types[i][1].short}; gradients need floating-point arguments")
        fn = tj.grad(fn, argnums=nums[0] if len(nums) == 1 else nums)
        spec = f"grad({spec})"
    fmt = args.format
    if fmt in ("optimized", "schedule", "llvm", "asm", "cuda"):
        try:
            lowered = tj.compile(fn).lower(*ex)
        except Exception as e:
            raise RunError(f"tracing {spec} failed: {_describe(e)}") from e
        try:
            return lowered.as_text(fmt) + "\n"
        except NotImplementedError as e:
            raise RunError(_describe(e).removeprefix("NotImplementedError: ")) from e
        except Exception as e:
            raise RunError(f"--format {fmt}: {_describe(e)}") from e
    g = _graph_of(fn, ex, spec)
    if fmt == "text":
        return str(g) + "\n"
    if fmt == "json":
        return g.to_json(indent=1) + "\n"
    path = None
    shown = os.path.basename(args.output) if args.output else f"graph.{fmt}"
    try:
        if fmt == "dot":
            return (g.to_dot(schedule=True) if args.kernels else g.to_dot()).rstrip("\n") + "\n"
        if fmt == "svg" and args.kernels:
            from .export.dot import render_svg
            return render_svg(g.to_dot(schedule=True)).decode("utf-8")
        # svg, onnx: whatever Graph.save writes for the extension, through a temporary file
        # (so that -o may have any name, stdout works, and a failure leaves no partial file)
        with tempfile.TemporaryDirectory(prefix="tracejit-dump-") as d:
            path = os.path.join(d, "graph." + fmt)
            g.save(path)
            with open(path, "rb") as f:
                data = f.read()
        return data if FORMATS[fmt][2] else data.decode("utf-8")
    except Exception as e:
        msg = _describe(e)
        if path:
            msg = msg.replace(path, shown)
        if isinstance(e, AttributeError) and "'Graph' object has no attribute" in str(e):
            raise RunError(f"--format {fmt} is not available in this version of tracejit "
                           f"({msg})") from e
        if isinstance(e, NotImplementedError):  # e.g. a primitive without an ONNX equivalent
            msg = msg.removeprefix("NotImplementedError: ")
        raise RunError(f"--format {fmt}: {msg}") from e


def _dump(args) -> int:
    if args.argnums is not None and not args.grad:
        raise UsageError("--argnums needs --grad")
    if args.format is None:
        ext = os.path.splitext(args.output or "")[1].lower()
        args.format = _BY_EXT.get(ext, "text")
    binary = FORMATS[args.format][2]
    if binary and not args.output:
        raise UsageError(f"--format {args.format} writes a binary file: give -o FILE")
    if args.kernels and args.format not in ("dot", "svg"):
        raise UsageError(f"--kernels draws kernels in a picture: it needs --format dot or svg, "
                         f"not {args.format}")
    if args.output and os.path.isdir(args.output):
        raise RunError(f"cannot write {args.output}: it is a directory")
    data = _render(args)
    if args.output:
        try:
            if isinstance(data, bytes):
                with open(args.output, "wb") as f:
                    f.write(data)
            else:
                with open(args.output, "w", encoding="utf-8") as f:
                    f.write(data)
        except OSError as e:
            raise RunError(f"cannot write {args.output}: {e.strerror or e}") from e
    else:
        sys.stdout.write(data)
        sys.stdout.flush()
    return 0


# ----------------------------------------------------------------------------------------------
# cache

def _cache(args) -> int:
    from .runtime import diskcache
    if args.action == "clear":
        n = diskcache.clear()
        print(f"removed {n} entr{'y' if n == 1 else 'ies'} from {diskcache.cache_dir()}")
        return 0
    info = diskcache.info()
    if not info["enabled"]:
        print("disk cache: disabled (TRACEJIT_DISK_CACHE=0)")
        return 0
    state = ("not created yet" if not info["exists"] else "in use" if info["trusted"]
             else f"NOT USED: {info['problem']}")
    print(f"disk cache: {info['dir']} ({state})")
    print(f"entries: {info['entries']} ({info['libraries']} with a shared library), "
          f"{info['bytes'] / 1024:.1f} KiB, format {info['format']}")
    return 0


# ----------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog=PROG, description="tracejit command-line tools. "
                 f"Run '{PROG} COMMAND --help' for each command.",
                 epilog=f"examples:\n  {PROG} dump model.py:loss --args \"f32[3,4], f32[4]\" "
                 f"--grad\n  {PROG} cache info",
                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND",
                            parser_class=_Parser)
    from .dtypes import ALL_DTYPES
    fmts = "\n".join(f"  {f:<10} {what}" + (f" [{ext}]" if ext else "")
                     for f, (what, ext, _) in FORMATS.items())
    dump = sub.add_parser(
        "dump", help="trace a function and print its graph, backward graph or generated code",
        description="Traces MODULE:FUNCTION with zero-filled arguments of the types --args\n"
        "gives, and writes its graph (or backward graph, or generated code) in one format to\n"
        "stdout or -o FILE.",
        epilog=EXAMPLES.format(prog=PROG, formats=fmts,
                               dtypes=", ".join(d.short for d in ALL_DTYPES)),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    dump.add_argument("target", metavar="MODULE:FUNCTION",
                      help="the function: model:loss, pkg.model:Net.forward, path/to/model.py:loss")
    dump.add_argument("--args", default="", metavar="TYPES",
                      help='the argument types, e.g. "f32[3,4], f32[4]" (default: no arguments)')
    dump.add_argument("--format", "-f", metavar="FORMAT", choices=tuple(FORMATS),
                      help=f"one of {', '.join(FORMATS)} (default: from -o's extension, else "
                      "text)")
    dump.add_argument("-o", "--output", metavar="FILE",
                      help="write to FILE instead of stdout (required for onnx)")
    dump.add_argument("--kernels", action="store_true",
                      help="with --format dot or svg: draw the optimized graph with each fused "
                      "kernel of the CPU schedule as a cluster")
    dump.add_argument("--grad", action="store_true",
                      help="dump the backward graph tj.grad(FUNCTION, argnums) instead; "
                      "FUNCTION must return one floating-point scalar")
    dump.add_argument("--argnums", metavar="N[,N...]", default=None,
                      help="with --grad: the arguments to differentiate with respect to "
                      "(default 0; 0,1 gives a tuple of gradients)")
    dump.set_defaults(run=_dump)
    cache = sub.add_parser("cache", help="inspect or clear the on-disk cache of compiled code",
                           description="The on-disk cache of compiled machine code "
                           "(TRACEJIT_CACHE_DIR; TRACEJIT_DISK_CACHE=0 disables it).")
    cache.add_argument("action", choices=("info", "clear"),
                       help="info: location, entries and size; clear: delete every entry")
    cache.set_defaults(run=_cache)
    return ap


def main(argv: list[str] | None = None) -> int:
    debug = os.environ.get("TRACEJIT_DEBUG", "") not in ("", "0")
    try:
        args = build_parser().parse_args(argv)
        return args.run(args)
    except UsageError as e:
        if debug:
            raise
        print(f"tracejit: error: {e}", file=sys.stderr)
        return 2
    except RunError as e:
        if debug:
            raise
        print(f"tracejit: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # the reader went away (| head): not an error worth a traceback
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        if debug:
            raise
        print(f"tracejit: error: {_describe(e)} (set TRACEJIT_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
