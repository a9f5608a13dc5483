"""`python -m audiollm …` is the same as the `audiollm` script."""

import sys

from audiollm.cli.parser import main

sys.exit(main())
