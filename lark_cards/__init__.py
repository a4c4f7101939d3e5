"""lark-cards: an Errbot backend for Feishu / Lark that answers with interactive cards."""

__version__ = "0.1.0"
