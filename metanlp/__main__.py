"""``python -m metanlp`` (what ``accelerate launch -m metanlp`` runs)."""

import sys

from metanlp.cli import main

sys.exit(main())
