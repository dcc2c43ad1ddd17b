"""``pykaniko bench``: your Dockerfile built once per snapshot mode, side by side.

Every mode runs the ordinary build (``python -m pykaniko`` with your flags) in its own
process, so its peak RSS is its own (``wait4``), with ``--summary-file`` for the phase
times and ``--oci-layout-path`` so the images can be compared file by file afterwards.
Modes' images never have equal digests (build timestamps); what matters is whether
their layers hold the same files with the same content and metadata.

    pykaniko bench [--modes full,redo,time,stat] [--json FILE] -- BUILD FLAGS...
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pykaniko.cli.flags import SNAPSHOT_MODES, parse_args
from pykaniko.errors import ConfigError, PykanikoError

__all__ = [
    "Entry",
    "ModeResult",
    "bench_main",
    "compare_layers",
    "layer_entries",
    "measure_mode",
    "render_table",
]

_OWN = ("--snapshot-mode", "--snapshotMode", "--summary-file", "--oci-layout-path")


@dataclass(frozen=True, slots=True)
class Entry:
    """A layer member as the comparison sees it: everything but its times."""

    kind: str
    mode: int
    uid: int
    gid: int
    size: int
    link: str
    content: str


@dataclass
class ModeResult:
    mode: str
    status: int
    wall: float
    cpu: float
    max_rss_mb: float
    summary: dict[str, object] = field(default_factory=dict)
    layout: Path | None = None
    error: str = ""
    built_layers: list[dict[str, object]] = field(default_factory=list)

    @property
    def phases(self) -> dict[str, float]:
        raw = self.summary.get("phases", {})
        return {str(k): float(v) for k, v in raw.items()} if isinstance(raw, dict) else {}

    @property
    def layers(self) -> list[dict[str, object]]:
        raw = self.summary.get("layers", [])
        return [x for x in raw if isinstance(x, dict)] if isinstance(raw, list) else []


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pykaniko bench",
        description="Build a Dockerfile once per snapshot mode and compare time, CPU, peak "
        "memory, layers and the images' files. Every other flag is a build flag, passed to "
        "each build as given (--context, --dockerfile, --destination or --no-push, ...).",
        allow_abbrev=False,
    )
    p.add_argument(
        "--modes",
        default=",".join(SNAPSHOT_MODES),
        help=f"comma-separated snapshot modes (default: {','.join(SNAPSHOT_MODES)})",
    )
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON here")
    p.add_argument(
        "--scratch",
        metavar="DIR",
        help="where work dirs and layouts go (default: a temporary directory; /dev/shm "
        "compares modes without disk noise)",
    )
    p.add_argument("--no-compare", action="store_true", help="skip the file-by-file comparison")
    return p


def _modes(text: str) -> list[str]:
    modes = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in modes if m not in SNAPSHOT_MODES]
    if bad or not modes:
        raise ConfigError(
            f"--modes={text}: expected a comma-separated list of {', '.join(SNAPSHOT_MODES)}"
        )
    return list(dict.fromkeys(modes))


def _mode_destinations(build_args: list[str], mode: str) -> list[str]:
    """Each mode pushes to its own tag (``TAG-MODE``) so no run overwrites another's."""
    out: list[str] = []
    take_next = False
    for arg in build_args:
        if take_next:
            out.append(_tagged(arg, mode))
            take_next = False
        elif arg in ("-d", "--destination"):
            out.append(arg)
            take_next = True
        elif arg.startswith(("--destination=", "-d=")):
            flag, _, value = arg.partition("=")
            out.append(f"{flag}={_tagged(value, mode)}")
        else:
            out.append(arg)
    return out


def _tagged(reference: str, mode: str) -> str:
    name, at, digest = reference.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return f"{name}-{mode}{at}{digest}"
    return f"{name}:bench-{mode}{at}{digest}"


