"""The Google Ads stand-in's account: its tokens, customers and days.

Apart from the stand-in itself (`google_ads`), which imports the client library's message types: the code
location reads these to configure the extract without importing the library.
"""

from __future__ import annotations

from datetime import timedelta

from cdp_assets.sandbox.world import EPOCH, HISTORY

SANDBOX_DEVELOPER_TOKEN = "sandbox-developer-token"
SANDBOX_LOGIN_CUSTOMER_ID = "1112223333"  # the manager account the sandbox customers sit under
SANDBOX_CUSTOMER_ID = "1234567890"
SANDBOX_FIRST_DAY = EPOCH.date()
SANDBOX_TODAY = (EPOCH + HISTORY).date() - timedelta(days=1)
