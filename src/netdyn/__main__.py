"""``python -m netdyn``: the same command line as the ``netdyn`` script."""

import sys

from netdyn.cli import main

sys.exit(main())
