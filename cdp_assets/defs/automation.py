"""Jobs, the 30-minute schedule and the landing-file sensor.

How a load starts:
- `landing_files_sensor` lists the landing location every 30 s and asks for one `event_stream_job` run
  as soon as files newer than its high-water mark appear, unless one is queued already (it will load
  them);
- `event_stream_schedule` runs the same job every 30 minutes as a safety net (a file the sensor missed,
  a sensor that was stopped, a run that failed);
- `event_stream_reload_job` forgets a range of upload dates and loads them again (a backfill);
- `cdp_main_job` materializes everything (what `cdp demo` runs).

Every run loads all pending files: the loader's ledger, not the sensor, decides what is loaded, so
the sensor only has to notice that something arrived. No two of these runs write the warehouse at
once: every writing op is in the `warehouse_writer` pool, which the instance config
(`defs/dagster.yaml`: pools granularity `run`, default limit 1) turns into a run queue.

No `from __future__ import annotations`: Dagster reads the sensor's resource annotation as a class.
"""

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self

import dagster as dg

from cdp_assets.defs.event_stream import GROUP, event_stream_load
from cdp_assets.defs.resources import LandingResource
from cdp_assets.event_stream.landing import LandingFile

# The event load and every dbt model fed by it (and nothing else downstream, such as reverse ETL)...
_EVENT_MODELS = dg.AssetSelection.groups(GROUP).downstream() & dg.AssetSelection.kind("dbt")
# ...plus the staging views those models read, the SaaS ones included. Re-creating a view moves no data
# (the extracts stay daily), and on a fresh warehouse, before the first extract, it is what lets identity
# and consent build: a SaaS staging view builds empty while its raw table does not exist yet.
EVENT_STREAM_SELECTION = (
    dg.AssetSelection.groups(GROUP) | _EVENT_MODELS | (_EVENT_MODELS.upstream() & dg.AssetSelection.groups("staging"))
)
LOAD_OP = event_stream_load.op.name

event_stream_job = dg.define_asset_job(
    name="event_stream_job",
    selection=EVENT_STREAM_SELECTION,
    description="Load the new landing files into event_stream, then build the dbt models fed by it.",
)


def _reload_config(config: dict[str, Any]) -> dict[str, Any]:
    return {"ops": {LOAD_OP: {"config": {"start_date": config["start_date"], "end_date": config["end_date"]}}}}


event_stream_reload_job = dg.define_asset_job(
    name="event_stream_reload_job",
    selection=EVENT_STREAM_SELECTION,
    description="Reload a range of upload dates: forget what those files loaded, load them again (with any "
    "other pending file), then rebuild the dbt models fed by it. Safe to run twice.",
    config=dg.ConfigMapping(
        config_schema={
            "start_date": dg.Field(str, description="First upload date to reload, YYYY-MM-DD."),
            "end_date": dg.Field(str, description="Last upload date to reload (inclusive), YYYY-MM-DD."),
        },
        config_fn=_reload_config,
    ),
)

cdp_main_job = dg.define_asset_job(
    name="cdp_main_job",
    selection=dg.AssetSelection.all(),
    description="Everything, in dependency order: the main job `cdp demo` runs.",
)

event_stream_schedule = dg.ScheduleDefinition(
    name="event_stream_schedule",
    job=event_stream_job,
    cron_schedule="*/30 * * * *",
    execution_timezone="UTC",
    # On by default: it is the safety net under the sensor, and useless if someone must remember it.
    default_status=dg.DefaultScheduleStatus.RUNNING,
    tags={"cdp/trigger": "schedule"},
)


# ------------------------------------------------------------------------------------ landing sensor


