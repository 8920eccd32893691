"""The code location: every definition of the project, assembled explicitly.

Each `defs/` module exports its own `defs`; they are merged here by name rather than autoloaded from
the folder, which keeps start-up fast (P9: no scan of installed plugins) and makes every imported
object count once (P3). A new defs module is added to the merge in `build_definitions`.
"""

from __future__ import annotations

import dagster as dg


def build_definitions() -> dg.Definitions:
    # Imported here, not at module level: `dagster` looks for Definitions objects among this module's
    # attributes, and must find exactly one (`defs` below).
    from cdp_assets.defs import automation, dbt, event_stream, resources, reverse_etl, saas

    return dg.Definitions.merge(
        resources.defs,
        event_stream.defs,
        saas.defs,
        dbt.defs,
        reverse_etl.defs,
        automation.defs,
        # One step at a time in the run's own process: locally every step writes the same DuckDB file,
        # which takes one writer (P13), and it saves a process start per step. Modules set no executor.
        dg.Definitions(executor=dg.in_process_executor),
    )


defs = build_definitions()
