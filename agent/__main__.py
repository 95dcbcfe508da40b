"""``python -m agent`` is the same as the ``homecare-agent`` console script."""
import sys

from agent.cli.main import main

sys.exit(main())
