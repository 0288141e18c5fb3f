"""The model ladder (docs/design.md §7): one package per architecture. Each package
registers an `attnsim._arch.Architecture` with its rung; nothing else in the engine names
an architecture, and adding one is adding its package here."""

from . import clf, dot, free, rnn  # noqa: F401 - rungs 3, 1 (a dot-product head), 0 (the paper's approximation), 2

__all__ = ["free", "dot", "rnn", "clf"]
