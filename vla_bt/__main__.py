"""``python -m vla_bt`` is the ``vla-bt`` command."""

import sys

from vla_bt.cli import main

sys.exit(main())
