"""dlt sources for the SaaS APIs, written for this project (the public verified sources are reference only)."""

import os

# dlt sends anonymous usage telemetry by default; this project never calls hosts it was not configured
# for (tests and the sandbox reach 127.0.0.1 only), so it is off unless someone turns it on explicitly.
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
