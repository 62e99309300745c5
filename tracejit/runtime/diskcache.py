"""The on-disk cache of compiled machine code: a new process loads it and skips LLVM.

Input: what the CPU runtime (`cpu.py`) compiled for one module: the key material (the
structural text of the optimized graph, which determines the schedule and the generated code,
plus the target triple, CPU name, feature string and LLVM version), the position-independent
object code LLVM emitted (one object file, or one per part for a module compiled in parts:
`runtime/compile.py`), the functions it must define, and a small JSON dict of what the call
path needs without the module (kernel names with their outer extents and parallel flags).
Output: for a later lookup with the same key material, in this process or another one, the
same ``(metadata, object code)``, or ``None`` (disabled, absent, unreadable, or not valid); and,
where a system linker was found when the entry was stored, the module as a shared library loaded
with ctypes (`library`): a process that hits the cache then never loads LLVM at all.

Location: ``$TRACEJIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/tracejit``, else
``~/.cache/tracejit``; created with mode 0700. ``TRACEJIT_DISK_CACHE=0`` disables it. A
directory owned by another user, or writable by group or others, is never trusted (loading
machine code from it would run whatever someone else put there): one warning, then the
process compiles as if there were no disk cache.

Key: sha256 over `FORMAT_VERSION`, tracejit's version and a fingerprint of its sources (so an
edited code generator never meets stale machine code), the llvmlite and LLVM versions, the
triple, CPU and features, and the structural text. The files of one key:

    <key>.tjc   header  "TJCACHE\\n" | u32 format | u32 meta length | u64 object length |
                        sha256(meta+object)
                meta    UTF-8 JSON object (the key itself; "outer"; "objects": the size of
                        each part's object, for a module compiled in parts; "lib": sha256
                        and size of the .so, when there is one)
                object  the relocatable object file (or the parts', one after the other)
    <key>.so    the object(s) linked into one shared library (`cc -shared`, or `ld -shared`),
                when a linker was there; written before the .tjc that records its digest

and one ``<host>.host`` per machine: LLVM's triple, CPU name, features and version for it
(`host_record`), so that computing a key needs no LLVM either.

A file whose header, lengths, digest or key do not check out is rejected and rebuilt, never
trusted. A library is loaded only from bytes whose sha256 matches the one its entry records, and
relinked from the entry's object when it does not (`library`). Writes go to a 0600 temporary
file in the same directory, then `os.replace`: readers and concurrent writers of one entry only
ever see a whole file. Every `OSError` degrades to "no entry" (the caller compiles), and every
failure to link or load a library to loading the object with MCJIT (an entry of several objects
is then rejected and compiled again: MCJIT cannot load them); nothing here fails a user's call.

    >>> from tracejit.runtime import diskcache
    >>> sorted(diskcache.info())                 # what `python -m tracejit cache info` shows
    ['bytes', 'dir', 'enabled', 'entries', 'exists', 'format', 'libraries', 'problem', 'stats',
     'trusted']
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import shutil
import stat
import struct
import sys
import tempfile
import threading
import warnings

__all__ = ["FORMAT_VERSION", "stats", "cache_dir", "directory", "entry_key", "load", "store",
           "split_objects", "link_and_load", "library", "symbol_address", "host_record",
           "remember_host", "find_linkers", "link", "info", "clear"]

log = logging.getLogger("tracejit")

FORMAT_VERSION = 3  # 2: position-independent object code, and the optional shared library;
# 3: a module compiled in parts stores one object file per part ("objects": their sizes)
MAGIC = b"TJCACHE\n"
SUFFIX = ".tjc"
LIB_SUFFIX = ".so"
HOST_SUFFIX = ".host"
_SUFFIXES = (SUFFIX, LIB_SUFFIX, HOST_SUFFIX)
_TMP_PREFIX = ".tmp-"
_HEADER = struct.Struct("<8sIIQ32s")  # magic, format, meta length, object length, sha256

# Counters for this process (tests and `info()` read them): hits = entries loaded, misses =
# lookups that found no usable entry, stores = entries written, rejected = entries that failed
# validation (rebuilt), errors = OSErrors met (each degraded to compiling); libs_loaded =
# shared libraries loaded (hits that needed no LLVM), libs_linked = libraries linked and
# written, libs_rejected = libraries not loaded (missing, not matching their digest: relinked;
# or refused by the dynamic loader: the object is loaded with MCJIT instead).
stats = {"hits": 0, "misses": 0, "stores": 0, "rejected": 0, "errors": 0,
         "libs_loaded": 0, "libs_linked": 0, "libs_rejected": 0}

_lock = threading.Lock()
_trusted: set[str] = set()  # directories checked and found safe in this process
_warned: set[str] = set()
_fingerprint: str | None = None
_UNSET = object()
_host_fp = _UNSET  # str | None once computed
_host_seen: dict[str, tuple] = {}  # directory -> (host fingerprint, host values) recorded there
_seq = itertools.count()  # makes the name of every library this process loads unique


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
        from ..codegen import mathlib  # (does not load llvmlite.binding)
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


def entry_key(structure: str, triple: str, cpu: str, features: str,
              llvm_version: str | None = None) -> str | None:
    """The entry's name (sha256 hex) for this module on this target, or None when there is no
    usable disk cache (then the caller need not compute anything for it). `llvm_version` is
    ``str(llvmlite.binding.llvm_version_info)``; without it, llvmlite.binding is imported to
    ask (the CPU runtime passes it, from `host_record` when LLVM is not loaded)."""
    if directory() is None:
        return None
    import llvmlite  # only its version: this does not load LLVM

    from .. import __version__
    if llvm_version is None:
        import llvmlite.binding as llvm
        llvm_version = str(llvm.llvm_version_info)
    try:
        fp = _source_fingerprint()
    except OSError as e:
        _count("errors")
        log.debug("tracejit: disk cache off: cannot fingerprint the sources: %s", e)
        return None
    h = hashlib.sha256()
    for part in (f"tracejit-object-cache {FORMAT_VERSION}", f"tracejit {__version__} {fp}",
                 f"llvmlite {llvmlite.__version__}", f"llvm {llvm_version}",
                 triple, cpu, features, structure):
        b = part.encode()
        h.update(len(b).to_bytes(8, "little"))  # length-prefixed: no two splits collide
        h.update(b)
    return h.hexdigest()


# -- the host record: LLVM's view of this machine, without loading LLVM --------------------------

_VOLATILE_CPUINFO = (b"cpu mhz", b"bogomips")  # change while the machine runs


def _host_fingerprint() -> str | None:
    """sha256 of what LLVM's description of this host (triple, CPU name, features, version)
    is a function of, read without loading LLVM: the platform, llvmlite's version and the
    identity of its LLVM library file (name, size, mtime, inode), and the first processor's
    entry of /proc/cpuinfo (vendor, family, model, stepping, feature flags; less the fields that
    change while the machine runs). None where there is no /proc/cpuinfo (not Linux): LLVM is
    asked then. Computed once per process (~0.1 ms)."""
    global _host_fp
    if _host_fp is not _UNSET:
        return _host_fp
    fp = None
    try:
        import llvmlite
        if sys.platform.startswith("linux"):
            bdir = os.path.join(os.path.dirname(os.path.abspath(llvmlite.__file__)), "binding")
            libs = []
            for name in sorted(os.listdir(bdir)):
                if "llvmlite" in name and name.endswith((".so", ".dylib", ".dll")):
                    st = os.stat(os.path.join(bdir, name))
                    libs.append(f"{name} {st.st_size} {st.st_mtime_ns} {st.st_dev} {st.st_ino}")
            data = b""
            with open("/proc/cpuinfo", "rb") as f:
                while b"\n\n" not in data and len(data) < (1 << 20):  # the first processor
                    chunk = f.read(8192)
                    if not chunk:
                        break
                    data += chunk
            cpu = [ln.strip() for ln in data.split(b"\n\n", 1)[0].splitlines()
                   if ln.split(b":", 1)[0].strip().lower() not in _VOLATILE_CPUINFO]
            if libs and cpu:
                h = hashlib.sha256()
                for part in (sys.platform, os.uname().machine, llvmlite.__version__, bdir,
                             *libs, *(ln.decode("utf-8", "replace") for ln in cpu)):
                    b = part.encode()
                    h.update(len(b).to_bytes(8, "little"))
                    h.update(b)
                fp = h.hexdigest()
    except (OSError, ImportError) as e:
        log.debug("tracejit: cannot identify this host without LLVM: %s", e)
    _host_fp = fp
    return fp


def _read_host(d: str, fp: str) -> tuple[str, str, str, str] | None:
    try:
        with open(os.path.join(d, fp + HOST_SUFFIX), "rb") as f:
            rec = json.loads(f.read(1 << 16).decode())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:  # (UnicodeDecodeError is a ValueError)
        log.debug("tracejit: disk cache host record unreadable: %s", e)
        return None
    fields = ("triple", "cpu", "features", "llvm")
    if (not isinstance(rec, dict) or rec.get("fingerprint") != fp
            or not all(isinstance(rec.get(k), str) and rec.get(k) for k in fields[:2])
            or not all(isinstance(rec.get(k), str) for k in fields[2:])):
        return None
    return tuple(rec[k] for k in fields)


def host_record() -> tuple[str, str, str, str] | None:
    """``(triple, CPU name, feature string, LLVM version)`` that LLVM reported for this machine
    in an earlier process (`remember_host`), read without loading LLVM; None when unknown (no
    usable cache, not Linux, or no record yet), then the caller asks LLVM.

    Safety: an entry's machine code uses the CPU features in its key, so a record must never
    describe another machine: its name is `_host_fingerprint`, which changes with the CPU model
    and its feature flags as the kernel reports them, and with the LLVM library llvmlite uses.
    A cache directory shared by different machines (a network home) holds one record each."""
    d = directory()
    fp = _host_fingerprint() if d is not None else None
    if fp is None:
        return None
    with _lock:
        seen = _host_seen.get(d)
    if seen is not None and seen[0] == fp:
        return seen[1]
    values = _read_host(d, fp)
    if values is not None:
        with _lock:
            _host_seen[d] = (fp, values)
    return values


def remember_host(triple: str, cpu: str, features: str, llvm_version: str) -> None:
    """Records what LLVM reported for this machine (see `host_record`), unless the record says
    so already. Failures only cost a later process the loading of LLVM: logged, not counted."""
    d = directory()
    fp = _host_fingerprint() if d is not None else None
    if fp is None:
        return
    values = (triple, cpu, features, llvm_version)
    with _lock:
        if _host_seen.get(d) == (fp, values):
            return
    if _read_host(d, fp) != values:
        rec = dict(zip(("triple", "cpu", "features", "llvm"), values), fingerprint=fp)
        try:
            _write(d, fp + HOST_SUFFIX, json.dumps(rec, sort_keys=True).encode())
        except OSError as e:
            log.debug("tracejit: could not write the disk cache host record: %s", e)
            return
    with _lock:
        _host_seen[d] = (fp, values)


# -- entries --------------------------------------------------------------------------------------

def _path(d: str, key: str, suffix: str = SUFFIX) -> str:
    return os.path.join(d, key + suffix)


def _write(d: str, name: str, data: bytes) -> None:
    """`data` as ``d/name``: a 0600 temporary file in `d`, then `os.replace`. Raises OSError."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=os.path.splitext(name)[1], dir=d)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, os.path.join(d, name))
        tmp = None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


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
    sizes = meta.get("objects")
    if sizes is not None and not (isinstance(sizes, list) and len(sizes) > 1
                                  and all(type(n) is int and n > 0 for n in sizes)
                                  and sum(sizes) == olen):
        return None
    return meta, bytes(body[mlen:])


