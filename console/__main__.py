import sys

from console.server import main

sys.exit(main())
