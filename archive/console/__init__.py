"""The station console: a server-rendered web console for dock operators,
archive keepers, agency heads, reviewers and auditors (issue 12).

aiohttp + aiohttp-jinja2 (templates), aiohttp-session (encrypted cookie
sessions), WTForms (forms and their session CSRF tokens), Babel (gettext
catalogues: Simplified Chinese by default, English on a switch), ``limits``
(login attempts), aiohttp-sse (live dock progress).  It runs beside the
archive service, on its own port with TLS, over the same
:class:`~archive.service.Archive` object.
"""
