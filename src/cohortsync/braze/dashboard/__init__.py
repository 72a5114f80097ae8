"""The Braze-side dashboard: the screens of the workflow's first and last steps.

Served by ``cohortsync braze serve`` at ``/dashboard``, in the same process
and over the same store as the API. It is built on the shared web layer
(:mod:`cohortsync.web`: sessions, CSRF, login throttling, rendering), as the
console is:

- :mod:`.accounts`: dashboard users, their workspaces and one-time links,
  kept in the store (``cohortsync braze user create`` writes them);
- :mod:`.context`: what every route reaches, and the workspace check every
  page passes before it reads anything;
- :mod:`.app`: the FastAPI sub-application, and :mod:`.routes`, one router
  per screen.
"""
