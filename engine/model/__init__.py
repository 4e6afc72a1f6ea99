"""Plain data models shared by every layer: no IO, no evaluation."""
