"""``python -m nasgal`` (and ``torchrun ... -m nasgal``): the ``nasgal`` command."""

import sys

from .cli.main import main

if __name__ == "__main__":
    sys.exit(main())
