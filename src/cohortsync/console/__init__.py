"""The web console of the exporting side, over the same home as the command line.

Its screens carry the names of the workflow (Integrations Hub > Catalog,
Data Workbench > Queries, Audience Studio, Runs). Each route reads a form,
builds the same definitions as the CLI and ``apply`` (:mod:`cohortsync.definitions`)
and calls the same functions; it holds no business logic of its own.
Sessions, CSRF, login throttling and the layout come from :mod:`cohortsync.web`.

::

    accounts.py   the console's account, kept in the catalog
    app.py        the FastAPI app: shared web layer + the routers
    serving.py    ``cohortsync console``: the account, the login link, uvicorn
    routes/       one router per area of the console
    templates/    the pages, extending ``web/base.html``
"""
