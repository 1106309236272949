"""What every step result shares: `asdict()`, JSON-plain data with `ok`, beside its readable __str__.

Run records, the API and notebooks store or send `result.asdict()`; `json.dumps` takes it as is.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import PurePath


class _TrueUnlessSaid:
    """`ok` of a Result that does not say: True. A subclass says with a property, or with a field
    named `ok` (GuardResult): this descriptor defines no __set__, so the field's value, set on the
    instance, wins, and it hides itself from the class (`getattr(cls, "ok")` raises) so that
    dataclasses does not take it for the field's default."""

    def __get__(self, obj, owner=None) -> bool:
        if obj is None:
            raise AttributeError("ok")
        return True


class Result:
    """Mixin for the frozen dataclass a step returns. `ok` is True unless the result says otherwise."""

    ok = _TrueUnlessSaid()

    def asdict(self) -> dict:
        out = {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}
        out["ok"] = bool(self.ok)
        return out


def plain(x):
    """`x` as JSON-plain data: dicts with text keys, lists, text, numbers, booleans, None."""
    if isinstance(x, Result):
        return x.asdict()
    if callable(getattr(x, "public", None)):  # a holder of a secret (MySQLTarget): only its masked form
        return plain(x.public())
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: plain(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, set, frozenset)):
        return [plain(v) for v in x]
    if isinstance(x, float):
        return x if math.isfinite(x) else None  # JSON has no NaN or infinity
    if x is None or isinstance(x, (bool, int, str)):
        return x
    if isinstance(x, PurePath):
        return str(x)
    return str(x)
