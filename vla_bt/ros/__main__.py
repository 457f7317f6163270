"""``python -m vla_bt.ros ros TREE.yaml …`` and ``python -m vla_bt.ros sim-node …``."""

import sys

from vla_bt.ros.commands import main

sys.exit(main())
