"""The controller loop: monitor, dedupe, limit, schedule, watch."""
