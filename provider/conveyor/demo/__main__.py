import sys

from conveyor.demo import main

sys.exit(main())