def split_objects(meta: dict, obj: bytes) -> list[bytes]:
    """The object files of an entry `decode` returned as ``(meta, obj)``: one, or, when the
    module was compiled in parts (``meta["objects"]``: their sizes, checked by `decode`),
    one per part, in order."""
    sizes = meta.get("objects")
    if not sizes:
        return [obj]
    out, at = [], 0
    for n in sizes:
        out.append(obj[at:at + n])
        at += n
    return out


def _objects(objs) -> tuple[list[bytes], bytes, list | None]:
    """`objs` (one object file, or a list of them) -> (the list, the entry's object field,
    the sizes to record in the metadata, or None for one object)."""
    if isinstance(objs, (bytes, bytearray)):
        objs = [bytes(objs)]
    objs = list(objs)
    return objs, b"".join(objs), ([len(o) for o in objs] if len(objs) > 1 else None)


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


def store(key: str | None, meta: dict, obj, symbols=None, linked: bytes | None = None) -> bool:
    """Writes the entry atomically (temp file 0600 + `os.replace`); False if it could not.
    `obj`: the module's object file, or the list of its parts' object files (then stored one
    after the other, their sizes in the metadata: `split_objects`).

    With `symbols` (the functions the module defines that the caller will look up), the
    objects are also linked into one shared library when a linker is there (`link`); the
    library is loaded once to check that the dynamic loader takes it and that it defines them,
    then written before the entry, whose metadata records its sha256 and size (`library`).
    `linked`: that library, already linked from `obj` and checked so by this process
    (`link_and_load`): it is written as it is."""
    d = directory() if key else None
    if d is None:
        return False
    objs, blob, sizes = _objects(obj)
    meta = {k: v for k, v in meta.items() if k not in ("lib", "objects")}
    if sizes is not None:
        meta["objects"] = sizes
    try:
        if linked is not None:
            _write(d, key + LIB_SUFFIX, linked)
            _count("libs_linked")
            meta["lib"] = {"sha256": hashlib.sha256(linked).hexdigest(), "size": len(linked)}
        elif symbols is not None:
            made = _store_library(d, key, objs, symbols)
            if made is not None:
                meta["lib"], lib = made
                _close(lib)
        _write(d, key + SUFFIX, encode(key, meta, blob))
    except OSError as e:
        _count("errors")
        log.debug("tracejit: could not write disk cache entry %s: %s", key, e)
        with _lock:
            _trusted.discard(d)  # re-check (and re-create) the directory next time
        return False
    _count("stores")
    return True


