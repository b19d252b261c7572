"""`python -m course ...`: the instructor's command line (course.tools.cli)."""
import sys

from course.tools.cli import main

sys.exit(main())
