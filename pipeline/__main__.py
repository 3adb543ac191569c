"""``python -m pipeline`` is the ``ssim-pipeline`` command."""

import sys

from pipeline.cli.main import main

sys.exit(main())
