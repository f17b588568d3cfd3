import sys

from seqnlp.cli import main

sys.exit(main())
