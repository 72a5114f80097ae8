"""Cohorts: the list with match rates, lock and unlock, a cohort's members and history."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
