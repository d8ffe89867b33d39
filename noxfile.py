"""Developer and CI sessions. `nox` alone runs lint, typecheck and tests."""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.default_venv_backend = "venv"
PYTHON = "3.11"
SOURCES = ["chatd", "tests", "noxfile.py"]


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.8")
    session.run("ruff", "check", *SOURCES)
    session.run("ruff", "format", "--check", *SOURCES)


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".", "mypy>=1.13")
    session.run("mypy")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def fuzz(session: nox.Session) -> None:
    """The fuzzers alone, ten times as long as in `tests` (CHATD_FUZZ_SCALE=N: N times)."""
    session.install("-e", ".[test]")
    scale = os.environ.get("CHATD_FUZZ_SCALE", "10")
    session.run("pytest", "-m", "fuzz", *session.posargs, env={"CHATD_FUZZ_SCALE": scale})


@nox.session(python=PYTHON)
def ops(session: nox.Session) -> None:
    """Validate the Dockerfile, compose, Kubernetes, Prometheus and Grafana files."""
    session.run("bash", "ops/check.sh", external=True)
