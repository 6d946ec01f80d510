"""The verdict of a `ufm verify` procedure (a theorem about a flow, an operator or a property,
not one minimum); shared by `verify_vicinity` and `verify_mixup`."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Outcome:
    verdict: str  # "confirmed", "refuted" or "inconclusive"
    reason: str
    predicted: str  # what the theorem says, in a few words (for the table)
    found: str  # what the numbers say


def verdict(ok: bool) -> str:
    return "confirmed" if ok else "refuted"
