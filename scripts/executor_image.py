"""``make executor-image``: the executor images, built by pykaniko itself.

Writes ``dist/executor-image.tar`` (``pykaniko/executor:latest``) and
``dist/executor-image-debug.tar`` (``pykaniko/executor:debug``): docker-archive
tarballs laid out as Kaniko's images. Everything the executor needs lives under
``/kaniko``, because the build replaces the container's ``/lib``, ``/usr``, ``/etc``
and ``/tmp`` with the base image it builds (musl, distroless, scratch):

* ``/kaniko/bin/python3``: Debian's ``python3.11`` binary, its ELF interpreter set to
  ``/kaniko/lib/ld-linux-x86-64.so.2`` and its DT_RPATH to ``/kaniko/lib`` (patchelf).
  An RPATH (not a RUNPATH) on the executable is searched for every library any object
  of the process loads, so nothing is ever looked up in the base image's
  ``ld.so.cache`` or ``/lib``. Chosen over a static build because it uses Debian's
  own binaries unchanged and needs no compiler;
* ``/kaniko/lib``: the loader, the libraries the interpreter and the kept extension
  modules need (their DT_NEEDED closure, resolved in the extracted packages), and
  ``python3.11/`` (the standard library, trimmed, precompiled to unchecked-hash pycs,
  so an import neither compiles nor stats its source) with ``site-packages/``
  (pykaniko and the pinned wheels of ``executor-image-requirements.txt``; every
  extension module gets ``/kaniko/lib`` appended to its RPATH);
* ``/kaniko/ssl/certs/ca-certificates.crt``: Debian's ca-certificates bundle, built
  from the package's Mozilla certificates (never the host's bundle, which may carry
  local CAs), named by ``SSL_CERT_FILE``/``SSL_CERT_DIR``; ``/kaniko/ssl/openssl.cnf``
  (``OPENSSL_CONF``) so OpenSSL never reads the base image's configuration;
* ``/kaniko/executor``: a ``#!/kaniko/bin/python3 -IBSXutf8`` script. The kernel
  starts it, so the image needs no shell; ``-I`` ignores every ``PYTHON*`` variable of
  the caller and the user site, ``-S`` skips ``site`` (faster start, nothing read from
  ``/usr``), ``-B`` never writes bytecode, ``-X utf8`` makes file names and output
  UTF-8 whatever locale the base image has (or lacks).

The ``:debug`` image adds Debian's static busybox under ``/busybox`` with one symlink
per applet, on ``PATH``, and ``VOLUME /busybox``, as Kaniko's ``:debug``.

Everything comes from Debian packages (``apt-get download``, unpacked with
``dpkg-deb -x``: the host's installed files are never copied) and PyPI wheels (pip);
nothing else is downloaded. Two runs give the same tarballs (``--reproducible``,
hash-based pycs, sorted staging). Needs root (pykaniko builds as root), ``apt-get``,
``dpkg-deb``, ``patchelf`` and ``strip`` (binutils).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
REQUIREMENTS: Final = Path(__file__).with_name("executor-image-requirements.txt")

KANIKO: Final = "/kaniko"
PY: Final = "python3.11"
LOADER: Final = "ld-linux-x86-64.so.2"
IMAGE: Final = "pykaniko/executor"
KANIKO_PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/kaniko"
SHEBANG: Final = f"#!{KANIKO}/bin/python3 -IBSXutf8"

#: Debian packages unpacked into the staging root. Libraries are picked from them by
#: the DT_NEEDED closure; a NEEDED name none of them provides stops the build.
DEBS: Final = (
    "python3.11-minimal",
    "libpython3.11-minimal",
    "libpython3.11-stdlib",
    "libc6",
    "libssl3",
    "zlib1g",
    "libexpat1",
    "libbz2-1.0",
    "libffi8",
    "liblzma5",
    "libuuid1",
    "ca-certificates",
    "busybox-static",
)
LIB_DIRS: Final = ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu")

#: Standard-library entries a builder never imports (tests, GUIs, REPL helpers,
#: packaging tools, databases); ``sitecustomize`` links to ``/etc`` in Debian.
STDLIB_DROP: Final = frozenset(
    {
        "EXTERNALLY-MANAGED", "__phello__", "__hello__.py", "_distutils_system_mod.py",
        "antigravity.py", "curses", "dbm", "distutils", "doctest.py", "ensurepip",
        "idlelib", "lib2to3", "pydoc_data", "sitecustomize.py", "sqlite3", "test",
        "this.py", "tkinter", "turtle.py", "turtledemo", "unittest", "venv",
    }
)  # fmt: skip
#: Extension modules left out: test modules and those that would pull in ncurses,
#: readline, Berkeley DB, SQLite, NIS/Kerberos or libcrypt.
DYNLOAD_DROP_PREFIXES: Final = (
    "_test", "_ctypes_test", "_xxtestfuzz", "xxlimited", "_curses", "_dbm", "_sqlite3",
    "nis.", "readline.", "ossaudiodev.", "_crypt.",
)  # fmt: skip

#: Wheel files never imported: zstandard's CFFI backend (12 MB; cffi is not shipped).
WHEEL_DROP: Final = "zstandard/_cffi*.so"

OPENSSL_CNF: Final = (
    "# pykaniko's executor: OpenSSL reads this file (OPENSSL_CONF) instead of the\n"
    "# configuration of whatever base image the build has unpacked onto /.\n"
)
EXECUTOR: Final = f'''{SHEBANG}
"""Kaniko's entry point, pykaniko inside: the same flags as /kaniko/executor."""
import sys

