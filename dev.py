#!/usr/bin/env python3
"""Develop Shelfkeeper with nothing installed but Python (3.11 or newer).

    python3 dev.py serve [shelfkeeper serve options]   # the API on an embedded PostgreSQL
    python3 dev.py test [pytest options]               # every check CI runs, failing fast
    python3 dev.py lint                                # the static checks only

Each command first makes sure `.venv` exists and holds exactly `requirements-dev.lock` and
this project (editable). The installation is redone only when the lock file or
`pyproject.toml` changed since the last one (a stamp with their hash lives in `.venv`).
Standard library only: this file runs before anything is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
import venv
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
LOCK = ROOT / "requirements-dev.lock"
STAMP = VENV / ".shelfkeeper-installed"
INSTALL_INPUTS = (LOCK, ROOT / "pyproject.toml")

STATIC_CHECKS: list[tuple[str, list[str]]] = [
    ("format", ["ruff", "format", "--check", "."]),
    ("lint", ["ruff", "check", "."]),
    ("types", ["mypy"]),  # strict, on src/ (pyproject.toml)
    ("imports", ["lint-imports"]),  # the layering contracts (pyproject.toml)
]


def say(message: str) -> None:
    sys.stderr.write(f"dev.py: {message}\n")
    sys.stderr.flush()


def run(command: Sequence[str | Path]) -> None:
    """Run a command from the repository root; exit with its status if it fails."""
    words = [str(part) for part in command]
    started = time.monotonic()
    result = subprocess.run(words, cwd=ROOT, check=False)
    if result.returncode != 0:
        elapsed = time.monotonic() - started
        say(f"failed (exit {result.returncode}) after {elapsed:.0f}s: {' '.join(words)}")
        sys.exit(result.returncode)


def install_fingerprint() -> str:
    digest = hashlib.sha256()
    for path in INSTALL_INPUTS:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def bootstrap() -> None:
    """Create `.venv` if needed and install the locked dependencies if they changed."""
    if not PYTHON.exists():
        say(f"creating the virtual environment {VENV.relative_to(ROOT)}")
        try:
            venv.EnvBuilder(with_pip=True, clear=VENV.exists()).create(VENV)
        except (OSError, subprocess.CalledProcessError) as error:
            say(f"could not create {VENV} ({error}).")
            say("On Debian or Ubuntu, install the `python3-venv` package and retry.")
            sys.exit(1)
    fingerprint = install_fingerprint()
    if STAMP.exists() and STAMP.read_text().strip() == fingerprint:
        return
    say(f"installing {LOCK.name} and shelfkeeper (editable) into {VENV.relative_to(ROOT)}")
    pip: list[str | Path] = [
        PYTHON,
        "-m",
        "pip",
        "--disable-pip-version-check",
        "install",
        "--quiet",
    ]
    run([*pip, "-r", LOCK])
    run([*pip, "--no-deps", "-e", ROOT])
    STAMP.write_text(fingerprint + "\n")


def tool(name: str) -> Path:
    return BIN / (f"{name}.exe" if os.name == "nt" else name)


def static_checks() -> None:
    for title, (name, *arguments) in STATIC_CHECKS:
        say(f"{title}: {' '.join([name, *arguments])}")
        run([tool(name), *arguments])


def serve(arguments: list[str]) -> None:
    command = [str(tool("shelfkeeper")), "serve", *arguments]
    if os.name == "nt":
        sys.exit(subprocess.run(command, cwd=ROOT, check=False).returncode)
    os.chdir(ROOT)
    os.execv(command[0], command)


def test(arguments: list[str]) -> None:
    started = time.monotonic()
    static_checks()
    say("tests: pytest " + " ".join(arguments))
    run([tool("pytest"), *arguments])
    say(f"all checks passed in {time.monotonic() - started:.0f}s")


def main() -> None:
    # Runs under whatever `python3` is; an old one gets told instead of a traceback.
    if sys.version_info < (3, 11):  # noqa: UP036
        sys.exit(f"dev.py: Shelfkeeper needs Python 3.11 or newer, not {sys.version.split()[0]}")
    parser = argparse.ArgumentParser(
        prog="python3 dev.py", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    commands.add_parser("serve", help="serve the API (arguments go to `shelfkeeper serve`)")
    commands.add_parser("test", help="static checks, then every test (arguments go to pytest)")
    commands.add_parser("lint", help="formatting, lint, types and import rules")
    commands.add_parser("install", help="only create .venv and install into it")
    parsed, rest = parser.parse_known_args()
    if parsed.command in ("lint", "install") and rest:
        parser.error(f"`{parsed.command}` takes no arguments: {' '.join(rest)}")

    bootstrap()
    if parsed.command == "serve":
        serve(rest)
    elif parsed.command == "test":
        test(rest)
    elif parsed.command == "lint":
        static_checks()


if __name__ == "__main__":
    main()
