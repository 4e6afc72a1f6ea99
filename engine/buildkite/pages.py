"""One page of scheduled jobs, whichever API listed it.

Both backends hand the monitor pages of jobs in the same document shape (a GraphQL ``JobTypeCommand``
node: ``uuid``, ``agentQueryRules``, ``priority { number }``, ``pipeline``, ``build``, ``step``...), so
the monitor, the deduper and the policies never ask which API a job came from.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.model.jsonvalue import JSONObject


@dataclass(frozen=True)
class JobPage:
    """One page of scheduled jobs: the job documents, and the cursor of the next page (``None`` when
    there is none). ``retry_after`` is a wait the server asked for on a successful answer (the Stacks
    API may send ``Retry-After`` with a listing): the next poll waits at least that long."""

    nodes: list[JSONObject]
    end_cursor: str | None
    retry_after: float | None = None
