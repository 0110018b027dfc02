"""What users configure: the tracker's config and settings, their secrets, URIs and time limits."""
