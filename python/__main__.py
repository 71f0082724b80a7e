"""``python -m jitsolve`` is the ``jitsolve`` command."""
import sys

from .cli import main

sys.exit(main())
