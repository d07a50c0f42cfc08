__version__ = "0.1.0"

import os as _os

# Idle OpenMP threads sleep instead of spinning on a core a busy neighbour needs (nbs/08_threads). The OpenMP runtime reads
# this once, when torch loads it: set here, before any ttpt module imports torch; an explicit setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