@dataclass(frozen=True)
class LandingCursor:
    """High-water mark over the landing files' `modified` times, plus the keys seen at exactly that
    instant (several files can share one timestamp, and a later one may appear in the same second).

    Its size does not grow with the bucket. A file that appears with an older `modified` than the mark
    is not noticed here; the next run or the schedule loads it anyway, because the ledger, not this
    cursor, decides what is loaded.
    """

    modified: datetime | None = None
    keys: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, text: str | None) -> Self:
        if not text:
            return cls()
        data = json.loads(text)
        if not data.get("modified"):
            return cls()
        return cls(datetime.fromisoformat(data["modified"]), frozenset(data.get("keys", ())))

    def to_json(self) -> str:
        if self.modified is None:
            return json.dumps({})
        return json.dumps({"modified": self.modified.isoformat(), "keys": sorted(self.keys)})

    def is_new(self, file: LandingFile) -> bool:
        if self.modified is None or file.modified > self.modified:
            return True
        return file.modified == self.modified and file.key not in self.keys

    def advance(self, new: Iterable[LandingFile], now: datetime | None = None) -> Self:
        new = list(new)
        if not new:
            return self
        latest = max(f.modified for f in new)
        if now is not None and latest > now:
            # A file stamped in the future (a skewed clock) must not hide every file that lands before
            # that time: the mark stops at now. That file stays new until then; its run key (and the
            # ledger) keep it from loading twice.
            latest = now
        at_latest = {f.key for f in new if f.modified == latest}
        if latest == self.modified:
            return type(self)(latest, self.keys | at_latest)
        return type(self)(latest, frozenset(at_latest))


# Runs that have not started: they will list the landing files when they do.
_WAITING = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED]


def new_files(files: Iterable[LandingFile], cursor: LandingCursor) -> list[LandingFile]:
    return sorted((f for f in files if cursor.is_new(f)), key=lambda f: (f.modified, f.key))


def run_key_for(files: list[LandingFile]) -> str:
    """The same new files (keys and versions) give the same run key, so a tick evaluated twice, or a
    cursor rolled back, cannot start a second run for them."""
    digest = hashlib.sha256("\n".join(sorted(f"{f.key}@{f.etag}" for f in files)).encode()).hexdigest()
    return f"landing-{digest[:24]}"


def _keys_summary(files: list[LandingFile], limit: int = 240) -> str:
    if len(files) == 1:
        return files[0].key[:limit]
    text = f"{files[0].key} .. {files[-1].key} ({len(files)} files)"
    return text if len(text) <= limit else f"{files[0].key[: limit - 30]}... ({len(files)} files)"


@dg.sensor(
    name="landing_files_sensor",
    job=event_stream_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts event_stream_job when new files land (high-water mark on their modified time).",
)
def landing_files_sensor(
    context: dg.SensorEvaluationContext, landing: LandingResource
) -> dg.SensorResult | dg.SkipReason:
    cursor = LandingCursor.parse(context.cursor)
    store = landing.get_store()
    fresh = new_files(store.list_files(), cursor)
    if not fresh:
        return dg.SkipReason(f"no new landing files in {store.url} since {cursor.modified or 'the start'}")
    advanced = cursor.advance(fresh, now=datetime.now(UTC))
    waiting = context.instance.get_run_records(
        filters=dg.RunsFilter(job_name=event_stream_job.name, statuses=_WAITING), limit=1
    )
    if waiting:
        # That run lists the landing files when it starts, so it loads these too: another run would only
        # queue behind it (and rebuild dbt for nothing), and when files land faster than a load and its
        # dbt build take, the queue would keep growing.
        return dg.SensorResult(
            skip_reason=f"{len(fresh)} new landing file(s); queued run {waiting[0].dagster_run.run_id} "
            "loads every pending file when it starts",
            cursor=advanced.to_json(),
        )
    request = dg.RunRequest(
        run_key=run_key_for(fresh),
        tags={
            "cdp/trigger": "sensor",
            "cdp/new_files": str(len(fresh)),
            "cdp/new_files_newest": advanced.modified.isoformat() if advanced.modified else "",
            "cdp/new_files_keys": _keys_summary(fresh),
        },
    )
    context.log.info(f"{len(fresh)} new landing file(s) in {store.url}; requesting {request.run_key}")
    return dg.SensorResult(run_requests=[request], cursor=advanced.to_json())


defs = dg.Definitions(
    jobs=[event_stream_job, event_stream_reload_job, cdp_main_job],
    schedules=[event_stream_schedule],
    sensors=[landing_files_sensor],
)
