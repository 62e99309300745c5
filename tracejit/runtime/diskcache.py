"""The on-disk cache of compiled machine code: a new process loads it and skips LLVM.

Input: what the CPU runtime (`cpu.py`) compiled for one module: the key material (the
structural text of the optimized graph, which determines the schedule and the generated code,
plus the target triple, CPU name and feature string), the object code MCJIT emitted, and a
small JSON dict of what the call path needs without the module (kernel names with their outer
extents and parallel flags).
Output: for a later lookup with the same key material, in this process or another one, the
same ``(metadata, object code)``, or ``None`` (disabled, absent, unreadable, or not valid).

Location: ``$TRACEJIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/tracejit``, else
``~/.cache/tracejit``; created with mode 0700. ``TRACEJIT_DISK_CACHE=0`` disables it. A
directory owned by another user, or writable by group or others, is never trusted (loading
machine code from it would run whatever someone else put there): one warning, then the
process compiles as if there were no disk cache.

Key: sha256 over `FORMAT_VERSION`, tracejit's version and a fingerprint of its sources (so an
edited code generator never meets stale machine code), the llvmlite and LLVM versions, the
triple, CPU and features, and the structural text. One file per key, ``<sha256>.tjc``:

    header  "TJCACHE\\n" | u32 format | u32 meta length | u64 object length | sha256(meta+object)
    meta    UTF-8 JSON object (includes the key itself)
    object  the relocatable object file, as MCJIT produced it

A file whose header, lengths, digest or key do not check out is rejected and rebuilt, never
trusted. Writes go to a 0600 temporary file in the same directory, then `os.replace`: readers
and concurrent writers of one entry only ever see a whole file. Every `OSError` degrades to
"no entry" (the caller compiles); nothing here fails a user's call.

    >>> from tracejit.runtime import diskcache
    >>> sorted(diskcache.info())                 # what `python -m tracejit cache info` shows
    ['bytes', 'dir', 'enabled', 'entries', 'exists', 'format', 'problem', 'stats', 'trusted']
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import struct
import tempfile
import threading
import warnings

__all__ = ["FORMAT_VERSION", "stats", "cache_dir", "directory", "entry_key", "load", "store",
           "info", "clear"]

log = logging.getLogger("tracejit")

FORMAT_VERSION = 1
MAGIC = b"TJCACHE\n"
SUFFIX = ".tjc"
_TMP_PREFIX = ".tmp-"
_HEADER = struct.Struct("<8sIIQ32s")  # magic, format, meta length, object length, sha256

# Counters for this process (tests and `info()` read them): hits = entries loaded, misses =
# lookups that found no usable entry, stores = entries written, rejected = entries that failed
# validation (rebuilt), errors = OSErrors met (each degraded to compiling).
stats = {"hits": 0, "misses": 0, "stores": 0, "rejected": 0, "errors": 0}

_lock = threading.Lock()
_trusted: set[str] = set()  # directories checked and found safe in this process
_warned: set[str] = set()
_fingerprint: str | None = None


def _count(what: str) -> None:
    with _lock:
        stats[what] += 1


def cache_dir() -> str | None:
    """The configured directory (absolute), or None when ``TRACEJIT_DISK_CACHE=0``. An empty
    ``TRACEJIT_CACHE_DIR`` counts as unset."""
    if os.environ.get("TRACEJIT_DISK_CACHE", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    d = os.environ.get("TRACEJIT_CACHE_DIR")
    if not d:
        base = os.environ.get("XDG_CACHE_HOME")
        if not base or not os.path.isabs(base):  # the XDG rule: relative values are ignored
            base = os.path.join(os.path.expanduser("~"), ".cache")
        d = os.path.join(base, "tracejit")
    return os.path.abspath(os.path.expanduser(d))


def _problem(path: str, st: os.stat_result) -> str | None:
    """Why the directory must not be trusted, or None."""
    if not stat.S_ISDIR(st.st_mode):
        return "it is not a directory"
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return f"it is owned by uid {st.st_uid}, not by this user (uid {os.getuid()})"
    if st.st_mode & 0o022:
        return f"it is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def directory() -> str | None:
    """The cache directory, created (mode 0700) if missing, when it is enabled and safe to
    trust; else None (disabled, not creatable, or untrusted: warned about once)."""
    path = cache_dir()
    if path is None or path in _trusted:
        return path
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.stat(path)
    except OSError as e:
        _count("errors")
        log.debug("tracejit: disk cache %s not usable: %s", path, e)
        return None
    why = _problem(path, st)
    if why is not None:
        with _lock:
            first = path not in _warned
            _warned.add(path)
        if first:
            warnings.warn(f"tracejit: not using the compile cache directory {path}: {why}; "
                          "compiling without a disk cache (fix its owner/mode, or set "
                          "TRACEJIT_CACHE_DIR or TRACEJIT_DISK_CACHE=0)", RuntimeWarning,
                          stacklevel=2)
        return None
    with _lock:
        _trusted.add(path)
    return path


def _source_fingerprint() -> str:
    """sha256 of tracejit's Python sources and its LLVM math library (computed once, ~1 ms)."""
    global _fingerprint
    if _fingerprint is None:
        from ..codegen import mathlib
        pkg = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        files = []  # (name, path)
        for root, dirs, names in os.walk(pkg):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            rel = root[len(pkg):]
            files += [(rel + "/" + n, os.path.join(root, n)) for n in sorted(names)
                      if n.endswith(".py")]
        files.append(("mathlib.ll", str(mathlib.source_path())))
        h = hashlib.sha256()
        for name, path in files:
            with open(path, "rb") as f:
                data = f.read()
            h.update(f"{name}\0{len(data)}\0".encode())
            h.update(data)
        _fingerprint = h.hexdigest()
    return _fingerprint


