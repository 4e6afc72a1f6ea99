"""Unit tests of the watchers, with fakes for their collaborators."""
