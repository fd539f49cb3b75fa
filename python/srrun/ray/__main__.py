"""python -m srrun.ray upscale IN OUT --model MODEL ... (see _batch.py)."""

import sys

from ._batch import main

if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
