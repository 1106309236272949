"""The cutover: feature flags, the guarded stages that move them, and the browser adapter that obeys them.

Each function takes a MySQLTarget (and paths from Settings) and returns a small frozen result;
`etl flags`, `etl cutover`, `etl adapter` and the playbook call them. This package sits above the
stages it checks (etl.parity, etl.validate): it imports them, never the other way round.
"""

from .flags import FLAGS, FlagChange, FlagHistory, FlagState, check_combination, history, read_state, rollback, set_flags
from .guards import GuardResult, Thresholds
from .moves import advance, move_to
from .status import CutoverStatus, status
from .stages import STAGE_NAMES, STAGES, Stage, stage, stage_of

__all__ = ["CutoverStatus", "status", "FLAGS", "STAGES", "STAGE_NAMES", "FlagChange", "FlagHistory", "FlagState", "GuardResult", "Stage", "Thresholds",
           "advance", "check_combination", "history", "move_to", "read_state", "rollback", "set_flags", "stage", "stage_of"]
