import sys

from regulab.cli import main

sys.exit(main())
