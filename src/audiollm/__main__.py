"""`python -m audiollm …` is the same as the `audiollm` script."""

import sys

from audiollm.cli.main import main

sys.exit(main())
