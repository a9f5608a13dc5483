"""`python -m audiollm …` is the same as the `audiollm` script."""

import sys

from .cli import main

sys.exit(main())
