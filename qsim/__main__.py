import sys

from qsim.cli import main

sys.exit(main())
