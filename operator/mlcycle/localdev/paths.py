"""Where the local stack keeps its state: `.local/` at the repository root (gitignored)."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
LOCAL = Path(os.environ.get("MLCYCLE_LOCAL_DIR", REPO_ROOT / ".local"))