# -- shared libraries ----------------------------------------------------------------------------

def find_linkers() -> list[list[str]]:
    """The commands (without ``-o OUT OBJECT``) that can link a position-independent object
    into a shared library here, to try in order: a C compiler driver (`cc`, `gcc`, `clang`,
    as ``cc -shared``: it runs the system's linker and links libgcc, should the code call one of
    its helpers), then `ld -shared` itself. ``-Bsymbolic``: calls between the module's
    functions never go to another library's functions of the same name. Empty when there is
    none, and off Linux (ELF is what this is tested with): the cache then holds object code
    only, which MCJIT loads."""
    if not sys.platform.startswith("linux"):
        return []
    cmds = []
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path and not any(c[0] == path for c in cmds):
            cmds.append([path, "-shared", "-Wl,-Bsymbolic", "-Wl,-z,noexecstack"])
    path = shutil.which("ld")
    if path:
        cmds.append([path, "-shared", "-Bsymbolic", "-z", "noexecstack"])
    return cmds


def link(obj) -> bytes | None:
    """`obj` (a position-independent relocatable object file, or a list of them: the parts of
    one module, which call each other) linked into one shared library by the first of
    `find_linkers` that manages it, in a private temporary directory; None if none does (the
    reasons are logged at debug level). Never raises."""
    cmds = find_linkers()
    if not cmds:
        return None
    import subprocess
    objs = _objects(obj)[0]
    names = [f"part{i}.o" for i in range(len(objs))]
    tmp = None
    try:
        tmp = tempfile.mkdtemp(prefix="tracejit-link-")  # 0700
        srcs, out = [os.path.join(tmp, n) for n in names], os.path.join(tmp, "module.so")
        for src, data in zip(srcs, objs):
            with open(src, "wb") as f:
                f.write(data)
        for cmd in cmds:
            try:
                r = subprocess.run([*cmd, "-o", out, *srcs], stdin=subprocess.DEVNULL,
                                   capture_output=True, timeout=120)
            except (OSError, subprocess.SubprocessError) as e:
                log.debug("tracejit: linker %s failed: %s", cmd[0], e)
                continue
            if r.returncode == 0:
                with open(out, "rb") as f:
                    return f.read()
            log.debug("tracejit: linker %s failed (%d): %s", cmd[0], r.returncode,
                      r.stderr.decode("utf-8", "replace")[-2000:])
    except OSError as e:
        log.debug("tracejit: cannot link a shared library: %s", e)
    finally:
        if tmp is not None:
            for name in (*names, "module.so"):
                try:
                    os.unlink(os.path.join(tmp, name))
                except OSError:
                    pass
            try:
                os.rmdir(tmp)
            except OSError:
                pass
    return None


