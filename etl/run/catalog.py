"""The seed's 18 steps in order: number, slug (what --until, --from-step and --only name), phase,
title, the function that runs it, and what it leaves behind to re-check on --resume."""

from __future__ import annotations

from .context import Step
from .cutover import cutover, dual_read, dual_write, performance, post_cutover_monitor
from .finalization import finalize_sessions, report, rollback
from .migration import export, export_product, load, load_product, stage_product, transform, upload_sessions
from .preparation import api_smoke, preflight, schema
from .validation import aggregations, benchmark, parity


STEPS: tuple[Step, ...] = (
    Step(1, "preflight", "preparation", "pre-flight checks", preflight),
    Step(2, "schema", "preparation", "apply schema", schema),
    Step(3, "api-smoke", "preparation", "API smoke test", api_smoke),
    Step(4, "export", "migration", "export IndexedDB", export, export_product),
    Step(5, "transform", "migration", "transform", transform, stage_product),
    Step(6, "upload-sessions", "migration", "reconstruct upload sessions", upload_sessions),
    Step(7, "load", "migration", "bulk import in chunks", load, load_product),
    Step(8, "parity", "validation", "validate parity", parity),
    Step(9, "aggregations", "validation", "validate aggregations", aggregations),
    Step(10, "benchmark", "validation", "performance benchmark", benchmark),
    Step(11, "dual-read", "cutover", "switch dual read", dual_read),
    Step(12, "dual-write", "cutover", "switch dual write", dual_write),
    Step(13, "performance", "cutover", "performance test", performance),
    Step(14, "cutover", "cutover", "cutover to MySQL only", cutover),
    Step(15, "monitor", "cutover", "post-cutover monitor", post_cutover_monitor),
    Step(16, "finalize-sessions", "finalization", "finalize upload sessions", finalize_sessions),
    Step(17, "rollback", "finalization", "rollback if needed", rollback),
    Step(18, "report", "finalization", "evidence report", report),
)
