"""Runs: the run history, a run's page with its live progress, Resume, and charts per job."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