def _dlopen(path: str):
    """The dynamic loader on `path`: its symbols local to it (RTLD_LOCAL), every reference
    bound now (ctypes adds RTLD_NOW). The one place a cached library is loaded."""
    import ctypes
    return ctypes.CDLL(path, mode=ctypes.RTLD_LOCAL)


def _close(lib) -> None:
    """Unloads a library that was loaded only to check it (nothing of it is referenced)."""
    try:
        import _ctypes
        _ctypes.dlclose(lib._handle)
    except (ImportError, AttributeError, OSError):
        pass


def symbol_address(lib, name: str) -> int:
    """The address of function `name` in a loaded library (0 if it does not define it)."""
    import ctypes
    try:
        return ctypes.cast(lib[name], ctypes.c_void_p).value or 0
    except AttributeError:
        return 0


def _load_library(d: str, data: bytes, symbols):
    """The library `data` loaded from a private copy, if it defines every one of `symbols`;
    else None (unloaded again). Raises OSError (cannot write the copy, or the dynamic loader
    refuses it: e.g. a directory on a ``noexec`` mount).

    `data` must be bytes this process trusts: linked by it, or read from the cache and found
    to match the digest of the (verified) entry. Loading a copy of those bytes, rather than the
    library's own path, means that what is loaded is what was checked: the copy is a new file
    (``mkstemp``: O_EXCL, 0600) in the cache directory, which is this user's alone (0700, owned
    by this user, not writable by others: `directory`) — whoever could change the copy between
    writing and loading it could as well write entries, so that is the trust boundary, the same
    as for the entries themselves; and its name is never used twice by this process (pid and a
    counter), so the dynamic loader, which also recognizes an already-loaded library by its
    path, never hands back another library loaded earlier. The copy is unlinked at once (the
    mapping stays)."""
    fd, tmp = tempfile.mkstemp(prefix=f"{_TMP_PREFIX}{os.getpid()}-{next(_seq)}-",
                               suffix=LIB_SUFFIX, dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        lib = _dlopen(tmp)
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass
    missing = [s for s in symbols if not symbol_address(lib, s)]
    if missing:
        _close(lib)
        log.debug("tracejit: shared library lacks %s", ", ".join(sorted(missing)[:5]))
        return None
    return lib


def link_and_load(objs: list[bytes], symbols):
    """The object files of a module compiled in parts (`runtime/compile.py`), linked into one
    shared library (`link`) and loaded, as a cache hit loads one (`_load_library`: from a
    private copy, checked to define every one of `symbols`): ``(the library's bytes, the
    loaded library)``, or None (no linker, a failed link, a library the loader refuses or that
    lacks a function). Writes no entry (`store` with ``linked=`` does). The copy goes to the
    cache directory when there is a trusted one, else to a new private temporary directory.
    Never raises. (Parts are loaded this way, not by MCJIT: MCJIT's loader mislinks the code of
    a second position-independent object added to one engine.)"""
    data = link(objs)
    if data is None:
        return None
    d = directory()
    tmp = None
    try:
        if d is None:
            d = tmp = tempfile.mkdtemp(prefix="tracejit-lib-")  # 0700
        lib = _load_library(d, data, symbols)
    except OSError as e:
        log.debug("tracejit: a linked library does not load: %s", e)
        lib = None
    finally:
        if tmp is not None:
            try:
                os.rmdir(tmp)
            except OSError:
                pass
    return None if lib is None else (data, lib)


def _store_library(d: str, key: str, obj, symbols):
    """Links `obj` (one object or a list: `link`), checks the library by loading it, writes it
    as ``<key>.so``: returns ``(its metadata, the loaded library)``, or None when there is no
    linker or the library is not usable here. Raises OSError when writing the library fails."""
    data = link(obj)
    if data is None:
        return None
    try:
        lib = _load_library(d, data, symbols)
    except OSError as e:
        log.debug("tracejit: a linked library does not load: %s", e)
        return None
    if lib is None:
        return None
    try:
        _write(d, key + LIB_SUFFIX, data)
    except OSError:
        _close(lib)
        raise
    _count("libs_linked")
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}, lib


