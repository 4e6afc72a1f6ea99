"""The watchers: react to what happens to the controller's Jobs and pods (behaviour spec §4.8-4.10).

Each watcher is an informer handler (``on_event``) plus, where it needs a timer, an ``async run()``
to keep running alongside the informers. Handlers return at once; API calls happen in background
tasks, and failures are logged and counted, never raised into the informer.
"""

from engine.controller.watchers.completions import CompletionsWatcher
from engine.controller.watchers.job_watcher import JobWatcher
from engine.controller.watchers.pod_watcher import PodWatcher

__all__ = ["CompletionsWatcher", "JobWatcher", "PodWatcher"]
