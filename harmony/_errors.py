"""The one exception type the library raises for Harmony-level failures."""

from __future__ import annotations


class HarmonyError(RuntimeError):
    """Rendering, parsing, decoding or vocabulary loading failed.

    A subclass of RuntimeError, like the reference's, so `except RuntimeError` keeps working.
    """