def measure_mode(
    build_args: Sequence[str],
    mode: str,
    scratch: Path,
    *,
    env: Mapping[str, str] | None = None,
    layout: bool = True,
) -> ModeResult:
    """One build in a fresh ``python -m pykaniko`` process: wall, CPU and peak RSS from
    ``wait4`` (the build and the RUN processes it waited for), its summary file, and
    its OCI layout for the comparison."""
    work = scratch / mode
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    summary = work / "summary.json"
    args = [*_mode_destinations(list(build_args), mode), f"--snapshot-mode={mode}"]
    args += [f"--summary-file={summary}", "--log-format=json"]
    if layout:
        args.append(f"--oci-layout-path={work / 'layout'}")
    if not any(a == "--kaniko-dir" or a.startswith("--kaniko-dir=") for a in build_args):
        args.append(f"--kaniko-dir={work / 'kaniko'}")
    log_path = work / "build.log"
    started = time.monotonic()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pykaniko", *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ if env is None else env),
        )
        try:
            _, wait_status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        proc.returncode = os.waitstatus_to_exitcode(wait_status)
    wall = time.monotonic() - started
    result = ModeResult(
        mode=mode,
        status=proc.returncode,
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        max_rss_mb=usage.ru_maxrss / 1024,
        layout=work / "layout" if layout and proc.returncode == 0 else None,
    )
    if summary.is_file():
        result.summary = json.loads(summary.read_text())
    if proc.returncode != 0:
        result.error = _last_error(log_path)
    return result


def _last_error(log_path: Path) -> str:
    for line in reversed(log_path.read_text(errors="replace").splitlines()):
        try:
            record = json.loads(line)
        except ValueError:
            if line.strip():
                return line.strip()
            continue
        if isinstance(record, dict) and record.get("level") in ("error", "fatal"):
            return str(record.get("msg", ""))
    return "failed"


def layer_entries(path: Path) -> dict[str, Entry]:
    """Members of a layer blob by path (no leading ``/``), content as xxh3 of the data."""
    import xxhash

    from pykaniko.image.layerfile import open_decompressed

    entries: dict[str, Entry] = {}
    with open_decompressed(path) as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
        for member in tar:
            content = ""
            if member.isfile():
                data = tar.extractfile(member)
                if data is not None:
                    digest = xxhash.xxh3_64()
                    while chunk := data.read(1 << 20):
                        digest.update(chunk)
                    content = digest.hexdigest()
            kind = member.type.decode(errors="replace") if member.type else "0"
            name = member.name.lstrip("./").rstrip("/") or "/"
            entries[name] = Entry(
                kind, member.mode, member.uid, member.gid, member.size, member.linkname, content
            )
    return entries


def _built_layers(result: ModeResult) -> dict[str, Path]:
    """Blobs of the layers this build made or took from the cache, by the step that
    made them (base layers are the same for every mode)."""
    if result.layout is None:
        return {}
    texts: dict[tuple[object, object], str] = {}
    raw = result.summary.get("step_times", [])
    for step in raw if isinstance(raw, list) else []:
        if isinstance(step, dict):
            text = str(step.get("instruction", ""))
            texts[(step.get("stage"), step.get("step"))] = text[:40] + (
                "..." if len(text) > 40 else ""
            )
    out: dict[str, Path] = {}
    for layer in result.layers:
        if layer.get("origin") == "base":
            continue
        where = (layer.get("stage"), layer.get("step"))
        label = f"stage {where[0]} step {where[1]} ({texts.get(where, '?')})"
        algo, _, hexpart = str(layer.get("digest", "")).partition(":")
        out[label] = result.layout / "blobs" / algo / hexpart
    return out


def _paths(paths: Sequence[str]) -> str:
    shown = ", ".join("/" + p.lstrip("/") for p in paths[:3])
    return shown + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")


def compare_layers(
    a: Mapping[str, dict[str, Entry]],
    b: Mapping[str, dict[str, Entry]],
    *,
    names: tuple[str, str] = ("first", "second"),
) -> list[str]:
    """Where two images' built layers differ, step by step, as short lines; empty when
    every step made the same files with the same content and metadata."""
    notes: list[str] = []
    for label in [*a, *(k for k in b if k not in a)]:
        left, right = a.get(label), b.get(label)
        if left is None or right is None:
            maker, files = (names[1], right) if left is None else (names[0], left)
            notes.append(f"{label}: only {maker} made a layer: {_paths(sorted(files or {}))}")
            continue
        only_left = sorted(set(left) - set(right))
        only_right = sorted(set(right) - set(left))
        changed = sorted(p for p in set(left) & set(right) if left[p] != right[p])
        for what, paths in (
            (f"only in {names[0]}", only_left),
            (f"only in {names[1]}", only_right),
            ("different", changed),
        ):
            if paths:
                notes.append(f"{label}: {len(paths)} {what}: {_paths(paths)}")
    return notes


