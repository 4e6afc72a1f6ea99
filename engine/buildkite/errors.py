"""Errors the Buildkite adapters raise, so callers can react to a kind of failure, not a message.

The controller treats these differently: a bad organization stops it, a rate limit delays the next
poll by ``retry_after``, a rejected acquisition means "someone else already owns the job" (fall back to
cancelling), and everything else is logged and retried on the next cycle. Messages are single lines
built by the adapters themselves and never contain an API or agent token.
"""

from __future__ import annotations


class BuildkiteAPIError(Exception):
    """A GraphQL call failed (transport, HTTP status or GraphQL errors) for a reason not modelled below."""


class ListingImpossibleError(BuildkiteAPIError):
    """Listing scheduled jobs cannot work with this configuration (asking again will not help): the
    controller must stop with this message."""


class InvalidOrganizationError(ListingImpossibleError):
    """The organization slug does not name an organization the API token can see."""

    def __init__(self, org: str) -> None:
        super().__init__(f'invalid organization: "{org}"')
        self.org = org


class RateLimitedError(BuildkiteAPIError):
    """Buildkite answered HTTP 429; ``retry_after`` is how many seconds to wait before asking again."""

    def __init__(self, retry_after: float, operation: str = "") -> None:
        where = f"{operation}: " if operation else ""
        super().__init__(f"{where}rate limited by Buildkite (HTTP 429), retry after {retry_after:g}s")
        self.retry_after = retry_after


class AgentAPIError(Exception):
    """A call to the Buildkite Agent REST API failed after its retries."""


class JobAcquisitionRejected(AgentAPIError):  # noqa: N818 - the name the rest of the project uses
    """Buildkite refused to hand the job to our throw-away agent (HTTP 422).

    The job is already running elsewhere, finished or cancelled, so it cannot be failed this way.
    """


class StacksAPIError(BuildkiteAPIError):
    """A Stacks API call failed. ``status`` is the HTTP status (``None`` when no answer came);
    ``retry_after`` the wait the server asked for, if any."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after

    @property
    def permanent(self) -> bool:
        """True for a 4xx other than 408 and 429: the same request will fail the same way (upstream's
        rule, and the job acquisition token guide's: do not retry it unchanged)."""
        return self.status is not None and 400 <= self.status < 500 and self.status not in (408, 429)
