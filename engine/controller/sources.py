"""Where the monitor's pages of scheduled jobs come from: one source per Buildkite API.

The monitor asks for pages (``after`` a cursor, at most ``max_pages``) and gets job documents in the
GraphQL node shape either way; what it needs to know about each API (its organization and cluster,
its stack and cluster queue, its page size) is bound here once.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from engine.buildkite.errors import ListingImpossibleError, StacksAPIError
from engine.buildkite.graphql import BuildkiteGraphQL
from engine.buildkite.pages import JobPage
from engine.buildkite.stacks import StacksAPI
from engine.buildkite.stacks_jobs import listed_job_node


class GraphQLJobSource:
    """``GetScheduledJobs`` pages of one organization's queue (and cluster, when set)."""

    def __init__(self, graphql: BuildkiteGraphQL, org: str, queue: str, cluster_uuid: str = "") -> None:
        self._graphql = graphql
        self._org = org
        self._queue = queue
        self._cluster_uuid = cluster_uuid

    def scheduled_job_pages(
        self, *, after: str | None = None, max_pages: int | None = None
    ) -> AsyncGenerator[JobPage, None]:
        return self._graphql.scheduled_job_pages(
            self._org, self._queue, self._cluster_uuid, after=after, max_pages=max_pages
        )


class StacksJobSource:
    """``GET /stacks/{key}/scheduled-jobs`` pages of one cluster queue, ``page_size`` jobs each.

    A listing Buildkite refuses outright (a 4xx other than 429: a wrong token, stack or queue) cannot
    work however often it is asked: it raises :class:`ListingImpossibleError`, which stops the
    controller with the reason, as upstream stops. A page whose answer carries ``Retry-After`` ends the
    walk (the monitor waits that long before the next poll); a cursor that does not advance ends it too.
    """

    def __init__(self, stacks: StacksAPI, queue_key: str, page_size: int) -> None:
        self._stacks = stacks
        self._queue_key = queue_key
        self._page_size = page_size

    async def scheduled_job_pages(
        self, *, after: str | None = None, max_pages: int | None = None
    ) -> AsyncGenerator[JobPage, None]:
        seen_cursors: set[str] = set() if after is None else {after}
        fetched = 0
        while True:
            try:
                listing = await self._stacks.scheduled_jobs(
                    self._queue_key, limit=self._page_size, after=after
                )
            except StacksAPIError as error:
                if error.permanent:
                    raise ListingImpossibleError(
                        f"the Stacks API refused to list the scheduled jobs of queue {self._queue_key!r} "
                        f"of stack {self._stacks.stack_key!r}: {error}"
                    ) from None
                raise
            fetched += 1
            cursor = listing.end_cursor
            if cursor is not None and cursor in seen_cursors:
                cursor = None
            yield JobPage(
                nodes=[listed_job_node(job) for job in listing.jobs],
                end_cursor=cursor,
                retry_after=listing.retry_after,
            )
            if cursor is None or listing.retry_after or (max_pages is not None and fetched >= max_pages):
                return
            seen_cursors.add(cursor)
            after = cursor
