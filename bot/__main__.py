"""``python -m bot`` runs the ``handoff`` command line."""

import sys

from bot.cli import main

sys.exit(main())