def entry_key(structure: str, triple: str, cpu: str, features: str) -> str | None:
    """The entry's name (sha256 hex) for this module on this target, or None when there is no
    usable disk cache (then the caller need not compute anything for it)."""
    if directory() is None:
        return None
    import llvmlite
    import llvmlite.binding as llvm

    from .. import __version__
    try:
        fp = _source_fingerprint()
    except OSError as e:
        _count("errors")
        log.debug("tracejit: disk cache off: cannot fingerprint the sources: %s", e)
        return None
    h = hashlib.sha256()
    for part in (f"tracejit-object-cache {FORMAT_VERSION}", f"tracejit {__version__} {fp}",
                 f"llvmlite {llvmlite.__version__}", f"llvm {llvm.llvm_version_info}",
                 triple, cpu, features, structure):
        b = part.encode()
        h.update(len(b).to_bytes(8, "little"))  # length-prefixed: no two splits collide
        h.update(b)
    return h.hexdigest()


def _path(d: str, key: str) -> str:
    return os.path.join(d, key + SUFFIX)


def encode(key: str, meta: dict, obj: bytes) -> bytes:
    """One entry's file contents."""
    m = json.dumps({**meta, "key": key}, sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256(m + obj).digest()
    return _HEADER.pack(MAGIC, FORMAT_VERSION, len(m), len(obj), digest) + m + obj


def decode(data: bytes, key: str) -> tuple[dict, bytes] | None:
    """``(meta, object)`` from a file's contents, or None unless every check passes."""
    if len(data) < _HEADER.size:
        return None
    magic, fmt, mlen, olen, digest = _HEADER.unpack_from(data)
    if magic != MAGIC or fmt != FORMAT_VERSION or olen == 0:
        return None
    if len(data) != _HEADER.size + mlen + olen:
        return None
    body = memoryview(data)[_HEADER.size:]
    if hashlib.sha256(body).digest() != digest:
        return None
    try:
        meta = json.loads(bytes(body[:mlen]).decode())
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.pop("key", None) != key:
        return None
    return meta, bytes(body[mlen:])


def load(key: str | None) -> tuple[dict, bytes] | None:
    """The stored ``(meta, object)`` for `key`, or None (counted as a miss)."""
    d = directory() if key else None
    if d is None:
        return None
    try:
        with open(_path(d, key), "rb") as f:
            data = f.read()
    except FileNotFoundError:
        _count("misses")
        return None
    except OSError as e:
        _count("errors")
        _count("misses")
        log.debug("tracejit: disk cache entry %s unreadable: %s", key, e)
        return None
    entry = decode(data, key)
    if entry is None:
        _count("rejected")
        _count("misses")
        log.debug("tracejit: disk cache entry %s is not valid; rebuilding it", key)
        return None
    _count("hits")
    return entry


def reject() -> None:
    """Called when an entry that `load` returned turned out unusable (it does not define the
    expected kernels): counts it as rejected instead of a hit; the caller rebuilds it."""
    with _lock:
        stats["hits"] -= 1
        stats["misses"] += 1
        stats["rejected"] += 1


def store(key: str | None, meta: dict, obj: bytes) -> bool:
    """Writes the entry atomically (temp file 0600 + `os.replace`); False if it could not."""
    d = directory() if key else None
    if d is None:
        return False
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=SUFFIX, dir=d)  # mode 0600
        with os.fdopen(fd, "wb") as f:
            f.write(encode(key, meta, obj))
        os.replace(tmp, _path(d, key))
        tmp = None
    except OSError as e:
        _count("errors")
        log.debug("tracejit: could not write disk cache entry %s: %s", key, e)
        with _lock:
            _trusted.discard(d)  # re-check (and re-create) the directory next time
        return False
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    _count("stores")
    return True


def _entries(d: str) -> list[os.DirEntry]:
    with os.scandir(d) as it:
        return [e for e in it if e.name.endswith(SUFFIX) and e.is_file(follow_symlinks=False)]


def info() -> dict:
    """What the cache holds, without creating anything: ``dir`` (None when disabled),
    ``enabled``, ``exists``, ``trusted``, ``problem`` (why not, or None), ``entries``,
    ``bytes``, ``format``, and this process's ``stats``."""
    d = cache_dir()
    out = {"dir": d, "enabled": d is not None, "exists": False, "trusted": False,
           "problem": None, "entries": 0, "bytes": 0, "format": FORMAT_VERSION,
           "stats": dict(stats)}
    if d is None:
        return out
    try:
        st = os.stat(d)
    except FileNotFoundError:
        return out
    except OSError as e:
        out["problem"] = str(e)
        return out
    out["exists"] = True
    out["problem"] = _problem(d, st)
    out["trusted"] = out["problem"] is None
    try:
        for e in _entries(d):
            if not e.name.startswith(_TMP_PREFIX):
                out["entries"] += 1
                out["bytes"] += e.stat(follow_symlinks=False).st_size
    except OSError as e:
        out["problem"] = str(e)
    return out


def clear() -> int:
    """Deletes every entry (and leftover temporary file) of the cache directory; returns the
    number of entries deleted. Leaves the directory, and anything else in it, alone; does
    nothing to a directory it does not trust."""
    d = cache_dir()
    if d is None:
        return 0
    try:
        if _problem(d, os.stat(d)) is not None:
            return 0
        entries = _entries(d)
    except OSError:
        return 0
    n = 0
    for e in entries:
        try:
            os.unlink(e.path)
        except OSError:
            continue
        n += not e.name.startswith(_TMP_PREFIX)
    return n
