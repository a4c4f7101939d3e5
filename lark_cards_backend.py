"""Errbot's entry file for the LarkCards backend (``lark_cards.plug`` → ``Module``).

Errbot executes this file as ``errbot.backends.lark_cards_backend`` and adds its folder to
``sys.path``, then looks for exactly one ErrBot subclass in it. The class lives in the
``lark_cards`` package; this file only exposes it under a name that does not shadow the package.
"""

from lark_cards.backend import LarkCardsBackend

__all__ = ["LarkCardsBackend"]
