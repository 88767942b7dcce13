"""Moved: the fan-out is :mod:`airflow_provider_plugz.audit.fanout` (it is not a hook).

This module re-exports its public names, so ``from airflow_provider_plugz.hooks.fleet import
check_fleet`` (and ``FleetRun``, ``chunked``, ``run_in_new_loop``) keeps working. New code
imports them from :mod:`airflow_provider_plugz.audit.fanout`. To wrap or replace one of them in
a running audit, patch it there: the audit operator looks them up on that module.
"""

from __future__ import annotations

from airflow_provider_plugz.audit.fanout import FleetRun, check_fleet, chunked, run_in_new_loop

__all__ = ["FleetRun", "check_fleet", "chunked", "run_in_new_loop"]
