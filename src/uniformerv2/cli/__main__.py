"""``python -m uniformerv2.cli`` (what ``torchrun -m uniformerv2.cli`` runs)."""

import sys

from . import main

sys.exit(main())
