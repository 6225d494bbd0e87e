import sys

from robo.cli import main

sys.exit(main())
