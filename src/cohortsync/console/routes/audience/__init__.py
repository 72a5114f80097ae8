"""Audience Studio: parent segments, the segment builder with its live count, Create Activation.

One module per screen (:mod:`.home`, :mod:`.parents`, :mod:`.segments`,
:mod:`.activations`), the forms they read (:mod:`.rule_forms`,
:mod:`.activation_forms`) and the delete pages they share (:mod:`.deletion`).
Every save builds the same definitions as the command line and calls the
same library functions, so the checks against the warehouse and the catalog
are the library's.

``router`` includes the screens' routers in this order, which is the order
the paths are matched in: each module lists a fixed path such as
``/audience/parents/new`` before the ``/audience/parents/{name}`` that would
match it too, and no module's path is matched by another's.
"""

from fastapi import APIRouter

from cohortsync.console.routes.audience import activations, home, parents, segments

router = APIRouter()
for screen in (home, parents, segments, activations):
    router.include_router(screen.router)
