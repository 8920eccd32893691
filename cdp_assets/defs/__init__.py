"""Dagster wiring only: assets, checks, jobs, schedules, sensors and resources built on the plain
domain packages. Each module exports one `defs`; `cdp_assets/definitions.py` merges them explicitly
(nothing here is autoloaded).

- `resources`: the warehouse and the landing location, and the pool every warehouse writer uses
- `event_stream`: the event load (one multi-asset over the `event_stream` tables) and its checks
- `dbt`: the dbt project's models and tests
- `automation`: jobs, the 30-minute schedule and the landing-file sensor
- `dagster.yaml`: the instance config template (run queue and pool limits) that `cdp` copies into
  DAGSTER_HOME
"""
