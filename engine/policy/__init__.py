"""Loading policy files from disk: YAML with positions, schema checks, expression compilation."""
