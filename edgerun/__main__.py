"""``python -m edgerun`` is the ``edgerun`` command."""

import sys

from edgerun.cli import main

sys.exit(main())
