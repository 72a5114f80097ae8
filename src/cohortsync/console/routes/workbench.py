"""Data Workbench > Queries: saved queries, New Query, Run, Export Results, Dry run, Save."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
