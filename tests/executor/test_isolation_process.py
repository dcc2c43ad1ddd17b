"""In-place RUN as a plain child process: exact environment, exit status, user switch,
heredoc scripts, and daemons killed through the child subreaper.

Real processes run harmless commands with a temporary directory as cwd. The subreaper
case runs in a helper interpreter, so the test process never becomes a subreaper.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pykaniko.errors import BuildError
from pykaniko.executor.isolation import RunSpec
from pykaniko.executor.isolation.inplace import InPlaceIsolation, _Scripts, run_process
from pykaniko.snapshot import IgnoreList

ROOT = Path(__file__).resolve().parents[2]


def _run(argv: list[str], env: list[str], cwd: Path, **kw: object) -> tuple[int, list[str]]:
    lines: list[bytes] = []
    status = run_process(argv, env, cwd=cwd, output=lines.append, **kw)  # type: ignore[arg-type]
    return status, [line.decode().rstrip("\n") for line in lines]


def test_environment_is_exactly_the_steps(tmp_path: Path) -> None:
    status, out = _run(["env"], ["PATH=/usr/bin:/bin", "A=1"], tmp_path)
    assert status == 0
    assert sorted(out) == ["A=1", "PATH=/usr/bin:/bin"]


def test_cwd_status_and_signals(tmp_path: Path) -> None:
    env = ["PATH=/usr/bin:/bin"]
    assert _run(["pwd"], env, tmp_path) == (0, [str(tmp_path)])
    assert _run(["sh", "-c", "exit 7"], env, tmp_path)[0] == 7
    assert _run(["sh", "-c", "kill -TERM $$"], env, tmp_path)[0] == 128 + 15


def test_stdin_is_dev_null(tmp_path: Path) -> None:
    assert _run(["cat"], ["PATH=/usr/bin:/bin"], tmp_path) == (0, [])


def test_missing_command(tmp_path: Path) -> None:
    status, out = _run(["no-such-command-xyz"], ["PATH=/usr/bin:/bin"], tmp_path)
    assert status == 127
    assert out == ["pykaniko: cannot run 'no-such-command-xyz': No such file or directory"]


@pytest.mark.root
def test_user_group_and_groups(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    os.chmod(tmp_path, 0o755)
    status, out = _run(
        ["id"], ["PATH=/usr/bin:/bin"], tmp_path, uid=65534, gid=65533, groups=(65533, 50)
    )
    assert status == 0
    assert out[0].startswith("uid=65534")
    assert "gid=65533" in out[0]
    assert "50" in out[0].partition("groups=")[2]


_SUBREAPER = """
import json, os, sys, time
from pathlib import Path
from pykaniko.executor.isolation.inplace import run_process, set_child_subreaper
cwd = Path(sys.argv[1])
ok = set_child_subreaper()
script = "(setsid sh -c 'echo $$ > daemon.pid; exec sleep 300' &) ; sleep 0.5; echo started"
lines = []
status = run_process(["sh", "-c", script], ["PATH=/usr/bin:/bin"], cwd=cwd, output=lines.append)
pid = int((cwd / "daemon.pid").read_text())
print(json.dumps({"ok": ok, "status": status, "lines": [l.decode() for l in lines],
                  "alive": os.path.exists(f"/proc/{pid}"), "pid": pid}))
"""


def test_setsid_daemon_is_killed_after_the_step(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SUBREAPER, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    result = json.loads(done.stdout)
    assert result["ok"]
    assert result["status"] == 0
    assert result["lines"] == ["started\n"]
    assert not result["alive"], f"daemon {result['pid']} survived the step"


def _iso(tmp_path: Path, root: Path) -> InPlaceIsolation:
    kaniko = tmp_path / "kaniko"
    kaniko.mkdir(exist_ok=True)
    return InPlaceIsolation(keep=IgnoreList.of(["/kaniko"]), kaniko_dir=kaniko, root=root)


def test_heredoc_script_goes_to_the_kaniko_dir_without_a_dev(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    script = tmp_path / "script"
    script.write_text('#!/bin/sh\necho "$0" > ran-as.txt\n')
    spec = RunSpec(
        rootfs=str(root),
        argv=("/dev/pipes/EOF",),
        env=("PATH=/usr/bin:/bin",),
        scratch=str(tmp_path),
        scripts=((str(script), "EOF"),),
    )
    assert _iso(tmp_path, root).run(spec) == 0
    ran = Path((root / "ran-as.txt").read_text().strip())
    assert ran.parent.parent == tmp_path / "kaniko"
    assert ran.name == "EOF"
    assert not ran.parent.exists()  # removed after the step


def test_heredoc_script_goes_to_dev_pipes_when_dev_is_writable(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "dev").mkdir(parents=True)
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    spec = RunSpec(
        rootfs=str(root),
        argv=("/dev/pipes/EOF", "arg"),
        env=(),
        scratch=str(tmp_path),
        scripts=((str(script), "EOF"),),
    )
    scripts = _Scripts(root, tmp_path)
    assert scripts.put(spec) == ["/dev/pipes/EOF", "arg"]
    assert (root / "dev" / "pipes" / "EOF").read_text() == "#!/bin/sh\n"
    scripts.take_away()
    assert list((root / "dev").iterdir()) == []


def test_network_none_is_a_clear_error(tmp_path: Path) -> None:
    spec = RunSpec(
        rootfs=str(tmp_path), argv=("true",), env=(), scratch=str(tmp_path), network="none"
    )
    with pytest.raises(BuildError, match="network namespace"):
        _iso(tmp_path, tmp_path).run(spec)
