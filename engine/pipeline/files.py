"""``--pipeline FILE [--step KEY | --step-index N]``: a pipeline file's step as a job node."""

from __future__ import annotations

from pathlib import Path

from engine.model.jsonvalue import JSONObject
from engine.pipeline.job import BuildContext, PipelineJobError, job_from_step
from engine.pipeline.source import PipelineReadError, load_pipeline
from engine.pipeline.steps import StepError, choose_step, read_pipeline_document


def job_from_pipeline_file(
    path: Path, *, key: str | None = None, index: int | None = None, context: BuildContext | None = None
) -> JSONObject:
    """The job node of the chosen step; :class:`PipelineJobError` (one line naming the file) otherwise."""
    try:
        document = load_pipeline(path)
    except PipelineReadError as exc:
        raise PipelineJobError(str(exc)) from None
    try:
        pipeline = read_pipeline_document(document)
        step = choose_step(pipeline, key, index)
        return job_from_step(pipeline, step, context)
    except (StepError, PipelineJobError) as exc:
        raise PipelineJobError(f"{path}: {exc}") from None
