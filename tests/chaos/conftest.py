"""The chaos scenarios import `procs` and `scenarios` as top-level modules (tests/conftest.py puts
tests/ on the path; this puts tests/chaos/ there too)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