def _lib_meta_ok(want) -> bool:
    return (isinstance(want, dict) and isinstance(want.get("sha256"), str)
            and len(want["sha256"]) == 64 and type(want.get("size")) is int and want["size"] > 0)


def library(key: str | None, meta: dict, obj: bytes, symbols):
    """The shared library of the entry `load` returned as ``(meta, obj)``, loaded with ctypes
    and checked to define every one of `symbols`; or None: the caller then loads `obj` with
    MCJIT. Nothing here imports llvmlite.

    None when the entry has no library (no linker when it was stored). The library file is
    loaded only if its bytes match the sha256 and size that the entry records, and from a
    private copy of those very bytes (`_load_library`). A library file that is missing or does
    not match is never loaded: it is linked anew from `obj` (no LLVM needed for that either),
    checked, written, and the entry rewritten to record it; if that fails too, the entry is
    rewritten without a library, so that later processes go straight to MCJIT."""
    want = meta.get("lib")
    d = directory() if key else None
    if d is None or want is None:
        return None
    if not _lib_meta_ok(want):
        return None
    try:
        with open(_path(d, key, LIB_SUFFIX), "rb") as f:
            data = f.read()
    except FileNotFoundError:
        data = None
    except OSError as e:
        _count("errors")
        log.debug("tracejit: disk cache library %s unreadable: %s", key, e)
        return None
    if (data is not None and len(data) == want["size"]
            and hashlib.sha256(data).hexdigest() == want["sha256"]):
        try:
            lib = _load_library(d, data, symbols)
        except OSError as e:
            log.debug("tracejit: disk cache library %s does not load: %s", key, e)
            lib = None
        _count("libs_loaded" if lib is not None else "libs_rejected")
        return lib
    _count("libs_rejected")
    log.debug("tracejit: disk cache library %s is missing or does not match its digest; "
              "linking it again", key)
    meta = {k: v for k, v in meta.items() if k != "lib"}
    lib = None
    try:
        made = _store_library(d, key, split_objects(meta, obj), symbols)
    except OSError as e:
        _count("errors")
        log.debug("tracejit: could not write disk cache library %s: %s", key, e)
        return None
    if made is not None:
        meta["lib"], lib = made
    if meta.get("lib") != want:
        try:
            _write(d, key + SUFFIX, encode(key, meta, obj))
            _count("stores")
        except OSError as e:
            _count("errors")
            log.debug("tracejit: could not rewrite disk cache entry %s: %s", key, e)
    if lib is not None:
        _count("libs_loaded")
    return lib


