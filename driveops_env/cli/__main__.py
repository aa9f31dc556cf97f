"""``python -m driveops_env.cli``: the CLI."""

import sys

from driveops_env.cli import main

sys.exit(main())
