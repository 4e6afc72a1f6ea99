"""The explain view of a decision: which policy and rule set each field of the Job (``engine test
--explain``), as annotated YAML for people and as data for tools."""