# -- info, clear ----------------------------------------------------------------------------------

def _entries(d: str) -> list[os.DirEntry]:
    """The cache's files in `d` (entries, libraries, host records, leftover temporary files)."""
    with os.scandir(d) as it:
        return [e for e in it if e.name.endswith(_SUFFIXES) and e.is_file(follow_symlinks=False)]


def info() -> dict:
    """What the cache holds, without creating anything: ``dir`` (None when disabled),
    ``enabled``, ``exists``, ``trusted``, ``problem`` (why not, or None), ``entries``,
    ``libraries`` (entries' shared libraries), ``bytes`` (of every file of the cache),
    ``format``, and this process's ``stats``."""
    d = cache_dir()
    out = {"dir": d, "enabled": d is not None, "exists": False, "trusted": False,
           "problem": None, "entries": 0, "libraries": 0, "bytes": 0, "format": FORMAT_VERSION,
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
                out["entries"] += e.name.endswith(SUFFIX)
                out["libraries"] += e.name.endswith(LIB_SUFFIX)
                out["bytes"] += e.stat(follow_symlinks=False).st_size
    except OSError as e:
        out["problem"] = str(e)
    return out


def clear() -> int:
    """Deletes every entry, library, host record and leftover temporary file of the cache
    directory; returns the number of entries deleted. Leaves the directory, and anything else
    in it, alone; does nothing to a directory it does not trust."""
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
        n += e.name.endswith(SUFFIX) and not e.name.startswith(_TMP_PREFIX)
    with _lock:
        _host_seen.pop(d, None)
    return n
