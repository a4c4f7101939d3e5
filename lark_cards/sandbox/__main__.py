"""``python -m lark_cards.sandbox``: the same as ``python -m lark_cards sandbox``."""

import sys

from .cli import main

sys.exit(main())
