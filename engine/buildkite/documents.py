"""The GraphQL documents the controller sends, one constant per operation.

They mirror the upstream controller's documents (behaviour spec §4.11) with two deliberate changes:
the job listing (``first: 100`` per page, as upstream) takes an ``$after`` cursor and asks for
``pageInfo`` so every page can be fetched (upstream only ever saw the first 100 jobs), and job nodes
also carry ``priority { number }`` so policies can read it, and the job's ``pipeline``, ``build`` and
``step``: Buildkite's own record of whose job this is, which the policies' trusted roots come from
(the job's env is the pipeline author's to set and proves nothing). Tests validate each document
against the shipped subset schema and, when available, the full public schema.
"""

from __future__ import annotations

from types import MappingProxyType

_JOB_FIELDS = """
fragment ScheduledCommandJob on JobTypeCommand {
  uuid
  env
  scheduledAt
  agentQueryRules
  command
  priority {
    number
  }
  pipeline {
    slug
    name
    repository {
      url
    }
  }
  build {
    number
    branch
    commit
    source {
      name
    }
    message
  }
  step {
    key
  }
}
"""

GET_SCHEDULED_JOBS = (
    """
query GetScheduledJobs($slug: ID!, $agentQueryRules: [String!], $after: String) {
  organization(slug: $slug) {
    id
    jobs(
      state: [SCHEDULED]
      type: [COMMAND]
      first: 100
      after: $after
      order: RECENTLY_ASSIGNED
      agentQueryRules: $agentQueryRules
      clustered: false
    ) {
      count
      edges {
        node {
          ...ScheduledCommandJob
        }
      }
      pageInfo {
        hasNextPage
        endCursor
      }
    }
  }
}
"""
    + _JOB_FIELDS
)

GET_SCHEDULED_JOBS_CLUSTERED = (
    """
query GetScheduledJobsClustered($slug: ID!, $agentQueryRules: [String!], $cluster: ID!, $after: String) {
  organization(slug: $slug) {
    id
    jobs(
      state: [SCHEDULED]
      type: [COMMAND]
      first: 100
      after: $after
      order: RECENTLY_ASSIGNED
      agentQueryRules: $agentQueryRules
      cluster: $cluster
    ) {
      count
      edges {
        node {
          ...ScheduledCommandJob
        }
      }
      pageInfo {
        hasNextPage
        endCursor
      }
    }
  }
}
"""
    + _JOB_FIELDS
)

GET_COMMAND_JOB = """
query GetCommandJob($uuid: ID!) {
  job(uuid: $uuid) {
    ... on JobTypeCommand {
      id
      state
    }
  }
}
"""

MAX_JOB_STATES_PER_REQUEST = 50
"""Jobs asked about in one ``GetCommandJobStates`` request (one aliased ``job`` field each)."""


def get_command_job_states(count: int) -> str:
    """``GetCommandJobStates`` for ``count`` jobs: ``GetCommandJob``'s selection once per job, under
    the aliases ``j0``, ``j1``, … with the variables ``$u0``, ``$u1``, … (GraphQL has no field that takes
    a list of job UUIDs, so aliases are how one request asks about many jobs)."""
    if not 1 <= count <= MAX_JOB_STATES_PER_REQUEST:
        raise ValueError(f"between 1 and {MAX_JOB_STATES_PER_REQUEST} jobs per request, not {count}")
    variables = ", ".join(f"$u{i}: ID!" for i in range(count))
    fields = "\n".join(
        f"  j{i}: job(uuid: $u{i}) {{\n    ... on JobTypeCommand {{\n      id\n      state\n    }}\n  }}"
        for i in range(count)
    )
    return f"\nquery GetCommandJobStates({variables}) {{\n{fields}\n}}\n"


GET_JOB_FIXTURE = """
query GetJobFixture($uuid: ID!) {
  job(uuid: $uuid) {
    ... on JobTypeCommand {
      uuid
      env
      scheduledAt
      agentQueryRules
      command
      priority {
        number
      }
      label
      step {
        key
      }
      pipeline {
        slug
        name
        repository {
          url
        }
      }
      build {
        number
        branch
        commit
        message
      }
    }
  }
}
"""
"""One command job as ``engine fixture`` writes it: the fields the controller's listing reads, plus the
trusted facts about its pipeline, build and step."""

CANCEL_COMMAND_JOB = """
mutation CancelCommandJob($input: JobTypeCommandCancelInput!) {
  jobTypeCommandCancel(input: $input) {
    clientMutationId
  }
}
"""

ALL_DOCUMENTS = MappingProxyType(
    {
        "GetScheduledJobs": GET_SCHEDULED_JOBS,
        "GetScheduledJobsClustered": GET_SCHEDULED_JOBS_CLUSTERED,
        "GetCommandJob": GET_COMMAND_JOB,
        "GetCommandJobStates": get_command_job_states(2),
        "GetJobFixture": GET_JOB_FIXTURE,
        "CancelCommandJob": CANCEL_COMMAND_JOB,
    }
)
"""Operation name → document text: every document the client can send (``GetCommandJobStates`` at
one of its sizes; every size repeats the same selection)."""
