"""Build the C firmware once per test session: ``firmware_build("host")`` -> the artifact.

``make -C firmware TARGET`` runs once per target per test session (make itself skips what
is up to date), under a file lock so that several pytest processes on one work tree never
build over each other. A missing toolchain fails the test with what to install
(``./dev.sh test`` installs gcc, make, gcc-arm-none-eabi and qemu-system-arm); nothing is
skipped.
"""

from __future__ import annotations

import fcntl
import functools
import shutil
import subprocess
from pathlib import Path

import pytest

__all__ = ["ARTIFACTS", "FIRMWARE", "firmware_build"]

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware"
#: What each make target builds (``size`` prints and builds the ARM image).
ARTIFACTS = {
    "host": FIRMWARE / "build" / "host" / "qihe-board",
    "hostlib": FIRMWARE / "build" / "host" / "libqiheboard.so",
    "arm": FIRMWARE / "build" / "arm" / "qihe-board.elf",
    "size": FIRMWARE / "build" / "arm" / "qihe-board.elf",
    "fuzz": FIRMWARE / "build" / "host" / "qihe-fuzz",
}
_TOOLS = {
    "host": ("make", "cc"),
    "hostlib": ("make", "cc"),
    "arm": ("make", "arm-none-eabi-gcc"),
    "size": ("make", "arm-none-eabi-gcc", "arm-none-eabi-size"),
    "fuzz": ("make", "cc"),
}


@functools.cache
def firmware_build(target: str) -> Path:
    """Run ``make -C firmware target`` (once per session) and return what it built."""
    if target not in ARTIFACTS:
        raise ValueError(f"unknown firmware target {target!r}; one of {sorted(ARTIFACTS)}")
    missing = [tool for tool in _TOOLS[target] if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"固件构建缺少工具 / the firmware build needs {', '.join(missing)}: "
            "run ./dev.sh test (or apt-get install gcc make gcc-arm-none-eabi qemu-system-arm)"
        )
    lock_path = FIRMWARE / "build" / ".lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = subprocess.run(
            ["make", "-C", str(FIRMWARE), target], capture_output=True, text=True, check=False
        )
    if result.returncode != 0:
        pytest.fail(f"make -C firmware {target} failed:\n{result.stdout}\n{result.stderr}")
    artifact = ARTIFACTS[target]
    if not artifact.exists():
        pytest.fail(f"make -C firmware {target} did not produce {artifact}")
    return artifact
