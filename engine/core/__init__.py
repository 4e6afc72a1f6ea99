"""The pure policy engine: evaluation, patches and helper functions. No IO of any kind."""
