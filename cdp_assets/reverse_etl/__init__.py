"""Reverse ETL: declarative syncs from dbt models to the SaaS tools, diff-based and consent-safe."""