def _fmt(value: float | None, spec: str = "7.2f") -> str:
    return (
        format(value, spec) if value is not None else "-".rjust(int(spec.split(".", maxsplit=1)[0]))
    )


def render_table(results: Sequence[ModeResult], differences: Mapping[str, list[str]]) -> str:
    """The comparison table, ratios against the fastest mode that succeeded."""
    ok = [r for r in results if r.status == 0]
    fastest = min((r.wall for r in ok), default=0.0) or 1.0
    head = (
        f"{'mode':<5} {'wall s':>7} {'ratio':>5} {'cpu s':>7} {'RSS MB':>7} {'layers':>6} "
        f"{'size MB':>8} {'new MB':>7} {'snap s':>7} {'walk':>6} {'detect':>6} {'tar':>6} "
        f"{'compr':>6} {'push s':>6}  image"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        phases = r.phases
        layers = r.layers
        size = sum(int(str(x.get("size", 0))) for x in layers) / 1e6
        new = sum(int(str(x.get("size", 0))) for x in layers if x.get("origin") != "base") / 1e6
        if r.status != 0:
            verdict = f"FAILED ({r.status}): {r.error}"
        elif r.mode in differences:
            verdict = "same files" if not differences[r.mode] else "DIFFERS"
        else:
            verdict = "reference" if differences else "-"
        lines.append(
            f"{r.mode:<5} {r.wall:7.2f} {r.wall / fastest:5.2f} {r.cpu:7.2f} "
            f"{r.max_rss_mb:7.1f} {len(layers):6d} {size:8.2f} {new:7.2f} "
            f"{_fmt(phases.get('snapshot'))} {_fmt(phases.get('walk'), '6.2f')} "
            f"{_fmt(phases.get('detect'), '6.2f')} {_fmt(phases.get('tar'), '6.2f')} "
            f"{_fmt(phases.get('compress'), '6.2f')} {_fmt(phases.get('push'), '6.2f')}  {verdict}"
        )
    for mode, notes in differences.items():
        for note in notes:
            lines.append(f"  {mode}: {note}")
    return "\n".join(lines)


def run_bench(
    build_args: Sequence[str],
    modes: Sequence[str],
    scratch: Path,
    *,
    compare: bool = True,
    env: Mapping[str, str] | None = None,
) -> tuple[list[ModeResult], dict[str, list[str]]]:
    """Every mode once, then each image compared with the first mode's (the reference)."""
    results = [measure_mode(build_args, m, scratch, env=env, layout=compare) for m in modes]
    differences: dict[str, list[str]] = {}
    ok = [r for r in results if r.status == 0 and r.layout is not None]
    if compare and len(ok) > 1:
        reference = ok[0]
        ref_layers = {k: layer_entries(p) for k, p in _built_layers(reference).items()}
        for other in ok[1:]:
            layers = {k: layer_entries(p) for k, p in _built_layers(other).items()}
            names = (reference.mode, other.mode)
            differences[other.mode] = compare_layers(ref_layers, layers, names=names)
    return results, differences


def bench_main(argv: Sequence[str], env: Mapping[str, str]) -> int:
    parser = _parser()
    try:
        ns, build_args = parser.parse_known_args(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    if build_args[:1] == ["--"]:
        build_args = build_args[1:]
    try:
        modes = _modes(ns.modes)
        own = [a for a in build_args if a.split("=")[0] in _OWN]
        if own:
            raise ConfigError(f"{own[0]}: pykaniko bench sets this flag itself for each mode")
        parse_args(build_args, env)  # bad build flags fail here, once, not once per mode
    except PykanikoError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_status
    scratch_root = Path(ns.scratch) if ns.scratch else None
    if scratch_root is not None:
        scratch_root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="pykaniko-bench-", dir=scratch_root))
    try:
        print(f"pykaniko bench: {len(modes)} builds ({', '.join(modes)})", file=sys.stderr)
        results, differences = run_bench(
            build_args, modes, scratch, compare=not ns.no_compare, env=env
        )
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(render_table(results, differences))
    if ns.json:
        data = [
            {"mode": r.mode, "status": r.status, "wall": r.wall, "cpu": r.cpu,
             "max_rss_mb": r.max_rss_mb, "summary": r.summary, "error": r.error or None,
             "differences": differences.get(r.mode)}
            for r in results
        ]  # fmt: skip
        Path(ns.json).write_text(json.dumps(data, indent=2) + "\n")
    return 0 if all(r.status == 0 for r in results) else 1
