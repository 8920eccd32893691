"""dlt sources for the SaaS APIs, written for this project (the public verified sources are reference only)."""
