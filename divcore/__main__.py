"""`python -m divcore [demo]`: see divcore.cli."""
import sys

from divcore.cli import main

if __name__ == "__main__":
    sys.exit(main())
