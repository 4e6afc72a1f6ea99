"""Small pure functions the default policies call from CEL (through ``engine.core.function_registry``).

Each reproduces one piece of upstream behaviour a YAML policy cannot express by itself: shell quoting
byte-compatible with go-shellquote, the command interposers, and Kubernetes label validation.
"""