sys.path.append(sys.prefix + "/lib/{PY}/site-packages")
from pykaniko.cli import main

raise SystemExit(main())
'''
DOCKERFILE: Final = f"""\
FROM scratch AS executor
COPY kaniko/ /kaniko/
ENV PATH={KANIKO_PATH} \\
    HOME=/root \\
    USER=root \\
    SSL_CERT_DIR=/kaniko/ssl/certs \\
    SSL_CERT_FILE=/kaniko/ssl/certs/ca-certificates.crt \\
    OPENSSL_CONF=/kaniko/ssl/openssl.cnf \\
    DOCKER_CONFIG=/kaniko/.docker/ \\
    PYKANIKO_IGNORE_PATHS=/kaniko
WORKDIR /workspace
ENTRYPOINT ["/kaniko/executor"]

FROM executor AS debug
COPY busybox/ /busybox/
ENV PATH={KANIKO_PATH}:/busybox \\
    PYKANIKO_IGNORE_PATHS=/kaniko:/busybox
VOLUME /busybox
"""


class BuildError(Exception):
    """A step of the image build failed; the message says which and why."""


def run(argv: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        list(argv), cwd=cwd, env=env, capture_output=True, text=True, check=False,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if proc.returncode != 0:
        raise BuildError(
            f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stderr.strip()[-3000:]}"
        )
    return proc.stdout


def is_elf(path: Path) -> bool:
    if path.is_symlink() or not path.is_file():
        return False
    with path.open("rb") as fh:
        return fh.read(4) == b"\x7fELF"


# ---------------------------------------------------------------- Debian packages


def fetch_debs(dest: Path) -> list[Path]:
    """``apt-get download`` every package of :data:`DEBS` into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    os.chmod(dest, 0o777)  # apt's _apt user writes the files when it can
    for old in dest.glob("*.deb"):
        old.unlink()
    try:
        run(["apt-get", "download", *DEBS], cwd=dest)
    except BuildError:
        if os.geteuid() != 0:
            raise
        run(["apt-get", "update", "-qq"])  # a fresh machine may have no package lists
        run(["apt-get", "download", *DEBS], cwd=dest)
    return sorted(dest.glob("*.deb"))


def unpack_debs(debs: Iterable[Path], root: Path) -> list[str]:
    """``dpkg-deb -x`` each package into ``root``; "name version" of each."""
    versions = []
    for deb in debs:
        run(["dpkg-deb", "-x", str(deb), str(root)])
        name, version = run(["dpkg-deb", "-f", str(deb), "Package", "Version"]).splitlines()
        versions.append(f"{name.split(': ', 1)[1]} {version.split(': ', 1)[1]}")
    return versions


# ---------------------------------------------------------------- wheels


def fetch_wheels(dest: Path) -> list[Path]:
    """The pinned cp311 manylinux wheels, and nothing else (``--no-deps``: the pins
    list the whole closure)."""
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*.whl"):
        old.unlink()
    run(
        [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--only-binary=:all:", "--implementation", "cp", "--python-version", "3.11",
            "--abi", "cp311", "--abi", "abi3", "--abi", "none",
            "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
            "--platform", "manylinux2014_x86_64", "--platform", "manylinux1_x86_64",
            "-r", str(REQUIREMENTS), "-d", str(dest),
        ]
    )  # fmt: skip
    return sorted(dest.glob("*.whl"))


def unpack_wheel(wheel: Path, site: Path) -> None:
    """What installing a wheel means for these wheels: unzip it (they carry no
    ``.data`` scripts; one that does stops the build)."""
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            top = info.filename.split("/", 1)[0]
            if top.endswith(".data"):
                raise BuildError(f"{wheel.name}: .data directories are not handled")
            target = site / info.filename
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            executable = (info.external_attr >> 16) & 0o111
            target.chmod(0o755 if executable else 0o644)


def slim_wheels(site: Path) -> None:
    """Drop zstandard's CFFI backend (used only when asked for by an environment
    variable; the C backend is the default) and the debug info the wheels ship
    (``strip --strip-unneeded`` keeps the dynamic symbols Python imports by)."""
    for dropped in sorted(site.glob(WHEEL_DROP)):
        dropped.unlink()
    objects = sorted(str(p) for p in site.rglob("*.so*") if is_elf(p))
    run(["strip", "--strip-unneeded", *objects])


# ---------------------------------------------------------------- the /kaniko tree


def copy_stdlib(debroot: Path, kaniko: Path) -> None:
    src = debroot / "usr/lib" / PY
    dst = kaniko / "lib" / PY
    for entry in sorted(src.iterdir()):
        if entry.name in STDLIB_DROP:
            continue
        if entry.name == "lib-dynload":
            (dst / entry.name).mkdir(parents=True)
            for mod in sorted(entry.iterdir()):
                if not mod.name.startswith(DYNLOAD_DROP_PREFIXES):
                    shutil.copy2(mod, dst / entry.name / mod.name)
        elif entry.is_dir():
            shutil.copytree(entry, dst / entry.name, symlinks=True)
        else:
            dst.mkdir(parents=True, exist_ok=True)
            shutil.copy2(entry, dst / entry.name, follow_symlinks=False)
    for path in dst.rglob("*"):
        if path.is_symlink() and Path(os.readlink(path)).is_absolute():
            raise BuildError(f"{path}: the standard library links out of {KANIKO}")


def copy_pykaniko(kaniko: Path) -> None:
    src = ROOT / "pykaniko"
    dst = kaniko / "lib" / PY / "site-packages" / "pykaniko"
    for path in sorted(src.rglob("*")):
        if path.is_file() and (path.suffix == ".py" or path.name == "py.typed"):
            if "__pycache__" in path.parts:
                continue
            target = dst / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)


def needed(elf: Path) -> list[str]:
    return run(["patchelf", "--print-needed", str(elf)]).split()


def find_lib(debroot: Path, soname: str) -> Path | None:
    for lib_dir in LIB_DIRS:
        candidate = debroot / lib_dir / soname
        if candidate.exists():
            return candidate
    return None


def own_rpath(elf: Path) -> list[Path]:
    """The directories an object's own RPATH/RUNPATH names with ``$ORIGIN`` (the
    ``.libs`` directory auditwheel gives a wheel)."""
    text = run(["patchelf", "--print-rpath", str(elf)]).strip()
    dirs = []
    for entry in text.split(":"):
        if entry.startswith("$ORIGIN"):
            dirs.append((elf.parent / entry.replace("$ORIGIN", ".", 1)).resolve())
    return dirs


def copy_libraries(debroot: Path, kaniko: Path, roots: Sequence[Path]) -> list[str]:
    """Copy the DT_NEEDED closure of ``roots`` into ``/kaniko/lib``; sonames copied."""
    lib = kaniko / "lib"
    loader = find_lib(debroot, LOADER)
    if loader is None:
        raise BuildError(f"{LOADER} is not in the unpacked libc6")
    shutil.copy2(loader.resolve(), lib / LOADER)
    copied = {LOADER}
    todo = list(roots)
    missing: list[str] = []
    while todo:
        elf = todo.pop()
        local = own_rpath(elf)
        for soname in needed(elf):
            if soname in copied or any((d / soname).exists() for d in local):
                continue
            found = find_lib(debroot, soname)
            if found is None:
                missing.append(f"{soname} (needed by {elf.name})")
                continue
            shutil.copy2(found.resolve(), lib / soname)
            copied.add(soname)
            todo.append(lib / soname)
    if missing:
        raise BuildError("libraries no listed package provides: " + ", ".join(sorted(missing)))
    return sorted(copied)


def patch_elves(kaniko: Path) -> int:
    """Interpreter and RPATH of the binary; RPATH of every extension module (its
    ``$ORIGIN`` entries kept, ``/kaniko/lib`` appended). Libraries are left as Debian
    built them: the executable's RPATH already covers their lookups."""
    lib = f"{KANIKO}/lib"
    python = kaniko / "bin" / "python3"
    run(["patchelf", "--set-interpreter", f"{lib}/{LOADER}", "--force-rpath",
         "--set-rpath", lib, str(python)])  # fmt: skip
    count = 1
    for module in sorted((kaniko / "lib" / PY).rglob("*.so*")):
        if not is_elf(module):
            continue
        current = run(["patchelf", "--print-rpath", str(module)]).strip().split(":")
        entries = [e for e in current if e and e != lib] + [lib]
        run(["patchelf", "--force-rpath", "--set-rpath", ":".join(entries), str(module)])
        count += 1
    return count


def ca_bundle(debroot: Path) -> bytes:
    """What ``update-ca-certificates`` writes with Debian's default configuration:
    every certificate of the package, in name order, concatenated."""
    certs = sorted((debroot / "usr/share/ca-certificates/mozilla").glob("*.crt"))
    if not certs:
        raise BuildError("the ca-certificates package has no certificates")
    parts = []
    for cert in certs:
        data = cert.read_bytes()
        parts.append(data if data.endswith(b"\n") else data + b"\n")
    return b"".join(parts)


def licenses(debroot: Path, kaniko: Path) -> None:
    """Each shipped package's copyright file, as Debian ships it."""
    for copyright_file in sorted((debroot / "usr/share/doc").glob("*/copyright")):
        target = kaniko / "share/doc" / copyright_file.parent.name / "copyright"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(copyright_file, target)


def compile_pycs(kaniko: Path, stage_root: Path) -> None:
    """Unchecked-hash pycs, compiled by the staged interpreter itself (started through
    its own loader, so the host's libraries are never mixed in), recorded with the
    paths they have in the image."""
    lib = kaniko / "lib"
    run(
        [
            str(lib / LOADER), "--library-path", str(lib), str(kaniko / "bin/python3"),
            "-I", "-m", "compileall", "-q", "-f", "-j", "0",
            "--invalidation-mode", "unchecked-hash",
            "-s", str(stage_root), "-p", "/", str(lib / PY),
        ]
    )  # fmt: skip


def normalize_tree(root: Path) -> None:
    """Modes as an image wants them (directories 0755, files 0644 or 0755)."""
    for dirpath, dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_symlink():
                continue
            mode = path.stat().st_mode
            path.chmod(0o755 if mode & 0o111 else 0o644)
        dirnames.sort()


def stage_kaniko(debroot: Path, context: Path, wheels: Sequence[Path], notes: list[str]) -> None:
    kaniko = context / "kaniko"
    (kaniko / "bin").mkdir(parents=True)
    (kaniko / "lib").mkdir()
    shutil.copy2(debroot / "usr/bin" / PY, kaniko / "bin/python3")
    copy_stdlib(debroot, kaniko)
    site = kaniko / "lib" / PY / "site-packages"
    site.mkdir()
    for wheel in wheels:
        unpack_wheel(wheel, site)
        notes.append(f"wheel {wheel.name}")
    slim_wheels(site)
    copy_pykaniko(kaniko)
    roots = [kaniko / "bin/python3"]
    roots += sorted(p for p in (kaniko / "lib" / PY).rglob("*.so*") if is_elf(p))
    libs = copy_libraries(debroot, kaniko, roots)
    notes.append("libraries " + " ".join(libs))
    patch_elves(kaniko)
    certs = kaniko / "ssl/certs"
    certs.mkdir(parents=True)
    (certs / "ca-certificates.crt").write_bytes(ca_bundle(debroot))
    (kaniko / "ssl/openssl.cnf").write_text(OPENSSL_CNF)
    (kaniko / ".docker").mkdir()
    licenses(debroot, kaniko)
    executor = kaniko / "executor"
    executor.write_text(EXECUTOR)
    executor.chmod(0o755)
    compile_pycs(kaniko, context)
    (kaniko / "VERSIONS").write_text("".join(f"{line}\n" for line in notes))
    normalize_tree(kaniko)


def stage_busybox(debroot: Path, context: Path) -> None:
    """``/busybox/busybox`` and one relative symlink per applet, as Kaniko's debug."""
    dest = context / "busybox"
    dest.mkdir()
    binary = dest / "busybox"
    shutil.copy2(debroot / "bin/busybox", binary)
    binary.chmod(0o755)
    applets = run([str(binary), "--list"]).split()
    for applet in sorted(set(applets) - {"busybox"}):
        (dest / applet).symlink_to("busybox")
    os.chmod(dest, 0o755)


# ---------------------------------------------------------------- the images


def build_image(context: Path, target: str, tag: str, tar: Path, kaniko_dir: Path) -> None:
    """pykaniko builds ``target`` of the staged Dockerfile into the tarball ``tar``."""
    tar.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SOURCE_DATE_EPOCH": "0"}
    run(
        [
            sys.executable, "-m", "pykaniko",
            "--context", str(context), "--dockerfile", str(context / "Dockerfile"),
            "--target", target, "--skip-unused-stages",
            "--destination", f"{IMAGE}:{tag}", "--no-push", "--tar-path", str(tar),
            "--reproducible", "--kaniko-dir", str(kaniko_dir), "--verbosity", "warn",
        ],
        cwd=ROOT,
        env=env,
    )  # fmt: skip


def tree_size(root: Path) -> int:
    total = 0
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            if not path.is_symlink():
                total += path.stat().st_size
    return total


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="where the tars go")
    parser.add_argument(
        "--work", type=Path, default=ROOT / "build" / "executor-image", help="staging dir"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    work: Path = args.work.resolve()
    out: Path = args.out.resolve()
    for tool in ("apt-get", "dpkg-deb", "patchelf", "strip"):
        if shutil.which(tool) is None:
            print(f"error: {tool} is missing (scripts/setup-system installs it)", file=sys.stderr)
            return 1
    try:
        debs = fetch_debs(work / "debs")
        wheels = fetch_wheels(work / "wheels")
        for stale in ("debroot", "context"):
            shutil.rmtree(work / stale, ignore_errors=True)
        debroot, context = work / "debroot", work / "context"
        notes = [f"deb {v}" for v in unpack_debs(debs, debroot)]
        context.mkdir()
        stage_kaniko(debroot, context, wheels, notes)
        stage_busybox(debroot, context)
        (context / "Dockerfile").write_text(DOCKERFILE)
        staged = time.monotonic()
        shm = Path("/dev/shm")
        with tempfile.TemporaryDirectory(
            prefix="executor-image-", dir=shm if shm.is_dir() else None
        ) as scratch:
            for target, tag, name in (
                ("executor", "latest", "executor-image.tar"),
                ("debug", "debug", "executor-image-debug.tar"),
            ):
                build_image(context, target, tag, out / name, Path(scratch) / target)
    except BuildError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    done = time.monotonic()
    print(f"/kaniko unpacked: {tree_size(context / 'kaniko') / 1e6:.1f} MB; "
          f"/busybox: {tree_size(context / 'busybox') / 1e6:.1f} MB")  # fmt: skip
    for name in ("executor-image.tar", "executor-image-debug.tar"):
        tar = out / name
        print(f"{tar}: {tar.stat().st_size / 1e6:.1f} MB  sha256:{sha256(tar)}")
    print(f"staged in {staged - started:.1f}s, images built in {done - staged:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
