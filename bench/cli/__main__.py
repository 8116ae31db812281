"""``python -m bench.cli``: the ``bench`` command."""

from __future__ import annotations

import sys

from bench.cli.main import main

sys.exit(main())
