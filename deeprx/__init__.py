"""DeepRx: the host library (one subpackage per stage) and its commands (python -m deeprx.NAME)."""

import os

# The repository's root: data/ (results, shipped models, processor table) lives there.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
