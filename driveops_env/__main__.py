"""``python -m driveops_env``: the CLI."""

import sys

from driveops_env.cli import main

sys.exit(main())
