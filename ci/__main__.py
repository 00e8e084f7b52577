import sys

from hilci.cli import main

sys.exit(main())
