"""In-process fakes of external services, realistic enough to test adapters and the controller against."""
