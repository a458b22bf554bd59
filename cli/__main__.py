"""``python -m cli`` runs the ``countersign`` command."""

import sys

from cli.main import main

sys.exit(main())
