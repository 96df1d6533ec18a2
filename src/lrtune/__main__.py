"""``python -m lrtune``: the ``lrtune`` command."""

import sys

from lrtune.cli import main

if __name__ == "__main__":
    sys.exit(main())
