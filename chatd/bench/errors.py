"""The one error a bench reports as a sentence rather than a traceback."""

from __future__ import annotations


class BenchFailed(RuntimeError):
    """The run cannot go on: the server died, a worker failed, sockets would not open."""


def reportable(exc: BaseException) -> BaseException:
    """What an error out of trio.run means: KeyboardInterrupt if Ctrl-C is among the
    causes, else the BenchFailed if that is the only kind, else the error as it is."""
    leaves = list(_leaves(exc))
    if any(isinstance(leaf, KeyboardInterrupt) for leaf in leaves):
        return KeyboardInterrupt()
    if leaves and all(isinstance(leaf, BenchFailed) for leaf in leaves):
        return leaves[0]
    return exc


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]
